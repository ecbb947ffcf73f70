"""Spark session setup errors are one clear sentence (no JVM needed for these)."""

from __future__ import annotations

import pytest

from pipelines.features import spark as spark_mod


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
    from pipelines.features import cds

    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path))
    assert cds.java_options() == []
    path = cds.archive_path()
    assert path.parent == tmp_path / "spark" and path.name.startswith("classes-")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"archive")
    assert cds.java_options() == [f"-XX:SharedArchiveFile={path}"]


def test_java_options_go_before_the_callers_own() -> None:
    key = "spark.driver.extraJavaOptions"
    assert spark_mod.with_java_options({}, []) == {}
    assert spark_mod.with_java_options({"a": "b"}, ["-Xa"]) == {"a": "b", key: "-Xa"}
    assert spark_mod.with_java_options({key: "-Xmine"}, ["-Xa"]) == {key: "-Xa -Xmine"}
