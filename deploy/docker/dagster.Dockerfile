# The Dagster image: the code location (gRPC code server), and the webserver, daemon and run pods, which the
# K8sRunLauncher starts from the code location's image. Includes dagster-postgres (run/event/schedule storage)
# and dagster-k8s (a dependency). The k8s profile reaches Spark through Spark Connect (SPARK_REMOTE), whose Python
# client needs no JVM; the Java 17 runtime is here for the in-process Spark session the compose stack uses.
# Build from the repository root:
#   docker build -f deploy/docker/dagster.Dockerfile -t flywheel-dagster:0.1.0 .
# Pin the base by digest in your registry mirror (FROM python:3.11.13-slim-bookworm@sha256:...); the tag is pinned here.

FROM python:3.11.13-slim-bookworm AS build
# The orchestrating pods never train: CPU torch (training runs in the training image).
ARG TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
# dagster-postgres is released in lockstep with dagster: 0.29.N goes with dagster 1.13.N.
ARG DAGSTER_POSTGRES_VERSION=0.29.27
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
RUN pip install $TORCH_SPEC && pip install . "dagster-postgres==${DAGSTER_POSTGRES_VERSION}"

FROM python:3.11.13-slim-bookworm
LABEL org.opencontainers.image.title="flywheel-dagster" \
      org.opencontainers.image.description="Flywheel Dagster code location, webserver, daemon and run pods"
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp FLYWHEEL_STATE_DIR=/tmp/flywheel FLYWHEEL_PROFILE=k8s FLYWHEEL_LOG_FORMAT=json DAGSTER_HOME=/opt/dagster/dagster_home
# Debian replaces a package's exact version with each security update, so the JRE is pinned through the base
# image (tag, and digest in your mirror) rather than by an apt version that would stop resolving (DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
 && mkdir -p /usr/share/man/man1 \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 flywheel \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin flywheel \
 && mkdir -p /opt/dagster/dagster_home /opt/flywheel /var/lib/flywheel/records \
 && chown 10001:10001 /opt/dagster/dagster_home /var/lib/flywheel/records
COPY --from=build /opt/venv /opt/venv
# workspace.yaml for `dagster dev`/`dagster-webserver -w` next to the code (the Helm chart writes its own).
COPY workspace.yaml /opt/flywheel/
WORKDIR /opt/flywheel
USER 10001:10001
EXPOSE 4000
HEALTHCHECK --interval=20s --timeout=5s --start-period=120s --retries=3 \
  CMD ["dagster", "api", "grpc-health-check", "-p", "4000"]
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "definitions", "-a", "defs"]
