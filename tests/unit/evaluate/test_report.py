"""The gate report names what was judged (lakeFS commit, code SHA, Dagster run id, trigger) and draws the
challenger vs champion overlays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.evaluate.gate import GateDecision, decide
from pipelines.evaluate.report import PLOTS, REPORT_NAME, write_report
from pipelines.spec import load_spec

BASE = load_spec("transactions")
SPEC = BASE.model_copy(update={"gates": BASE.gates.model_copy(update={"bootstrap_samples": 100})})
COMMIT = "3f1c9a7e5b2d40c8a6f1e9d7b3c5a2e4f6d8b0c1a3e5f7d9b1c3e5a7f9d1b3c5"
SHA = "9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b"
RUN_ID = "4e1f2a3b-5c6d-7e8f-9a0b-1c2d3e4f5a6b"


def case(champion: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, GateDecision]:
    rng = np.random.default_rng(0)
    n = 3000
    logit = -1.0 + 1.6 * rng.normal(size=n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    challenger = 1 / (1 + np.exp(-logit))
    older = 1 / (1 + np.exp(-(logit + 0.7 * rng.normal(size=n)))) if champion else None
    channel = rng.choice(np.array(["chip", "online", "manual"]), size=n, p=[0.5, 0.47, 0.03])
    return labels, challenger, older, channel, decide(labels, challenger, older, channel, SPEC, 1.2)


def write(tmp_path: Path, champion: bool, trigger: str = "schedule nightly_retrain") -> Path:
    labels, challenger, older, _, decision = case(champion)
    return write_report(
        decision,
        tmp_path / "gate",
        model_name="transactions_fraud",
        challenger_version="7",
        champion_version="5" if champion else None,
        lakefs_repository="transactions",
        lakefs_commit=COMMIT,
        code_version=SHA,
        dagster_run_id=RUN_ID,
        trigger=trigger,
        labels=labels,
        challenger_scores=challenger,
        champion_scores=older,
    )


def test_the_report_names_commit_sha_run_and_trigger(tmp_path: Path) -> None:
    report = write(tmp_path, champion=True)
    assert report == tmp_path / "gate" / REPORT_NAME
    text = report.read_text()
    assert f"`{COMMIT}`" in text  # the full commit, not a prefix
    assert f"lakefs://transactions/{COMMIT}/" in text
    assert SHA in text and RUN_ID in text and "schedule nightly_retrain" in text
    assert "version 7" in text and "version 5" in text and "passed" in text.splitlines()[0]
    assert "| min_auc | pass |" in text and "max_auc_regression" in text
    # the per-slice table, with the small slice reported but not judged
    assert "| channel | rows |" in text and "| manual |" in text and "fewer than 200 rows" in text
    for plot in PLOTS:
        assert f"]({plot})" in text
    stored = json.loads((report.parent / "decision.json").read_text())
    assert stored["lakefs_commit"] == COMMIT and stored["decision"]["passed"] is True


def test_the_report_writes_the_overlays(tmp_path: Path) -> None:
    report = write(tmp_path, champion=True)
    for plot in PLOTS:
        data = (report.parent / plot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, plot


def test_the_first_model_report_says_there_is_no_champion(tmp_path: Path) -> None:
    text = write(tmp_path, champion=False, trigger="manual").read_text()
    assert "none (first model)" in text and "| trigger | manual |" in text
    assert "max_auc_regression" not in text
    assert all((tmp_path / "gate" / plot).exists() for plot in PLOTS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trigger": "backfill"}, "not one of"),
        ({"lakefs_commit": ""}, "lakeFS commit"),
        ({"champion_version": "5"}, "together"),
    ],
)
def test_refuses_a_report_that_cannot_name_what_was_judged(tmp_path: Path, change: dict, message: str) -> None:
    labels, challenger, _, _, decision = case(champion=False)
    kwargs = {
        "model_name": "m",
        "challenger_version": "1",
        "champion_version": None,
        "lakefs_repository": "r",
        "lakefs_commit": COMMIT,
        "code_version": SHA,
        "dagster_run_id": RUN_ID,
        "trigger": "sensor drift_sensor",
        "labels": labels,
        "challenger_scores": challenger,
        "champion_scores": None,
    }
    with pytest.raises(ValueError, match=message):
        write_report(decision, tmp_path, **{**kwargs, **change})
