"""One asset graph, two profiles: only the resources differ, and the code location validates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from definitions import build_definitions

ROOT = Path(__file__).resolve().parents[3]


def test_both_profiles_share_assets_jobs_and_sensors() -> None:
    local = build_definitions("local")
    k8s = build_definitions("k8s")
    jobs = {job.name for job in local.resolve_all_job_defs()}
    assert {"ingest_job", "retrain_job", "pipeline_job"} <= jobs
    assert {a.key for a in local.resolve_all_asset_specs()} == {a.key for a in k8s.resolve_all_asset_specs()}
    assert set(local.resources) == set(k8s.resources)


def test_both_profiles_reach_spark_through_spark_remote(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`flywheel up` writes SPARK_REMOTE to stack.env; both profiles hand it to the Spark resource the same way,
    and only k8s refuses to fall back to an in-process session."""
    from dagster import EnvVar

    from resources.profiles import k8s, local

    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SPARK_REMOTE", "sc://127.0.0.1:15002")
    for build, strict in ((local, False), (k8s, True)):
        spark = build()["spark"]
        assert spark.remote == EnvVar("SPARK_REMOTE") and spark.require_cluster is strict


def test_profiles_read_the_environment_through_envvar(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What each profile connects to is visible in one place, secrets as EnvVar (never literal values)."""
    from dagster import EnvVar

    from resources.profiles import build_resources

    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path))
    for profile in ("local", "k8s"):
        res = build_resources(profile)
        assert isinstance(res["lakefs"].secret_access_key, EnvVar), profile
        assert res["lakefs"].secret_access_key.env_var_name == "LAKEFS_SECRET_ACCESS_KEY"
        assert isinstance(res["kafka"].bootstrap_servers, EnvVar) and isinstance(res["mlflow"].tracking_uri, EnvVar)
    monkeypatch.setenv("FLYWHEEL_TRAINING_IMAGE", "registry.example/flywheel:1")
    assert isinstance(build_resources("k8s")["trainer"].image, EnvVar)
    monkeypatch.delenv("FLYWHEEL_TRAINING_IMAGE")
    assert build_resources("k8s")["trainer"].image == ""


def test_local_profile_loads_the_stack_env_without_overriding(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from pipelines.config import load_stack_env

    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path))
    (tmp_path / "stack.env").write_text("FLYWHEEL_TEST_A=from-file\nFLYWHEEL_TEST_B=from-file\n")
    monkeypatch.setenv("FLYWHEEL_TEST_B", "from-env")
    monkeypatch.delenv("FLYWHEEL_TEST_A", raising=False)
    assert load_stack_env() == ["FLYWHEEL_TEST_A"]
    assert os.environ["FLYWHEEL_TEST_A"] == "from-file" and os.environ["FLYWHEEL_TEST_B"] == "from-env"
    monkeypatch.delenv("FLYWHEEL_TEST_A")


def test_unknown_profile_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.config import profile
    from pipelines.errors import FlywheelError

    monkeypatch.setenv("FLYWHEEL_PROFILE", "prod")
    with pytest.raises(FlywheelError, match="not a profile; use one of local, k8s"):
        profile()


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["local", "k8s"])
def test_dagster_definitions_validate(profile: str, tmp_path: Path) -> None:
    env = {**os.environ, "FLYWHEEL_PROFILE": profile, "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Validation successful" in result.stderr + result.stdout
