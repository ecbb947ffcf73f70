"""Collect benchmarks/results/*.json into one table, benchmarks/RESULTS.md: per measurement the goal, the
measured value, whether the goal is met, and the machine's load during the run.

Each benchmark writes its own JSON shape (they grew one by one), so each has a small reader here that picks
its headline numbers and judges them against the goal stated in benchmarks/README.md; a benchmark without a
reader, or a file a reader cannot parse, still gets a row saying so instead of silently disappearing.

    python -m benchmarks.results_md            # writes benchmarks/RESULTS.md (make bench runs it last)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Row:
    benchmark: str
    measure: str
    measured: str
    goal: str = ""  # empty: measured for information, no goal
    met: bool | None = None  # None: no goal
    load: str = ""
    when: str = ""


def _load(data: dict[str, Any]) -> str:
    """The load average during the run, in whichever form the benchmark recorded it."""
    facts = data.get("facts") or data
    before, after = facts.get("load_average_before"), facts.get("load_average_after")
    if before is not None and after is not None:
        return f"{before:.1f} -> {after:.1f}"
    if isinstance(data.get("load"), str):
        return data["load"]
    machine = data.get("machine")
    if isinstance(machine, dict) and machine.get("load_avg_1m_at_end") is not None:
        return f"{machine['load_avg_1m_at_end']:.1f} at end"
    if isinstance(machine, str) and "load average" in machine:
        return machine[machine.index("load average") :].split(")")[0]
    return "not recorded"


def _when(data: dict[str, Any]) -> str:
    return str((data.get("facts") or {}).get("when") or data.get("when") or "")


def _lakefs(d: dict[str, Any]) -> list[Row]:
    b, c, t = d["branch_creation"], d["commit"], d["throughput"]
    ratio = b["ratio_large_over_10"]
    return [
        Row("lakefs", "branch creation at 100k vs 10 objects (ratio)", f"{ratio:.2f}", "<= 2", ratio <= 2),
        Row("lakefs", "commit of 1,000 uploaded objects", f"{c['on_10_objects']['commit_ms']:.0f} ms"),
        Row(
            "lakefs",
            "64 MiB upload / download via the SDK (MB/s)",
            f"{t['sdk_upload_mb_per_s']:.0f} / {t['sdk_download_mb_per_s']:.0f}",
        ),
    ]


def _produce(d: dict[str, Any]) -> list[Row]:
    r = d["results"]
    ours = r["produce to Tansu, gzip (default)"]["events_per_second"]
    bare = r["client ceiling: bare KafkaProducer loop, pre-encoded, gzip"]["events_per_second"]
    return [Row("produce", "flywheel produce vs bare KafkaProducer (events/s)", f"{ours:,.0f} vs {bare:,.0f}")]


def _ingest(d: dict[str, Any]) -> list[Row]:
    e = d["end_to_end"]
    ratio = e["ratio_to_raw_consume"]
    return [
        Row(
            "ingest",
            f"{d['events']:,} events Kafka -> lakeFS main vs raw consume",
            f"{ratio:.2f}x ({e['events_per_s']:,.0f} events/s)",
            ">= 0.6x",  # issue 11's goal (below 0.5x it is not resolved)
            ratio >= 0.6,
        )
    ]


def _history(d: dict[str, Any]) -> list[Row]:
    # The same pairing as history_bench: each run on history over the run without history just before it.
    runs, paired, last_none = d["runs"], [], None
    for x in runs:
        if x["role"] == "none":
            last_none = x
        elif x["role"] == "large" and last_none is not None:
            paired.append(x["seconds"] / last_none["seconds"])
    if not paired:
        return [Row("history", "run on ~3M events of history vs none", "no paired run recorded", "<= 1.2x", False)]
    ratio = statistics.median(paired)
    events = min(x["history_events"] for x in runs if x["role"] == "large")
    measure = f"ingest run on {events:,} events of history vs none"
    return [Row("history", measure, f"{ratio:.2f}x", "<= 1.2x", ratio <= 1.2)]


def _training(d: dict[str, Any]) -> list[Row]:
    ratio = d["trainer_vs_bare_loop"]["ratio"]
    rows = [Row("training", "trainer vs bare PyTorch loop (throughput)", f"{ratio:.3f}x", ">= 0.95x", ratio >= 0.95)]
    by_workers = {r["workers"]: r["samples_per_s_median_epoch"] for r in d.get("torchrun_cpu", [])}
    if 1 in by_workers and 2 in by_workers:
        rows.append(Row("training", "2 vs 1 CPU workers (gloo)", f"{by_workers[2] / by_workers[1]:.2f}x"))
    return rows


def _optimize(d: dict[str, Any]) -> list[Row]:
    rows = []
    for g in d["goals_large_model"]:
        rows.append(
            Row(
                "optimize",
                f"{g['form']} vs fp32 latency, large model, {g['setting']}",
                f"{g['latency_ratio']:.2f}x, AUC drop {g['auc_drop']:+.4f}",
                f"<= {g['max_ratio']}x, AUC drop <= {g['max_auc_drop']}",
                bool(g["met"]),
            )
        )
    return rows


def _drift(d: dict[str, Any]) -> list[Row]:
    median = d["flywheel"]["check_median_s"]
    rows = [
        Row(
            "drift",
            f"drift check, {d['rows']:,} rows, cached reference (median)",
            f"{median:.2f} s",
            f"<= {d['goal_s']:g} s",
            median <= d["goal_s"],
        )
    ]
    rows.append(Row("drift", "the same vs Evidently DataDriftPreset", f"{d['speedup']:.0f}x faster"))
    return rows


def _serving(d: dict[str, Any]) -> list[Row]:
    rows = []
    for batch, r in sorted(d["ratios"].items()):
        label = batch.replace("_", " ")
        rows.append(
            Row(
                "serving",
                f"max sustainable rate vs mlflow models serve, {label}",
                f"{r['max_rate_x']:g}x",
                ">= 5x",
                r["max_rate_x"] >= 5,
            )
        )
        rows.append(
            Row(
                "serving",
                f"p99 at equal load vs mlflow models serve, {label}"
                + (" (median of rounds at the highest rate both sustained)" if "p99_at_half_load_x" in r else ""),
                f"{r['p99_at_equal_load_x']:g}x",
                "<= 0.2x",
                r["p99_at_equal_load_x"] <= 0.2,
            )
        )
        if "p99_at_half_load_x" in r:  # beside the goal: the same at ~50% of MLflow's maximum rate
            rows.append(
                Row(
                    "serving",
                    f"p99 at ~50% of MLflow's max rate vs mlflow models serve, {label}",
                    f"{r['p99_at_half_load_x']:g}x",
                )
            )
    return rows


def _online(d: dict[str, Any]) -> list[Row]:
    p99, goal_p99 = d["latency"]["one_entity"]["p99_ms"], d["goal_one_entity_p99_ms"]
    t = d["throughput"]
    mem = d["memory"]["mib_per_million_entities"]
    return [
        Row("online", "lookup p99, one entity", f"{p99:.2f} ms", f"<= {goal_p99:g} ms", p99 <= goal_p99),
        Row("online", "lookup p99, batch of 256", f"{d['latency']['batch_256']['p99_ms']:.0f} ms"),
        Row(
            "online",
            "feature updater vs raw consume (throughput)",
            f"{t['ratio']:.2f}x",
            f">= {t['goal_ratio']}x",
            t["ratio"] >= t["goal_ratio"],
        ),
        Row("online", "store memory per million entities (10 events each)", f"{mem:,} MiB"),
    ]


def _stack(d: dict[str, Any]) -> list[Row]:
    idle = sum(v["uss_mib"] for v in d["idle"].values())
    after = sum(v["uss_mib"] for v in d["after_queries"].values())
    return [
        Row("stack", "`flywheel up` start", f"{d['up_seconds']:g} s"),
        Row("stack", "embedded stack memory (USS), idle / after Spark queries", f"{idle:,.0f} / {after:,.0f} MiB"),
    ]


READERS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "lakefs": _lakefs,
    "produce": _produce,
    "ingest": _ingest,
    "history": _history,
    "training": _training,
    "optimize": _optimize,
    "drift": _drift,
    "serving": _serving,
    "online": _online,
    "stack": _stack,
}


def collect(results_dir: Path) -> list[Row]:
    rows: list[Row] = []
    for path in sorted(results_dir.glob("*.json")):
        name = path.stem
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            rows.append(Row(name, "(unreadable)", f"{path.name} is not JSON: {exc}"))
            continue
        reader = READERS.get(name)
        if reader is None:
            rows.append(Row(name, "(no reader)", f"add a reader for {path.name} in benchmarks/results_md.py"))
            continue
        try:
            found = reader(data)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            found = [Row(name, "(unexpected shape)", f"{path.name}: {type(exc).__name__} {exc}")]
        load, when = _load(data), _when(data)
        rows += [Row(r.benchmark, r.measure, r.measured, r.goal, r.met, load, when) for r in found]
    return rows


def markdown(rows: list[Row]) -> str:
    goals = [r for r in rows if r.met is not None]
    met = sum(1 for r in goals if r.met)
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python -m benchmarks.results_md` (the last step of `make bench`) from",
        "`benchmarks/results/*.json`; the details, caveats and what bounds each number are in each",
        "`results/<name>.md` and `benchmarks/README.md`.",
        "Load is the machine's 1-minute load average before -> after the run (2 CPUs shared with other work).",
        "",
        f"**{met} of {len(goals)} goals met.**",
        "",
        "| benchmark | measure | measured | goal | met | load | when |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        verdict = "" if r.met is None else ("**met**" if r.met else "**not met**")
        lines.append(f"| {r.benchmark} | {r.measure} | {r.measured} | {r.goal} | {verdict} | {r.load} | {r.when} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    rows = collect(args.results)
    if not rows:
        print(f"no benchmark results under {args.results}: run `make bench` first", file=sys.stderr)
        return 1
    args.output.write_text(markdown(rows))
    print(f"wrote {args.output} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
