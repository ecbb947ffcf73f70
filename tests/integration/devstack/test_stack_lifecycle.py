"""`flywheel up | status | down` as a user runs them: real processes, real ports, nothing left behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from pipelines.config import read_env_file
from pipelines.devstack.net import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def flywheel(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _pids(state: Path) -> list[int]:
    data = json.loads((state / "stack.json").read_text())
    return [p["pid"] for p in data["processes"]]


def _family(pids: list[int]) -> set[int]:
    family = set()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            family |= {pid, *(c.pid for c in proc.children(recursive=True))}
        except psutil.Error:
            pass
    return family


@pytest.fixture
def env(isolated_state: Path) -> dict[str, str]:
    return {**os.environ, "FLYWHEEL_STATE_DIR": str(isolated_state)}


def test_up_status_second_up_down_leaves_nothing(env: dict[str, str], isolated_state: Path) -> None:
    ports = {"kafka": free_port(), "lakefs": free_port(), "mlflow": free_port(), "serving": free_port()}
    ports["spark_connect"] = free_port()
    args = [f"--{k}-port={v}" for k, v in ports.items()]
    up = flywheel("up", *args, env=env)
    assert up.returncode == 0, up.stderr
    assert "memory only" in up.stdout

    stack_env = read_env_file(isolated_state / "stack.env")
    assert stack_env["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{ports['kafka']}"
    assert stack_env["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{ports['mlflow']}"
    assert stack_env["LAKEFS_ENDPOINT"] == f"http://127.0.0.1:{ports['lakefs']}"
    assert stack_env["LAKEFS_ACCESS_KEY_ID"] and stack_env["LAKEFS_SECRET_ACCESS_KEY"]
    assert stack_env["SPARK_REMOTE"] == f"sc://127.0.0.1:{ports['spark_connect']}"
    assert stack_env["FLYWHEEL_SERVING_URL"] == f"http://127.0.0.1:{ports['serving']}"  # live, not ready: no champion
    assert oct((isolated_state / "stack.env").stat().st_mode & 0o777) == "0o600"

    status = flywheel("status", "--format", "json", env=env)
    assert status.returncode == 0, status.stderr
    rows = {r["service"]: r for r in json.loads(status.stdout)}
    assert {"kafka", "lakefs", "mlflow", "serving", "spark_connect"} <= set(rows)
    assert all(r["state"] == "running" for r in rows.values())

    # The topic of the default spec exists with the spec's partitions.
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=stack_env["KAFKA_BOOTSTRAP_SERVERS"], request_timeout_ms=10_000)
    try:
        assert consumer.partitions_for_topic("transactions") == {0, 1, 2}
    finally:
        consumer.close()

    second = flywheel("up", *args, env=env)
    assert second.returncode == 2
    assert "already running" in second.stderr and "Traceback" not in second.stderr

    family = _family(_pids(isolated_state))
    assert len(family) >= 3
    down = flywheel("down", env=env)
    assert down.returncode == 0, down.stderr
    assert "kafka" in down.stdout and "mlflow" in down.stdout
    leftovers = [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert leftovers == []
    assert not (isolated_state / "stack.env").exists()

    again = flywheel("status", env=env)
    assert again.returncode == 1 and "not running" in again.stdout
    assert "Nothing was running" in flywheel("down", env=env).stdout


def test_busy_port_is_one_clear_sentence_and_starts_nothing(env: dict[str, str], isolated_state: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        result = flywheel("up", "--services", "kafka", f"--kafka-port={busy}", env=env)
    assert result.returncode == 2
    assert f"port {busy}" in result.stderr and "already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (isolated_state / "stack.json").exists()


def test_missing_java_is_reported_before_anything_starts(
    env: dict[str, str], isolated_state: Path, tmp_path: Path
) -> None:
    no_java = {**env, "PATH": str(Path(sys.executable).parent), "JAVA_HOME": str(tmp_path / "nojava")}
    result = flywheel("up", "--services", "kafka", f"--kafka-port={free_port()}", env=no_java)
    assert result.returncode == 2
    assert "Java 17" in result.stderr and "Traceback" not in result.stderr
    assert not (isolated_state / "stack.json").exists()
