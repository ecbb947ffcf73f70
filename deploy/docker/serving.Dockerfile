# The serving image: `flywheel serve` (FastAPI, ONNX Runtime / CPU torch), also used by the online feature updater
# (`flywheel features update`) and the pipeline exporter (`flywheel exporter`). CPU torch, no JVM, no compiler.
# Build from the repository root:
#   docker build -f deploy/docker/serving.Dockerfile -t flywheel-serving:0.1.0 .
# Pin the base by digest in your registry mirror (FROM python:3.11.13-slim-bookworm@sha256:...); the tag is pinned here.

FROM python:3.11.13-slim-bookworm AS build
# CPU wheels: serving needs no CUDA (the default PyPI torch for Linux would bring ~3 GB of CUDA libraries).
ARG TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md definitions.py ./
COPY pipelines ./pipelines
COPY assets ./assets
COPY resources ./resources
COPY jobs ./jobs
COPY sensors ./sensors
# TORCH_SPEC may carry pip options (--index-url ...), so it is split into words on purpose (SC2086); torch is
# pinned by TORCH_SPEC and the rest by pyproject.toml's version ranges, which `pip install .` honours (DL3013 asks
# for == pins on every name it sees on the line; the project has no lock file yet: see deploy/README.md).
# hadolint ignore=SC2086,DL3013
RUN pip install $TORCH_SPEC && pip install .

FROM python:3.11.13-slim-bookworm
LABEL org.opencontainers.image.title="flywheel-serving" \
      org.opencontainers.image.description="Flywheel model serving, online feature updater and pipeline exporter"
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp FLYWHEEL_STATE_DIR=/tmp/flywheel FLYWHEEL_PROFILE=k8s FLYWHEEL_LOG_FORMAT=json
RUN groupadd --gid 10001 flywheel \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin flywheel
COPY --from=build /opt/venv /opt/venv
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
# Liveness only (/healthz): readiness (/readyz) waits for a champion and belongs to the orchestrator's probe.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["flywheel", "serve", "--host", "0.0.0.0", "--port", "8080"]
