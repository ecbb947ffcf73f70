# MLflow tracking server for deploy/compose.yaml: the official image plus the PostgreSQL driver (backend store)
# and boto3 (artifacts in MinIO, and the one-shot bucket creation of the compose stack).
#   docker build -f deploy/docker/mlflow.Dockerfile -t flywheel-mlflow:3.5.0 deploy/docker
FROM ghcr.io/mlflow/mlflow:v3.5.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Wheels only: no compiler is installed, so no build stage is needed.
RUN pip install "psycopg2-binary==2.9.10" "boto3==1.35.99" \
 && useradd --uid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin mlflow
USER 10001
ENV HOME=/tmp
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=5 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:5000/health', timeout=2)"]
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
