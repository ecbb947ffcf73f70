"""Spark session setup errors are one clear sentence (no JVM needed for these)."""

from __future__ import annotations

import pytest

from pipelines import spark as spark_mod


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


def test_background_start_hands_over_one_session_and_its_warm_up() -> None:
    made, warmed = [], []

    def make() -> object:
        made.append(object())
        return made[-1]

    first = spark_mod.start_in_background(make, warmed.append)
    assert spark_mod.start_in_background(make) is first  # once per process until taken
    session = spark_mod.take_started(timeout_s=10)
    assert session is made[0] and warmed == [session] and len(made) == 1
    assert spark_mod.take_started() is None  # taken: the next caller creates its own


def test_a_failed_background_start_raises_where_the_session_is_taken() -> None:
    def make() -> object:
        raise spark_mod.SparkSetupError("Spark needs Java 17")

    spark_mod.start_in_background(make)
    with pytest.raises(spark_mod.SparkSetupError, match="Java 17"):
        spark_mod.take_started(timeout_s=10)
    spark_mod.start_in_background(lambda: "ok")
    spark_mod.cancel_started()
    assert spark_mod.take_started() is None


def test_the_class_archive_is_used_only_once_written(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path))
    assert spark_mod.java_options() == []
    path = spark_mod.archive_path()
    assert path.parent == tmp_path / "spark" and path.name.startswith("classes-")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"archive")
    assert spark_mod.java_options() == [f"-XX:SharedArchiveFile={path}"]


def test_java_options_go_before_the_callers_own() -> None:
    key = "spark.driver.extraJavaOptions"
    assert spark_mod.with_java_options({}, []) == {}
    assert spark_mod.with_java_options({"a": "b"}, ["-Xa"]) == {"a": "b", key: "-Xa"}
    assert spark_mod.with_java_options({key: "-Xmine"}, ["-Xa"]) == {key: "-Xa -Xmine"}


def test_spark_during_read_starts_once_at_the_first_event_and_hands_over() -> None:
    from pipelines.features.build import SparkDuringRead
    from pipelines.spec import load_spec

    class ConnectSession:  # looks like a Spark Connect session: never warmed up, so no JVM is needed here
        pass

    ConnectSession.__module__ = "pyspark.sql.connect.session"
    session = ConnectSession()
    assert spark_mod.is_remote(session)
    made: list[object] = []
    spec = load_spec("transactions")
    with SparkDuringRead(lambda: made.append(session) or session, spec, enabled=False) as off:
        off(100)
    assert off.started_at is None and spark_mod.take_started() is None

    with SparkDuringRead(lambda: made.append(session) or session, spec) as during:
        during(0)  # no events yet: nothing starts
        assert during.started_at is None
        during(5)
        during(10)
    assert during.started_at is not None and not during.reading.is_set()
    assert spark_mod.take_started(timeout_s=10) is session and made == [session]


def test_spark_during_a_failed_read_is_not_left_pending() -> None:
    from pipelines.features.build import SparkDuringRead
    from pipelines.spec import load_spec

    never_taken = SparkDuringRead(lambda: None, load_spec("transactions"))  # a start that goes nowhere
    with pytest.raises(RuntimeError), never_taken as during:
        during(1)
        raise RuntimeError("the read failed")
    assert spark_mod.take_started() is None
