"""Creating a Spark session: local (`local[*]`), a cluster master (`SPARK_MASTER`) or Spark Connect.

A local or cluster-master session runs a JVM in this process, so Java 17+ is checked first with a clear
message instead of Py4J's "Java gateway process exited" traceback. Spark Connect needs no local Java.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipelines.config import state_dir
from pipelines.errors import FlywheelError

MIN_JAVA = 17


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


# ---- the class archive (AppCDS) a JVM session maps when `python -m pipelines.devstack.spark_archive` wrote it ----


def archive_path(state: Path | None = None) -> Path:
    """Where this JDK + pyspark's class archive lives (it does not have to exist); named after both, so an
    upgrade makes a new one instead of tripping over the old one."""
    import pyspark

    java = java_binary() or "java"
    stat = os.stat(java) if os.path.exists(java) else None
    key = f"{os.path.realpath(java)}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}:"
    key += f"{pyspark.__version__}:{os.path.dirname(pyspark.__file__)}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return (state or state_dir()) / "spark" / f"classes-{digest}.jsa"


def java_options(state: Path | None = None) -> list[str]:
    """JVM options that map the class archive, or none when it was not written."""
    path = archive_path(state)
    return [f"-XX:SharedArchiveFile={path}"] if path.is_file() else []


def spark_session(
    *,
    master: str | None = None,
    remote: str | None = None,
    app_name: str = "flywheel",
    shuffle_partitions: int = 8,
    driver_memory: str = "2g",
    conf: dict[str, str] | None = None,
    class_archive: bool = True,
) -> Any:
    """A SparkSession: Spark Connect when `remote` is set, else a JVM session on `master` (default local[*]).

    A JVM session maps the class archive when one was written (see pipelines.devstack.spark_archive)."""
    from pyspark.sql import SparkSession

    extra = with_java_options(conf or {}, java_options() if class_archive and not remote else [])
    if remote:
        builder = SparkSession.builder.remote(remote).appName(app_name)
        for key, value in extra.items():
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
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", driver_memory)
    )
    for key, value in extra.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:
        raise SparkSetupError(f"could not start Spark on {master or 'local[*]'}: {exc}") from exc
    session.sparkContext.setLogLevel("ERROR")
    return session


def with_java_options(conf: dict[str, str], options: list[str]) -> dict[str, str]:
    """`conf` with `options` put before the driver JVM options it already has (the caller's win on conflict)."""
    key = "spark.driver.extraJavaOptions"
    merged = dict(conf)
    if options:
        merged[key] = " ".join([*options, merged[key]] if merged.get(key) else options)
    return merged


def is_remote(session: Any) -> bool:
    """True for a Spark Connect session (no JVM here, so local files are not readable by the server)."""
    return type(session).__module__.startswith("pyspark.sql.connect")


# ---- starting the session in the background ------------------------------------------------------------
# A JVM session takes seconds to start and its first query seconds more; a run that knows it will need
# Spark later starts it while it reads Kafka. The session is process-wide (pyspark keeps one), so whoever
# builds the model table later in this process takes it with `take_started()`.
_STARTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flywheel-spark-start")
_LOCK = threading.Lock()
_pending: Future | None = None


def start_in_background(make: Callable[[], Any], then: Callable[[Any], None] | None = None) -> Future:
    """Create the session with `make()` on a background thread, then run `then(session)` (e.g. a warm-up)
    there. Once per process until the session is taken: a second call returns the first call's future."""
    global _pending

    def start() -> Any:
        session = make()
        if then is not None:
            then(session)
        return session

    with _LOCK:
        if _pending is None:
            _pending = _STARTER.submit(start)
        return _pending


def take_started(timeout_s: float = 600.0) -> Any | None:
    """The session `start_in_background` made (waiting for it and its warm-up), or None if none was started.
    A failed start raises its error here (e.g. SparkSetupError: no Java)."""
    global _pending
    with _LOCK:
        future, _pending = _pending, None
    if future is None:
        return None
    return future.result(timeout=timeout_s)


def cancel_started() -> None:
    """Forget a background start not needed after all (a run that found nothing new); the session, if
    made, stays pyspark's process-wide session."""
    global _pending
    with _LOCK:
        future, _pending = _pending, None
    if future is not None:
        future.cancel()
