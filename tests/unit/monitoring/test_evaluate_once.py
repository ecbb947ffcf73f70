"""`python -m sensors.evaluate_once --launch` executes the job the drift sensor names in its request (the daemon
would), not always pipeline_job: with main already holding the drifted window the sensor asks for retrain_job."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from dagster import DagsterInstance, RunRequest

import sensors.evaluate_once as evaluate_once


class RecordingDefs:
    """Definitions whose jobs record the name they were resolved by and 'execute' without a stack."""

    resources: dict[str, Any] = {}

    def __init__(self) -> None:
        self.resolved: list[str] = []

    def resolve_job_def(self, name: str) -> Any:
        self.resolved.append(name)
        run = SimpleNamespace(run_id=f"run-of-{name}", success=True, get_asset_check_evaluations=lambda: [])
        return SimpleNamespace(execute_in_process=lambda **_: run)


@pytest.mark.parametrize("job", ["retrain_job", "pipeline_job"])
def test_launch_executes_the_job_the_sensor_requested(
    job: str, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    defs = RecordingDefs()
    request = RunRequest(run_key="drift-window-1", job_name=job, tags={"flywheel/trigger": "drift"})
    monkeypatch.setattr("definitions.build_definitions", lambda profile=None: defs)
    monkeypatch.setattr(evaluate_once, "evaluate", lambda instance, resources: request)
    monkeypatch.setattr(evaluate_once.DagsterInstance, "get", staticmethod(lambda: DagsterInstance.ephemeral()))
    monkeypatch.setattr(evaluate_once, "latest_report", lambda storage: None)

    assert evaluate_once.main(["--launch"]) == 0

    assert defs.resolved == [job]
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["job"] == job and out["run"] == {
        "run_id": f"run-of-{job}",
        "job": job,
        "success": True,
        "gate_passed": None,
    }
