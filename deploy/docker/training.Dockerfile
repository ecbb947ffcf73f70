# The CUDA training image: torchrun workers of `pipelines.training.entry`, launched as Kubernetes pods, Indexed
# Jobs or PyTorchJobs by resources/training.py (FLYWHEEL_TRAINING_IMAGE). No HTTP server: health is the exit code.
# Build from the repository root:
#   docker build -f deploy/docker/training.Dockerfile -t flywheel-training:0.1.0 .
#   # another CUDA build, as with `make install TORCH_SPEC=...`:
#   docker build -f deploy/docker/training.Dockerfile --build-arg TORCH_SPEC="torch==2.13.0 --index-url <CUDA wheel index>" .
# PyPI's torch wheel for Linux x86_64 is the CUDA build (torch 2.x): it brings the CUDA runtime, cuDNN and NCCL as
# nvidia-* wheels, so the base needs no CUDA toolkit; the GPU driver comes from the node (NVIDIA container toolkit).
# A mirror that serves CPU wheels (+cpu) fails the build below: pass a CUDA index in TORCH_SPEC then.
# Pin the base by digest in your registry mirror (FROM python:3.11.13-slim-bookworm@sha256:...); the tag is pinned here.

FROM python:3.11.13-slim-bookworm AS build
ARG TORCH_SPEC="torch==2.13.0"
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
RUN pip install $TORCH_SPEC && pip install . \
 && python -c "import torch, sys; sys.exit(0 if torch.version.cuda else 'TORCH_SPEC installed a CPU-only torch: pass a CUDA build')"

FROM python:3.11.13-slim-bookworm
LABEL org.opencontainers.image.title="flywheel-training" \
      org.opencontainers.image.description="Flywheel distributed PyTorch training workers (CUDA)"
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp FLYWHEEL_STATE_DIR=/tmp/flywheel MPLCONFIGDIR=/tmp/matplotlib FLYWHEEL_PROFILE=k8s FLYWHEEL_LOG_FORMAT=json \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN groupadd --gid 10001 flywheel \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin flywheel
COPY --from=build /opt/venv /opt/venv
WORKDIR /workspace
USER 10001:10001
# torchrun's rendezvous port (pipelines.training.k8s.RENDEZVOUS_PORT)
EXPOSE 29500
# A batch job: the orchestrator judges it by its exit code (a probe killing a rank mid-collective fails them all).
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "torch.distributed.run"]
CMD ["--standalone", "--nproc-per-node", "1", "-m", "pipelines.training.entry", "--help"]
