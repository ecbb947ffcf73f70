"""Spark session setup errors are one clear sentence (no JVM needed for these)."""

from __future__ import annotations

import socket

import pytest

from pipelines import spark as spark_mod
from pipelines.devstack.net import free_port


def test_missing_java_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spark_mod, "java_binary", lambda: None)
    with pytest.raises(spark_mod.SparkSetupError, match="needs Java 17"):
        spark_mod.check_java()


def test_old_java_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spark_mod, "java_binary", lambda: "/usr/bin/java")
    monkeypatch.setattr(spark_mod, "java_major_version", lambda _: 11)
    with pytest.raises(spark_mod.SparkSetupError, match="Java 17 or newer, but /usr/bin/java is Java 11"):
        spark_mod.check_java()


def test_installed_java_passes() -> None:
    java = spark_mod.java_binary()
    if java is None:
        pytest.skip("no java here")
    assert spark_mod.java_major_version(java) >= 17


class _ConnectLike:
    """Looks like a Spark Connect session to is_remote/shares_disk: a client with a host, no JVM here."""

    def __init__(self, host: str) -> None:
        self.client = type("Client", (), {"host": host})()


_ConnectLike.__module__ = "pyspark.sql.connect.session"


def test_only_a_connect_server_on_this_machine_shares_its_disk() -> None:
    assert spark_mod.is_remote(_ConnectLike("127.0.0.1"))
    assert spark_mod.shares_disk(_ConnectLike("127.0.0.1"))
    assert spark_mod.shares_disk(_ConnectLike("localhost"))
    assert spark_mod.shares_disk(_ConnectLike("::1"))
    assert not spark_mod.shares_disk(_ConnectLike("spark-connect.flywheel.svc"))
    assert not spark_mod.shares_disk(_ConnectLike("10.0.0.7"))


def test_remote_address_reads_sc_urls_and_rejects_others() -> None:
    assert spark_mod.remote_address("sc://127.0.0.1:15333") == ("127.0.0.1", 15333)
    assert spark_mod.remote_address("sc://spark.example/;token=abc") == ("spark.example", 15002)
    with pytest.raises(spark_mod.SparkSetupError, match="not a Spark Connect URL"):
        spark_mod.remote_address("http://127.0.0.1:15002")


def _record_sessions(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    made: list[dict] = []
    monkeypatch.setattr(spark_mod, "spark_session", lambda **kw: made.append(kw) or kw)
    return made


def test_without_a_server_the_session_is_in_process_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    made = _record_sessions(monkeypatch)
    with caplog.at_level("INFO", logger="pipelines.spark"):
        spark_mod.connect_or_local(None, "local[*]")
    assert made == [{"master": "local[*]", "app_name": "flywheel"}]
    assert "no Spark Connect server (SPARK_REMOTE is not set): starting an in-process Spark session" in caplog.text

    caplog.clear()
    dead = f"sc://127.0.0.1:{free_port()}"  # nothing listens there
    with caplog.at_level("INFO", logger="pipelines.spark"):
        spark_mod.connect_or_local(dead, "local[2]")
    assert made[-1] == {"master": "local[2]", "app_name": "flywheel"}
    assert f"no Spark Connect server answers at SPARK_REMOTE={dead}" in caplog.text
    assert "flywheel up" in caplog.text


def test_an_unreachable_server_is_an_error_where_no_fallback_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    made = _record_sessions(monkeypatch)
    dead = f"sc://127.0.0.1:{free_port()}"
    with pytest.raises(spark_mod.SparkSetupError, match="does not answer"):
        spark_mod.connect_or_local(dead, "", allow_fallback=False)
    assert made == []


def test_a_server_that_answers_is_used(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    made = _record_sessions(monkeypatch)
    with socket.socket() as listener:  # something listening is all the probe asks; the session is recorded
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"sc://127.0.0.1:{listener.getsockname()[1]}"
        with caplog.at_level("INFO", logger="pipelines.spark"):
            spark_mod.connect_or_local(url, "local[*]")
    assert made == [{"remote": url, "app_name": "flywheel"}]
    assert "no Spark Connect server" not in caplog.text


def test_the_connect_server_runs_in_the_foreground_on_its_port_only(tmp_path) -> None:
    cmd = spark_mod.connect_server_command("127.0.0.1", 15333, driver_memory="1g")
    assert cmd[1].endswith("sbin/start-connect-server.sh") and "--wait" in cmd
    assert cmd[cmd.index("--master") + 1] == "local[*]"
    confs = dict(cmd[i + 1].split("=", 1) for i, arg in enumerate(cmd) if arg == "--conf")
    assert confs["spark.connect.grpc.binding.port"] == "15333"
    assert confs["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert confs["spark.connect.grpc.port.maxRetries"] == "0"  # a busy port fails, never moves
    assert confs["spark.driver.extraJavaOptions"] == "-XX:+UseParallelGC"  # the throughput collector by default
    plain = spark_mod.connect_server_command("127.0.0.1", 15333, java_options="")
    assert not any(arg.startswith("spark.driver.extraJavaOptions=") for arg in plain)  # "" leaves the JVM's own
    env = spark_mod.connect_server_env(tmp_path)
    assert env["SPARK_LOG_DIR"] == env["SPARK_PID_DIR"] == str(tmp_path)  # never into the virtualenv


@pytest.mark.parametrize(
    ("env", "expected"),
    [(None, "-XX:+UseParallelGC"), ("  ", None), ("-XX:+UseG1GC -Xss4m", "-XX:+UseG1GC -Xss4m")],
)
def test_the_stack_server_takes_its_jvm_options_from_the_environment(monkeypatch, tmp_path, env, expected) -> None:
    from pipelines.devstack.services import Context, _spark_connect_command

    monkeypatch.setattr(spark_mod, "check_java", lambda: "java")
    if env is None:
        monkeypatch.delenv("FLYWHEEL_SPARK_JAVA_OPTIONS", raising=False)
    else:
        monkeypatch.setenv("FLYWHEEL_SPARK_JAVA_OPTIONS", env)  # replaces the default; blank: the JVM's own
    cmd = _spark_connect_command(Context(tmp_path, tmp_path, "127.0.0.1", {"spark_connect": 15333}))
    confs = dict(cmd[i + 1].split("=", 1) for i, arg in enumerate(cmd) if arg == "--conf")
    assert confs.get("spark.driver.extraJavaOptions") == expected
