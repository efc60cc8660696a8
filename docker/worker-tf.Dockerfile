# syntax=docker/dockerfile:1.7
# The worker for the TensorFlow targets (tf-savedmodel, tflite, tflite-fp16,
# tflite-dynamic-range): the worker image's contents (Paddle, paddle2onnx, ONNX, ONNX Runtime:
# the `convert` extra) plus onnx2tf, TensorFlow and LiteRT in their own virtualenv /opt/tf, whose
# numpy, onnx and onnxruntime pins clash with ours. The worker runs onnx2tf and the TensorFlow
# runtimes as child processes of /opt/tf/bin/python (MODELFLEET_TF_PYTHON); the operator picks
# this image for those targets (MODELFLEET_WORKER_TF_IMAGE, chart value worker.tfImage).
#
# Build from the repository root:  docker build -f docker/worker-tf.Dockerfile -t modelfleet-worker-tf .
# (BuildKit reads docker/worker-tf.Dockerfile.dockerignore next to this file.)
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
COPY pyproject.toml README.md requirements-tf.txt ./
COPY modelfleet ./modelfleet
COPY operator ./operator
COPY workers ./workers
COPY agent ./agent
RUN pip wheel --wheel-dir /wheels ".[convert]"
# A virtualenv is not relocatable: it is built where the final stage keeps it, from the same
# lock file as `make tf-venv` (onnx2tf's whole closure, --no-deps, then checked).
RUN python -m venv /opt/tf \
 && /opt/tf/bin/pip install --no-deps -r requirements-tf.txt \
 && /opt/tf/bin/pip check

FROM python:3.11.13-slim-bookworm
# Nothing may be installed at run time: Polygraphy must not auto-install what paddle2onnx's
# optimizer asks for, and pip has no index to install from.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INDEX=1 \
    POLYGRAPHY_AUTOINSTALL_DEPS=0 \
    MODELFLEET_TF_PYTHON=/opt/tf/bin/python \
    TF_CPP_MIN_LOG_LEVEL=2
# Paddle's CPU kernels link against the system OpenMP runtime (a library, not a build tool);
# OpenCV (an onnx2tf dependency) needs libGL's and GLib's runtime libraries to import.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends libgomp1 libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --create-home --home-dir /home/nonroot \
      --shell /usr/sbin/nologin nonroot
COPY --from=builder /opt/tf /opt/tf
# Installed from the builder's wheels only: no index, no compiler, no wheel files left behind.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "modelfleet[convert]"
# The Job's pod runs as 65532 too (runAsUser in the Job); Paddle keeps its caches in $HOME.
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["modelfleet-worker"]
CMD ["--help"]
