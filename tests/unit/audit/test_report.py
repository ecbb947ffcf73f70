"""Which versions the audit report covers, the files it writes, and the deployment records the chain reads."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from pipelines.audit import report
from pipelines.audit.trace import deployment_records
from pipelines.lineage.records import Deployment, record_to_json


class Versions:
    """A stand-in for MlflowClient.search_model_versions (no server in unit tests)."""

    def __init__(self, versions: list[SimpleNamespace]) -> None:
        self.versions = versions

    def search_model_versions(self, query: str) -> list[SimpleNamespace]:
        return self.versions


def mv(version: str, aliases: list[str], **tags: str) -> SimpleNamespace:
    return SimpleNamespace(version=version, aliases=aliases, tags=tags)


def test_promoted_means_an_alias_that_serves_or_served_or_the_rollout_tag() -> None:
    client = Versions([
        mv("4", ["challenger"]),
        mv("3", ["champion"]),
        mv("2", ["previous-champion"]),
        mv("1", [], **{"flywheel.rollout.decision": "promoted"}),
        mv("5", [], **{"flywheel.rollout.decision": "rolled_back"}),
        mv("6", [], **{"flywheel.gate.decision": "rejected"}),
    ])  # fmt: skip
    assert [v.version for v in report.promoted_versions(client, "m")] == ["1", "2", "3"]


def test_write_puts_three_formats_side_by_side(tmp_path: Path) -> None:
    minimal = {
        "model": {"name": "m", "version": "3"},
        "dataset": {"repository": "r", "commit": "c1", "spec": "s", "spec_hash": "h", "batches": []},
        "training": None,
        "optimization": {"run": None, "chosen": "fp32", "reason": "only", "candidates": {}},
        "gate": {"decision": "passed", "reason": "ok", "champion_version": None, "report_run": None},
        "rollout": {"flywheel.rollout.decision": "promoted"},
        "deployments": [{"dagster_run_id": "run12345x", "strategy": "canary", "steps": [10.0, 100.0],
                         "state": "promoted", "traffic": {"3": 1.0}, "previous_version": None, "message": "first"}],
        "dagster_runs": {},
        "now": {"aliases": ["champion"]},
    }  # fmt: skip
    paths = report.write(minimal, tmp_path / "m" / "v3")
    assert sorted(p.name for p in paths.values()) == ["lineage.html", "lineage.json", "lineage.md"]
    assert json.loads(paths["json"].read_text())["model"]["version"] == "3"
    assert "| `run12345` | canary | [10.0, 100.0] | promoted |" in paths["md"].read_text()
    assert not list((tmp_path / "m" / "v3").glob("*.tmp"))


def test_deployment_records_of_the_version_oldest_first(tmp_path: Path) -> None:
    def store(run: str, version: str, started: float) -> None:
        path = tmp_path / "runs" / run / "deployment.json"
        path.parent.mkdir(parents=True)
        path.write_text(record_to_json(Deployment("m", version, "canary", "started", started_at=started)))

    store("r2", "3", 20.0)
    store("r1", "3", 10.0)
    store("r3", "4", 30.0)
    (tmp_path / "runs" / "r4").mkdir()
    (tmp_path / "runs" / "r4" / "deployment.json").write_text("not json")  # skipped, not fatal
    found = deployment_records(tmp_path, "m", "3")
    assert [(d["dagster_run_id"], d["state"]) for d in found] == [("r1", "started"), ("r2", "started")]
    assert deployment_records(None, "m", "3") == [] and deployment_records(tmp_path / "none", "m", "3") == []
