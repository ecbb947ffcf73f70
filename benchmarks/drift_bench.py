"""Drift check on 1M rows x 20 features (10 numeric, 10 categorical) against Evidently's data-drift preset on the
same data, in the same run. Writes benchmarks/results/drift.json and .md.

    .venv/bin/python -m benchmarks.drift_bench [--rows 1000000] [--repeats 3] [--no-evidently]

Data: a reference and a current table of `--rows` rows each, drawn with known changes: some columns drift
clearly, some a little (significant at this size, below any effect threshold), one gets unseen categories,
the rest not at all. Timed: Flywheel's check of the current table against the cached reference profile (what
the sensor runs on every tick; the profile is built once per champion and timed apart), the HTML report, and
Evidently's DataDriftPreset (Report.run, then save_html). Compared: per-column verdicts (drifted or not).
Evidently (the `bench` extra) is optional: without it only Flywheel's side is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.run_facts import run_facts  # noqa: E402
from pipelines.lineage.records import DriftReport  # noqa: E402
from pipelines.monitoring.check import check_drift  # noqa: E402
from pipelines.monitoring.profile import build_profile  # noqa: E402
from pipelines.monitoring.report import write_report  # noqa: E402
from pipelines.spec.model import DatasetSpec  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
GOAL_S = 1.0
# What each column gets in the current table (the reference has none of it).
CHANGES = {
    "n0": "normal, mean +0.5 sd (clear drift)",
    "n1": "lognormal, x1.3 (clear drift)",
    "n2": "uniform, unchanged",
    "n3": "exponential, +0.02 (tiny: significant at 1M rows, no effect)",
    "n4": "poisson 3 -> 4 (clear drift)",
    "n5": "normal, unchanged",
    "n6": "gamma, sd +10% (mild)",
    "n7": "normal, 5% more nulls",
    "n8": "uniform integers, unchanged",
    "n9": "student t, unchanged",
    "c0": "5 categories, mix reshuffled (clear drift)",
    "c1": "20 categories, 5% of mass moved (mild)",
    "c2": "8 categories, 3% unseen values",
    "c3": "2 categories, unchanged",
    "c4": "50 categories, unchanged",
    "c5": "10 categories, unchanged",
    "c6": "3 categories, 60/30/10 -> 50/35/15 (moderate)",
    "c7": "12 categories, unchanged",
    "c8": "6 categories, unchanged",
    "c9": "30 categories, one category doubled",
}
CARDINALITY = {"c0": 5, "c1": 20, "c2": 8, "c3": 2, "c4": 50, "c5": 10, "c6": 3, "c7": 12, "c8": 6, "c9": 30}


def bench_spec() -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": "drift_bench",
            "topic": {"name": "drift-bench"},
            "event_id": "id",
            "timestamp": "ts",
            "label": "y",
            "features": [
                *({"name": f"n{i}", "type": "numeric", "nullable": True} for i in range(10)),
                *(
                    {"name": c, "type": "categorical", "values": [f"{c}_{k}" for k in range(k_)]}
                    for c, k_ in CARDINALITY.items()
                ),
            ],
        }
    )


def _probs(k: int, rng: np.random.Generator) -> np.ndarray:
    p = rng.dirichlet(np.ones(k) * 2)
    return p / p.sum()


def make_table(n: int, current: bool, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(1234)  # the category mixes: the same for both tables
    cols: dict[str, Any] = {
        "n0": rng.normal(0.5 if current else 0.0, 1.0, n),
        "n1": rng.lognormal(3, 1, n) * (1.3 if current else 1.0),
        "n2": rng.uniform(0, 100, n),
        "n3": rng.exponential(1.0, n) + (0.02 if current else 0.0),
        "n4": rng.poisson(4 if current else 3, n).astype(np.float64),
        "n5": rng.normal(10, 2, n),
        "n6": rng.gamma(2.0, 1.1 if current else 1.0, n),
        "n7": rng.normal(0, 1, n),
        "n8": rng.integers(0, 1000, n).astype(np.float64),
        "n9": rng.standard_t(5, n),
    }
    null = rng.random(n) < (0.07 if current else 0.02)
    n7 = pa.array(cols["n7"], mask=null)
    arrays = {k: pa.array(v) for k, v in cols.items()}
    arrays["n7"] = n7
    for c, k in CARDINALITY.items():
        p = _probs(k, base)
        values = np.array([f"{c}_{i}" for i in range(k)] + [f"{c}_new"], dtype=object)
        if current and c == "c0":
            p = p[::-1]
        if current and c == "c1":
            p = p.copy()
            p[0] += 0.05
            p[1:] -= 0.05 / (k - 1)
            p = np.clip(p, 1e-6, None)
            p /= p.sum()
        if current and c == "c6":
            p = np.array([0.5, 0.35, 0.15])
        elif c == "c6":
            p = np.array([0.6, 0.3, 0.1])
        if current and c == "c9":
            p = p.copy()
            p[0] *= 2
            p /= p.sum()
        full = np.append(p * (0.97 if current and c == "c2" else 1.0), 0.03 if current and c == "c2" else 0.0)
        arrays[c] = pa.array(values[rng.choice(k + 1, n, p=full / full.sum())], pa.string())
    arrays["y"] = pa.array((rng.random(n) < 0.05).astype(np.int64))
    return pa.table(arrays)


def flywheel_side(spec: DatasetSpec, reference: pa.Table, current: pa.Table, repeats: int) -> dict[str, Any]:
    cfg = spec.drift
    t0 = time.perf_counter()
    profile = build_profile(reference, spec, bins=cfg.bins, ks_max_samples=cfg.ks_max_samples)
    build_s = time.perf_counter() - t0
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = check_drift(profile, current, spec)
        times.append(time.perf_counter() - t0)
    record = DriftReport(
        spec=spec.name, decision=result.decision, drifted=result.drifted, reasons=result.reasons,
        columns=[c.to_dict() for c in result.columns], correction=result.correction, alpha=result.alpha,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = write_report(record, Path(tmp) / "report.html")
        html_s = time.perf_counter() - t0
        html_kb = path.stat().st_size / 1024
    return {
        "reference_profile_s": round(build_s, 3),
        "check_s": [round(t, 3) for t in times],
        "check_median_s": round(statistics.median(times), 3),
        "html_s": round(html_s, 4),
        "html_kb": round(html_kb, 1),
        "decision": result.decision,
        "verdicts": {c.name: bool(c.drifted) for c in result.columns},
        "stats": {
            c.name: {
                "psi": round(c.psi, 4),
                "js": round(c.js, 4),
                "ks": c.ks and round(c.ks, 4),
                "p_adjusted": c.p_adjusted,
            }
            for c in result.columns
        },
    }


def evidently_side(spec: DatasetSpec, reference: pa.Table, current: pa.Table) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently import __version__ as evidently_version
    from evidently.presets import DataDriftPreset

    numeric = [f.name for f in spec.numeric_features]
    categorical = [f.name for f in spec.categorical_features]
    columns = numeric + categorical
    t0 = time.perf_counter()
    ref_df, cur_df = reference.select(columns).to_pandas(), current.select(columns).to_pandas()
    to_pandas_s = time.perf_counter() - t0
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    t0 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(cur_df, data_definition=definition),
        reference_data=Dataset.from_pandas(ref_df, data_definition=definition),
    )
    run_s = time.perf_counter() - t0
    verdicts, methods = {}, {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        method, threshold, value = str(config["method"]), float(config["threshold"]), float(metric["value"])
        is_pvalue = "p_value" in method.lower() or method.lower() in ("k-s p_value", "chi-square p_value")
        verdicts[config["column"]] = value < threshold if is_pvalue else value >= threshold
        methods[config["column"]] = f"{method} ({'p' if is_pvalue else 'distance'} vs {threshold:g}): {value:.4g}"
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = Path(tmp) / "evidently.html"
        snapshot.save_html(str(path))
        html_s = time.perf_counter() - t0
        html_kb = path.stat().st_size / 1024
    return {
        "version": evidently_version,
        "to_pandas_s": round(to_pandas_s, 3),
        "run_s": round(run_s, 3),
        "html_s": round(html_s, 3),
        "html_kb": round(html_kb, 1),
        "verdicts": verdicts,
        "methods": methods,
    }


def markdown(result: dict[str, Any]) -> str:
    f, e = result["flywheel"], result.get("evidently")
    facts = result["facts"]
    lines = [
        f"# Drift check: {result['rows']:,} rows x 20 features (10 numeric, 10 categorical)",
        "",
        f"{facts['when']}, {facts['machine']}, load average {facts['load_average_before']:.2f} before / "
        f"{facts['load_average_after']:.2f} after.",
        "",
        "| | Flywheel (pipelines.monitoring) | Evidently DataDriftPreset |",
        "|---|---|---|",
        f"| check (median of {len(f['check_s'])}) | **{f['check_median_s']:.3f} s** (goal <= {GOAL_S:g} s: "
        f"{'met' if f['check_median_s'] <= GOAL_S else 'NOT met'}) | "
        + (f"{e['run_s']:.2f} s (+{e['to_pandas_s']:.2f} s to pandas) |" if e else "not installed |"),
        f"| reference profile (once per champion) | {f['reference_profile_s']:.3f} s | (recomputed every run) |",
        f"| HTML report | {f['html_s'] * 1000:.0f} ms, {f['html_kb']:.0f} KiB | "
        + (f"{e['html_s']:.2f} s, {e['html_kb']:.0f} KiB |" if e else "- |"),
    ]
    if e:
        lines += [
            "",
            f"Speedup (Evidently run / Flywheel check): **{result['speedup']:.0f}x**. Per-column verdicts agree on "
            f"**{result['agreement']:.0%}** of the 20 columns (Evidently {e['version']}).",
            "",
            "| column | change | Flywheel | Evidently | Evidently's test |",
            "|---|---|---|---|---|",
        ]
        for name, change in CHANGES.items():
            lines.append(
                f"| {name} | {change} | {'drift' if f['verdicts'][name] else '-'} | "
                f"{'drift' if e['verdicts'].get(name) else '-'} | {e['methods'].get(name, '')} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-evidently", action="store_true")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    spec = bench_spec()
    reference, current = make_table(args.rows, False, seed=1), make_table(args.rows, True, seed=2)
    result: dict[str, Any] = {"rows": args.rows, "changes": CHANGES}
    result["flywheel"] = flywheel_side(spec, reference, current, args.repeats)
    if not args.no_evidently:
        try:
            result["evidently"] = evidently_side(spec, reference, current)
        except ImportError:
            print("evidently is not installed (pip install -e '.[bench]'): Flywheel's side only")
    e = result.get("evidently")
    if e:
        ours, theirs = result["flywheel"]["verdicts"], e["verdicts"]
        result["agreement"] = sum(ours[c] == theirs.get(c) for c in ours) / len(ours)
        result["speedup"] = e["run_s"] / result["flywheel"]["check_median_s"]
    result["goal_s"] = GOAL_S
    result["facts"] = run_facts(load_before)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "drift.json").write_text(json.dumps(result, indent=2, sort_keys=True, default=str))
    (RESULTS / "drift.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
