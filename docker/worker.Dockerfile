# syntax=docker/dockerfile:1.7
# The conversion and validation worker: `modelfleet-worker convert|validate --request JSON`,
# run by the operator as batch/v1 Jobs. Carries Paddle, paddle2onnx, ONNX and ONNX Runtime
# (the `convert` extra).
#
# Build from the repository root:  docker build -f docker/worker.Dockerfile -t modelfleet-worker .
# (BuildKit reads docker/worker.Dockerfile.dockerignore next to this file.)
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
RUN pip wheel --wheel-dir /wheels ".[convert]"

FROM python:3.11.13-slim-bookworm
# Nothing may be installed at run time: Polygraphy must not auto-install what paddle2onnx's
# optimizer asks for, and pip has no index to install from.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INDEX=1 \
    POLYGRAPHY_AUTOINSTALL_DEPS=0
# Paddle's CPU kernels link against the system OpenMP runtime (a library, not a build tool).
RUN apt-get update \
 && apt-get install --yes --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --create-home --home-dir /home/nonroot \
      --shell /usr/sbin/nologin nonroot
# Installed from the builder's wheels only: no index, no compiler, no wheel files left behind.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "modelfleet[convert]"
# The Job's pod runs as 65532 too (runAsUser in the Job); Paddle keeps its caches in $HOME.
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["modelfleet-worker"]
CMD ["--help"]
