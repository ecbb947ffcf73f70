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
    for name in ("ingest_job", "retrain_job", "pipeline_job"):
        assert local.resolve_job_def(name) is not None
    assert {a.key for a in local.resolve_all_asset_specs()} == {a.key for a in k8s.resolve_all_asset_specs()}
    assert set(local.resources) == set(k8s.resources)


def test_ingest_job_runs_its_steps_in_one_process() -> None:
    """So raw_events can start the Spark JVM that features then uses (see assets/ingest.py)."""
    from assets.ingest import _steps_share_process

    defs = build_definitions("local")
    job = defs.resolve_job_def("ingest_job")
    assert job.executor_def.name == "in_process"

    class Context:  # the one attribute _steps_share_process reads
        job_def = job

    assert _steps_share_process(Context())  # type: ignore[arg-type]
    Context.job_def = defs.resolve_job_def("retrain_job")
    assert not _steps_share_process(Context())  # type: ignore[arg-type]


def test_unknown_profile_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.config import profile
    from pipelines.errors import FlywheelError

    monkeypatch.setenv("FLYWHEEL_PROFILE", "prod")
    with pytest.raises(FlywheelError, match="not a profile; use one of local, k8s"):
        profile()


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
