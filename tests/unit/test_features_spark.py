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
