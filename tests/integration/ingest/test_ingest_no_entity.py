"""A stream without an entity (each row its own case: loan applications), replayed from a CSV file with
`flywheel produce --from-file`, goes through ingestion (split by event id, no aggregates) and training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from harness import make_env

from pipelines import layout
from pipelines.cli import main as flywheel
from pipelines.errors import SpecError
from pipelines.features.split import split_of
from pipelines.lake import MAIN
from pipelines.lakecache import local_copies
from pipelines.spec import load_spec

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]

SPEC_YAML = """
name: loan_applications
topic: {name: loan-applications, partitions: 2}
event_id: application_id
timestamp: applied_at
label: defaulted
features:
  - {name: income, type: numeric, min: 0, max: 1000000}
  - {name: loan_amount, type: numeric, min: 0, max: 1000000}
  - {name: term, type: categorical, values: ["36", "60"]}
  - {name: employed, type: boolean}
gates: {min_rows: 300, label_rate_min: 0.01, label_rate_max: 0.6}
"""


def applications(n: int, seed: int = 4) -> pd.DataFrame:
    """Learnable: the larger the loan against the income, the likelier a default."""
    rng = np.random.default_rng(seed)
    income = rng.uniform(20_000, 200_000, n).round(2)
    amount = rng.uniform(1_000, 120_000, n).round(2)
    risk = amount / income + rng.normal(0, 0.15, n)
    return pd.DataFrame(
        {
            "application_id": [f"app-{i:05d}" for i in range(n)],
            "applied_at": pd.date_range("2026-01-01", periods=n, freq="17min", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
            "defaulted": (risk > 0.9).astype(int),
            "income": income,
            "loan_amount": amount,
            "term": rng.choice(["36", "60"], n),
            "employed": rng.random(n) < 0.8,
        }
    )


def test_aggregates_without_an_entity_key_are_refused_with_the_conflict(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC_YAML + "aggregates:\n  - {name: n_apps, function: count}\n")
    with pytest.raises(SpecError, match="need an entity_key"):
        load_spec(path)


def test_csv_stream_without_entity_is_ingested_and_trained(
    tmp_path: Path, kafka_bootstrap: str, lakefs_env: dict[str, str], spark, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_file = tmp_path / "loans.yaml"
    spec_file.write_text(SPEC_YAML)
    env = make_env(tmp_path, load_spec(spec_file), kafka_bootstrap, lakefs_env, spark)
    monkeypatch.setenv("LAKEFS_REPOSITORY", env.repository)
    spec = env.spec
    assert spec.entity_key is None and spec.split_key == "application_id"
    csv = tmp_path / "applications.csv"
    frame = applications(1200)
    frame.to_csv(csv, index=False)
    args = ["produce", "--from-file", str(csv), "--spec", str(env.spec_path), "--bootstrap-servers", kafka_bootstrap]
    assert flywheel(args) == 0

    outcome = env.run()
    assert outcome.status == "published", outcome.validation and outcome.validation.failures
    assert (outcome.raw.valid, outcome.raw.quarantined) == (1200, 0)
    files = local_copies(env.lake, MAIN, layout.features_prefix(spec))
    table = pa.concat_tables(pq.read_table(f) for f in files if "/_meta/" not in str(f))
    assert table.column_names == layout.feature_table_columns(spec)
    assert table.column_names[:3] == ["application_id", "applied_at", "defaulted"]
    rows = table.to_pylist()
    assert len(rows) == 1200
    assert all(r["split"] == split_of(r["application_id"], spec) for r in rows)  # each row its own case
    assert {r["split"] for r in rows} == set(layout.SPLITS)

    # training reads the pinned commit and learns
    commit = env.lake.resolve(MAIN)
    result = tmp_path / "result.json"
    child_env = {**os.environ, **env.env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable, "-m", "pipelines.training.entry",
            "--data", f"lakefs://{env.repository}/{commit}/", "--spec", str(env.spec_path),
            "--no-mlflow", "--epochs", "4", "--batch-size", "128", "--result-json", str(result),
        ],
        cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(result.read_text())
    assert summary["trained_model"]["lakefs_commit"] == commit
    assert summary["metrics"]["test_auc"] > 0.7, summary["metrics"]  # it learned the risk from the features
