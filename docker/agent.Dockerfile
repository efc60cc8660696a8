# syntax=docker/dockerfile:1.7
# The device agent for edge nodes that are Kubernetes nodes (the chart's agent DaemonSet):
# `modelfleet agent --device-name NODE --data-dir DIR --kubeconfig DEVICE_KUBECONFIG`.
# Carries ONNX Runtime (the `agent` extra), not Paddle.
#
# Build from the repository root:  docker build -f docker/agent.Dockerfile -t modelfleet-agent .
# Multi-arch for ARM devices:      docker buildx build --platform linux/amd64,linux/arm64 ...
# (BuildKit reads docker/agent.Dockerfile.dockerignore next to this file.)
#
# The base image is pinned by tag for readability; production builds should pin it by digest
# too (python:3.11.13-slim-bookworm@sha256:...) so a rebuild cannot pick up a different image.

FROM python:3.11.13-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Compilers only for dependencies without a wheel for this platform; they stay in this stage.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY modelfleet ./modelfleet
COPY operator ./operator
COPY workers ./workers
COPY agent ./agent
RUN pip wheel --wheel-dir /wheels ".[agent]"

FROM python:3.11.13-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INDEX=1
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --create-home --home-dir /home/nonroot \
      --shell /usr/sbin/nologin nonroot
# Installed from the builder's wheels only: no index, no compiler, no wheel files left behind.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "modelfleet[agent]"
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["modelfleet"]
CMD ["agent", "--help"]
