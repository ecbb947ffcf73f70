"""The lineage chain's pure parts: what started a run, Dagster unreachable, the Markdown rendering."""

from __future__ import annotations

import pytest

from pipelines.audit import render
from pipelines.audit.trace import Sources, dagster_runs, trigger_of


def test_trigger_names_the_sensor_and_its_report_the_schedule_or_a_person() -> None:
    assert trigger_of({"dagster/sensor_name": "drift_sensor", "flywheel.drift_report": "r1"}) == (
        "sensor drift_sensor (report r1)"
    )
    assert trigger_of({"dagster/schedule_name": "weekly_retrain"}) == "schedule weekly_retrain"
    assert trigger_of({}) == "manual"


def test_dagster_runs_say_how_to_reach_the_ui_when_it_does_not_answer() -> None:
    runs = dagster_runs(Sources(lake=None, mlflow=None, dagster_url="http://127.0.0.1:9", timeout_s=0.5), ["r1"])
    assert "unreachable" in runs["r1"]["status"] and runs["r1"]["link"].endswith("/runs/r1")
    assert "no Dagster webserver" in dagster_runs(Sources(lake=None, mlflow=None), ["r2"])["r2"]["status"]


def test_markdown_shows_every_batch_with_its_offsets_and_the_decision() -> None:
    run = {"run_id": "abc", "name": "train", "status": "FINISHED", "link": "http://m/#/r/abc", "params": {},
           "metrics": {"test_auc": 0.9}, "code_version": "deadbeef"}  # fmt: skip
    chain = {
        "model": {"name": "m", "version": "3"},
        "dataset": {"repository": "repo", "commit": "c1", "spec": "s", "spec_hash": "h", "batches": [
            {"commit": "c0" * 8, "version": "1", "topic": "t", "offset_ranges": {"0": [0, 10]}, "events": 10,
             "quarantined": 1, "validation": "passed", "data_docs": None, "dagster_run_id": "d1"}]},
        "training": run,
        "optimization": {"run": run, "chosen": "onnx-int8", "reason": "fastest", "candidates": {
            "onnx-int8": {"auc": 0.9, "p50_b1_ms": 0.05, "size_bytes": 10}}},
        "gate": {"decision": "passed", "reason": "ok", "champion_version": None, "report_run": None},
        "rollout": {},
        "dagster_runs": {"d1": {"run_id": "d1", "status": "SUCCESS", "job": "ingest_job", "trigger": "manual"}},
        "now": {"aliases": ["champion"]},
    }  # fmt: skip
    text = render.markdown(chain)
    assert "p0: [0, 10]" in text and "**passed**" in text and "**onnx-int8**" in text and "champion" in text
    assert "deadbeef" in text and "ingest_job" in text
    assert "<pre>" in render.html_page(chain)


@pytest.mark.slow  # MLflow's schema migrations take seconds
def test_versions_list_the_aliases_the_version_search_leaves_out(tracking: str) -> None:
    from mlflow import MlflowClient

    from pipelines import registry
    from pipelines.audit.trace import versions
    from tests.unit.mlflow_sqlite import logged_model

    client = MlflowClient(tracking)
    first = registry.register(logged_model(), "m", {}, tracking)
    second = registry.register(logged_model(), "m", {}, tracking)
    client.set_registered_model_alias("m", registry.CHAMPION, first)
    client.set_registered_model_alias("m", registry.CHALLENGER, second)
    rows = {r["version"]: r for r in versions(Sources(lake=None, mlflow=client), "m")}
    assert rows[first]["aliases"] == [registry.CHAMPION] and rows[second]["aliases"] == [registry.CHALLENGER]
    assert rows[first]["serving"] and rows[second]["serving"]
