"""Class-data sharing (AppCDS) for Spark's JVM: the classes a session loads, written once to an archive that
later JVMs map instead of loading, parsing and verifying each one again.

Measured on 2 CPUs: a session start went from 4.9-5.4s to 2.8-3.2s, and the first model-table query on 1M
rows from 10.9-12.0s to 9.3-9.4s. Each cold JVM (every ingestion run) saves that.

`python -m pipelines.devstack.spark_archive` writes the archive, about 20s once per JDK and pyspark install; `make dev`
runs it. `spark_session()` uses it when it exists. A JVM that cannot use it (another JDK, another classpath)
warns and runs without it. The archive lives under the state directory, named after what it depends on, so
an upgrade makes a new one instead of tripping over the old one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from pipelines.errors import FlywheelError
from pipelines.spark import archive_path

PID_PREFIX = "flywheel-spark-jvm-pid="


def write_archive(state: Path | None = None, timeout_s: float = 600.0) -> Path:
    """Write the archive (a no-op when it exists): a child process starts Spark with the archive requested
    at JVM exit, runs the model-table query on generated rows, and exits; its JVM then writes the archive,
    which is renamed into place once that JVM has gone."""
    import psutil

    path = archive_path(state)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        child = subprocess.run(
            [sys.executable, "-m", "pipelines.devstack.spark_archive", "--dump-to", str(tmp)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        raise FlywheelError(f"writing Spark's class archive took over {timeout_s:g}s; nothing was written") from None
    pids = [line[len(PID_PREFIX) :] for line in child.stdout.splitlines() if line.startswith(PID_PREFIX)]
    if child.returncode != 0 or not pids:
        raise FlywheelError(
            f"writing Spark's class archive failed (exit {child.returncode}): {child.stderr.strip()[-800:]}"
        )
    try:
        psutil.Process(int(pids[-1])).wait(timeout=120)  # the JVM writes the archive as it exits
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        raise FlywheelError(f"Spark's JVM (pid {pids[-1]}) did not exit within 120s to write its archive") from None
    if not tmp.is_file() or tmp.stat().st_size == 0:
        raise FlywheelError(f"Spark's JVM exited without writing its class archive to {tmp}")
    os.replace(tmp, path)
    return path


def _dump(tmp: Path) -> None:
    """The child: a session whose JVM writes the archive of the classes it loaded when it exits."""
    from pipelines.features.build import warm_up
    from pipelines.spark import spark_session
    from pipelines.spec import load_spec

    session = spark_session(
        app_name="flywheel-class-archive",
        conf={"spark.driver.extraJavaOptions": f"-XX:ArchiveClassesAtExit={tmp}"},
        class_archive=False,
    )
    pid = session.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    if not warm_up(session, load_spec(None)):
        raise FlywheelError("the model-table query on generated rows failed; see the log above")
    session.stop()
    print(f"{PID_PREFIX}{pid}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.devstack.spark_archive", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dump-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dump_to is not None:
        _dump(args.dump_to)
        return 0
    existed = archive_path().is_file()
    path = write_archive()
    print(f"Spark class archive {'already there' if existed else 'written'}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
