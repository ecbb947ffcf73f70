"""Reaching Spark: a Spark Connect server (`SPARK_REMOTE`, what `flywheel up` starts and production points at a
cluster's Connect endpoint), a cluster master (`SPARK_MASTER`), or an in-process `local[*]` JVM as the fallback
when no server runs (tests, a bare `dagster job execute` without `flywheel up`).

A JVM here (in process, or the stack's Connect server) needs Java 17+, checked first with a clear message
instead of Py4J's "Java gateway process exited" traceback. A Connect client needs no local Java.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pipelines.errors import FlywheelError

log = logging.getLogger(__name__)

MIN_JAVA = 17
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


class SparkSetupError(FlywheelError):
    """Spark could not be started (no Java, wrong Java, unreachable Spark Connect server)."""


def java_binary() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


def java_major_version(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    text = out.stderr + out.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        raise SparkSetupError(f"could not read the Java version from `{java} -version`: {text.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def check_java() -> str:
    """The java binary Spark will use, or a SparkSetupError that says what to install."""
    java = java_binary()
    if java is None:
        raise SparkSetupError(
            f"Spark needs Java {MIN_JAVA}: no `java` on PATH and JAVA_HOME is not set. Install OpenJDK "
            f"{MIN_JAVA} (e.g. `apt-get install openjdk-{MIN_JAVA}-jre-headless`) or use Spark Connect "
            "(SPARK_REMOTE=sc://host:15002)"
        )
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise SparkSetupError(
            f"Spark 4 needs Java {MIN_JAVA} or newer, but {java} is Java {major}; install OpenJDK {MIN_JAVA} "
            "and point JAVA_HOME at it"
        )
    return java


# ---- the Spark Connect server of the embedded stack ------------------------------------------------------


def spark_home() -> Path:
    """pyspark's own install: it ships bin/, sbin/start-connect-server.sh and the spark-connect jar."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


# The throughput collector: the server runs batch queries, where G1's concurrent marking takes CPU from them on
# a small machine (measured: the 1M-row model-table query, warm, used 4.9-5.5 JVM CPU-s against 5.3-8.0 with
# G1 on 2 CPUs, and took 2.9-3.6 s against 3.1-4.5 s).
DEFAULT_JAVA_OPTIONS = "-XX:+UseParallelGC"


def connect_server_command(
    host: str,
    port: int,
    *,
    driver_memory: str = "2g",
    shuffle_partitions: int = 8,
    java_options: str = DEFAULT_JAVA_OPTIONS,
) -> list[str]:
    """The Connect server in the foreground (`--wait`), so the stack's process manager owns its JVM and `down`
    stops it. `local[*]` behind it; a busy port fails instead of moving to the next one. `java_options`: the
    driver JVM's (with local[*], the only JVM)."""
    script = spark_home() / "sbin" / "start-connect-server.sh"
    if not script.is_file():
        raise SparkSetupError(f"{script} is missing: reinstall pyspark (`make install`)")
    conf = {
        "spark.connect.grpc.binding.address": host,
        "spark.connect.grpc.binding.port": str(port),
        "spark.connect.grpc.port.maxRetries": "0",
        "spark.driver.host": host,
        "spark.driver.bindAddress": host,
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.log.level": "WARN",  # INFO writes dozens of lines per query into .flywheel/logs
    }
    if java_options:
        conf["spark.driver.extraJavaOptions"] = java_options
    args = ["bash", str(script), "--wait", "--master", "local[*]", "--driver-memory", driver_memory]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return args


def connect_server_env(work_dir: Path) -> dict[str, str]:
    """Where Spark's launcher scripts write (never into the virtualenv), and the Python of this install for any
    Python worker the server starts."""
    return {
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOG_DIR": str(work_dir),
        "SPARK_PID_DIR": str(work_dir),
        "PYSPARK_PYTHON": sys.executable,
    }


def remote_address(remote: str) -> tuple[str, int]:
    """(host, port) of an sc://host:port URL (15002, Spark's default, when no port is given)."""
    parsed = urlparse(remote)
    if parsed.scheme != "sc" or not parsed.hostname:
        raise SparkSetupError(f"SPARK_REMOTE={remote!r} is not a Spark Connect URL; use sc://host:port")
    return parsed.hostname, parsed.port or 15002


def server_answers(remote: str, timeout_s: float = 2.0) -> bool:
    """True when something listens at the Connect URL's address (a cheap probe before a gRPC session)."""
    host, port = remote_address(remote)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


# ---- sessions --------------------------------------------------------------------------------------------


def spark_session(
    *,
    master: str | None = None,
    remote: str | None = None,
    app_name: str = "flywheel",
    shuffle_partitions: int = 8,
    driver_memory: str = "2g",
    conf: dict[str, str] | None = None,
) -> Any:
    """A SparkSession: Spark Connect when `remote` is set, else a JVM in this process on `master` (local[*])."""
    from pyspark.sql import SparkSession

    session_conf = {
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        **(conf or {}),
    }
    if remote:
        builder = SparkSession.builder.remote(remote).appName(app_name)
        for key, value in session_conf.items():
            builder = builder.config(key, value)
        try:
            return builder.getOrCreate()
        except Exception as exc:  # grpc errors have many types; one clear sentence is what helps
            raise SparkSetupError(f"could not reach Spark Connect at {remote}: {exc}") from exc
    check_java()
    builder = (
        SparkSession.builder.master(master or "local[*]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", driver_memory)
    )
    for key, value in session_conf.items():
        builder = builder.config(key, value)
    try:
        with _without_connect_env():
            session = builder.getOrCreate()
    except Exception as exc:
        raise SparkSetupError(f"could not start Spark on {master or 'local[*]'}: {exc}") from exc
    session.sparkContext.setLogLevel("ERROR")
    return session


@contextlib.contextmanager
def _without_connect_env() -> Iterator[None]:
    """pyspark's builder turns any session into a Connect one while SPARK_REMOTE is in the environment (the
    local profile exports stack.env); the in-process fallback must be a real JVM session."""
    saved = os.environ.pop("SPARK_REMOTE", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["SPARK_REMOTE"] = saved


FALLBACK_MESSAGE = (
    "no Spark Connect server{why}: starting an in-process Spark session on {master} (a cold JVM for this run; "
    "`flywheel up` starts a warm Spark Connect server and writes SPARK_REMOTE to .flywheel/stack.env)"
)


def connect_or_local(
    remote: str | None,
    master: str | None,
    *,
    allow_fallback: bool = True,
    app_name: str = "flywheel",
    **options: Any,
) -> Any:
    """The session every run uses: the Connect server at `remote` when it answers, else (when `allow_fallback`)
    an in-process session on `master`, said in one log line. `allow_fallback=False` (the k8s profile) makes an
    unreachable server an error instead."""
    why = " (SPARK_REMOTE is not set)"
    if remote:
        if server_answers(remote):
            log.info("Spark: the Spark Connect server at %s", remote)
            return spark_session(remote=remote, app_name=app_name, **options)
        if not allow_fallback:
            raise SparkSetupError(
                f"the Spark Connect server at SPARK_REMOTE={remote} does not answer; start it (or fix the URL)"
            )
        why = f" answers at SPARK_REMOTE={remote}"
    elif master and not master.startswith("local"):
        log.info("Spark: a driver in this process on the cluster master %s", master)
        return spark_session(master=master, app_name=app_name, **options)
    log.warning(FALLBACK_MESSAGE.format(why=why, master=master or "local[*]"))
    return spark_session(master=master or "local[*]", app_name=app_name, **options)


def is_remote(session: Any) -> bool:
    """True for a Spark Connect session (its JVM is the server's, not this process's)."""
    return type(session).__module__.startswith("pyspark.sql.connect")


def shares_disk(session: Any) -> bool:
    """True when Spark's executors read this machine's files: an in-process `local` session, or a Connect
    server on a loopback address (the embedded stack's). A cluster's executors cannot read our local paths."""
    if is_remote(session):
        host = session.client.host
        if host == "localhost":
            return True
        with contextlib.suppress(ValueError):
            return ipaddress.ip_address(host).is_loopback
        return False
    return str(session.sparkContext.master).startswith("local")
