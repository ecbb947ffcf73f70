"""Cost of one ingestion run against the history already on `main`: 100k new events on top of 0, ~1M and ~3M
events, the history older than the spec's longest window, side by side in one run; and a run whose window
overlaps recent history. Where the time goes, per stage, for each.

    .venv/bin/python -m benchmarks.history_bench [--new 100000] [--small-history 1000000] [--large-history 3000000]

Starts its own embedded Kafka, lakeFS and Spark Connect server (warm: a throwaway run first) on free ports under
a temporary state directory. Events come from `flywheel produce` (the simulator; `--start` moves the stream
forward in event time). One lakeFS repository and topic per history: history is ingested in runs of at most
1M events (not measured), then the measured run reads the 100k new events. The run without history is measured
twice, first and last, so a load that changed meanwhile shows. Writes benchmarks/results/history.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
DAYS = 14  # the baseline scenario's span of event time
HISTORY_RUN = 1_000_000  # events per history run (an hourly batch of a busy stream, at most)


def produce(bootstrap: str, topic: str, count: int, seed: int, start: datetime) -> float:
    """`flywheel produce` of `count` simulated events from `start` (a different seed: different event ids)."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "pipelines.cli", "produce", "--count", str(count), "--seed", str(seed)]
    cmd += ["--start", start.isoformat(), "--topic", topic, "--bootstrap-servers", bootstrap]
    cmd += ["--compression", "none", "--format", "json", "--timeout", "60"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"produce failed: {done.stderr[-2000:]}")
    return time.perf_counter() - t0


class Stream:
    """One topic and one lakeFS repository: a history and the runs on top of it."""

    def __init__(self, name: str, bootstrap: str, spec: Any) -> None:
        from dataclasses import replace

        from kafka.admin import KafkaAdminClient, NewTopic

        from pipelines.lake import Lake, LakeFSSettings

        self.name, self.bootstrap = name, bootstrap
        self.spec = spec.model_copy(update={"topic": spec.topic.model_copy(update={"name": f"bench-{name}"})})
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(self.spec.topic.name, spec.topic.partitions, 1)])
        admin.close()
        self.lake = Lake(replace(LakeFSSettings.from_env(), repository=f"bench-{name}"))
        self.lake.ensure_repository()
        self.events_on_main = 0
        self.seed = 100

    def add(self, count: int, start: datetime) -> None:
        self.seed += 1
        produce(self.bootstrap, self.spec.topic.name, count, self.seed, start)

    def ingest(self, spark: Any, max_events: int | None) -> Any:
        from pipelines.ingest.parallel import kafka_consumer_factory
        from pipelines.ingest.runner import run_ingest
        from pipelines.ingest.stages import IngestSettings

        outcome = run_ingest(
            self.spec,
            lake=self.lake,
            consumer_factory=kafka_consumer_factory(self.bootstrap),
            spark=spark,
            settings=IngestSettings(max_events=max_events, max_seconds=3600),
        )
        assert outcome.status in ("published", "nothing_new"), outcome.status
        self.events_on_main += outcome.raw.events
        return outcome

    def ingest_all(self, spark: Any) -> None:
        while self.ingest(spark, HISTORY_RUN).status != "nothing_new":
            pass

    def measured(self, spark: Any, label: str, role: str) -> dict[str, Any]:
        history = self.events_on_main
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        outcome = self.ingest(spark, None)
        seconds = time.perf_counter() - t0
        feats = outcome.features
        print(f"  {label}: {seconds:.1f}s on {history:,} events of history", flush=True)
        return {
            "label": label,
            "role": role,
            "history_events": history,
            "new_events": outcome.raw.events,
            "seconds": round(seconds, 3),
            "stages_s": dict(outcome.seconds),
            "history_rows_read": getattr(feats, "history_rows", None),
            "rows_published": feats.rows if feats else None,
            "load_avg_1m_before": round(load, 2),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new", type=int, default=100_000)
    parser.add_argument("--small-history", type=int, default=1_000_000)
    parser.add_argument("--large-history", type=int, default=3_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="side-by-side rounds per history size")
    parser.add_argument("--out", default=str(RESULTS / "history"))
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the existing .json")
    args = parser.parse_args()
    out = Path(args.out)
    if args.markdown_only:
        out.with_suffix(".md").write_text(markdown(json.loads(out.with_suffix(".json").read_text())))
        return 0

    load_before = os.getloadavg()[0]
    state = Path(tempfile.mkdtemp(prefix="flywheel-history-bench-"))
    os.environ["FLYWHEEL_STATE_DIR"] = str(state)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from benchmarks.run_facts import run_facts
    from pipelines.config import read_env_file
    from pipelines.devstack.manager import Stack
    from pipelines.devstack.net import free_port
    from pipelines.features.aggregates import longest_window_ms
    from pipelines.ingest.runner import default_spark
    from pipelines.spec import load_spec

    spec = load_spec("transactions")
    gap = timedelta(milliseconds=longest_window_ms(spec)) + timedelta(days=1)
    stack = Stack(state_dir=state, project_root=ROOT)
    services = ["kafka", "lakefs", "spark_connect"]
    stack.up(services=services, ports={s: free_port() for s in services})
    try:
        os.environ.update(read_env_file(stack.env_file))
        bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        spark = default_spark()  # the stack's Connect server
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        span = timedelta(days=DAYS)

        print("warming the Spark Connect server and this process (a throwaway run) ...", flush=True)
        warm = Stream("warm", bootstrap, spec)
        warm.add(20_000, t0)
        warm.ingest_all(spark)

        runs: list[dict[str, Any]] = []
        fresh = iter(range(1000))

        def without_history(round_: int) -> dict[str, Any]:
            empty = Stream(f"none-{next(fresh)}", bootstrap, spec)
            empty.add(args.new, t0)
            return {**empty.measured(spark, "no history", role="none"), "round": round_}

        print(f"{args.small_history:,} events of history, older than the longest window ...", flush=True)
        long = Stream("history", bootstrap, spec)
        long.add(args.small_history, t0)
        long.ingest_all(spark)
        start = t0 + span
        # Side by side: each round measures a run without history and one on the history, one after the other,
        # so both see the same load; the history's new events always start past the longest window.
        for round_ in range(args.rounds):
            runs.append(without_history(round_))
            start += gap
            long.add(args.new, start)
            start += span
            label = f"{long.events_on_main:,} events of history"
            runs.append({**long.measured(spark, label, role="small"), "round": round_})

        more = args.large_history - long.events_on_main
        print(f"{more:,} more events of history ...", flush=True)
        start += gap
        for i in range(0, more, HISTORY_RUN):  # a stream moving forward, a day per million events
            long.add(min(HISTORY_RUN, more - i), start)
            start += timedelta(days=1)
        long.ingest_all(spark)
        start += span
        for round_ in range(args.rounds):
            runs.append(without_history(round_))
            start += gap
            long.add(args.new, start)
            runs.append(
                {**long.measured(spark, f"{long.events_on_main:,} events of history", role="large"), "round": round_}
            )
            start += span

        print("a window overlapping the previous run's events ...", flush=True)
        long.add(args.new, start - span / 2)  # half of its event time lies inside the last run's
        runs.append(long.measured(spark, "the same, window overlapping the last run", role="overlap"))
        try:  # a side measurement: its failure must not lose the runs
            shipping = history_to_spark(spark, long)
        except Exception as exc:
            shipping = {"error": f"{type(exc).__name__}: {exc}"[:500]}

        result = {
            "benchmark": "history",
            "new_events": args.new,
            "spec_longest_window_hours": longest_window_ms(spec) / 3_600_000,
            "runs": runs,
            "history_to_spark": shipping,
            "facts": run_facts(load_before),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(markdown(result))
        print(out.with_suffix(".md").read_text())
    finally:
        stack.down()
        shutil.rmtree(state, ignore_errors=True)
    return 0


def history_to_spark(spark: Any, stream: Stream, repeats: int = 3) -> dict[str, Any]:
    """The overlapping run's history slice handed to Spark two ways, each a no-op write (best of `repeats`):
    shipped as Arrow (what ingestion does) and read by Spark from the model-table files it comes from (what a
    Spark sharing this disk could do): does shipping cost?"""
    from pyspark.sql import functions as F

    from pipelines.features.aggregates import longest_window_ms
    from pipelines.features.batches import read_catalog
    from pipelines.features.build import history_columns, read_raw
    from pipelines.features.history import history_slice
    from pipelines.lakecache import local_copies_of

    spec, lake = stream.spec, stream.lake
    catalog = read_catalog(lake, "main", spec)
    last = catalog.batches[-1]
    events = read_raw(local_copies_of(lake, "main", last.raw_paths), spec)
    earlier = catalog.before(last.seq)
    history = history_slice(lake, "main", spec, earlier, events)
    if history is None:
        return {}
    ts, window = spec.timestamp, longest_window_ms(spec)
    low = pc.min(events.column(ts)).as_py() - window
    high = pc.max(events.column(ts)).as_py() - 1
    overlapping = earlier.overlapping(low, high)
    files = [str(f) for f in local_copies_of(lake, "main", [p for b in overlapping for p in b.feature_paths])]

    def best(make: Any) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            make().write.format("noop").mode("overwrite").save()
            times.append(time.perf_counter() - t0)
        return round(min(times), 3)

    narrow = history.select(history_columns(spec)).combine_chunks()
    keys = spark.createDataFrame(pa.table({spec.entity_key: pc.unique(events.column(spec.entity_key))}))
    return {
        "history_rows": history.num_rows,
        "arrow_shipped_s": best(lambda: spark.createDataFrame(narrow)),
        "files_read_s": best(
            lambda: (
                spark.read.parquet(*files)
                .select(*history_columns(spec))
                .where((F.col(ts) >= low) & (F.col(ts) <= high))
                .join(keys, spec.entity_key, "left_semi")
            )
        ),
        "files": len(files),
    }


STAGES = {
    "consume_parse": "Kafka read + check + quarantine (local Parquet)",
    "raw_write": "raw upload + commit",
    "spark_session": "Spark Connect session",
    "features.raw_read_dedup": "raw read + dedup against earlier batches",
    "features.dedup": "of which dedup (id filters + index row groups)",
    "features.history_read": "history slice read",
    "features.spark_query": "Spark query + collect",
    "features.assemble": "assemble in Arrow",
    "features.write_upload_commit": "model-table write + upload + catalog + commit",
    "validation": "GX on the new rows + dataset checks",
    "commit_merge": "merge into main + tag",
}


def markdown(r: dict[str, Any]) -> str:
    runs = r["runs"]
    facts = r["facts"]
    lines = [
        "# Cost of a run against the history on main",
        "",
        f"{r['new_events']:,} new events per run, transactions spec (longest window "
        f"{r['spec_longest_window_hours']:.0f} h), one run of `benchmarks/history_bench.py` on {facts['machine']}; "
        f"{facts['when']}, 1-min load average {facts['load_average_before']:.2f} before and "
        f"{facts['load_average_after']:.2f} after (each run's own is in the table).",
        "",
        "| run | history on main (events) | seconds | vs no history (same round) | history rows read | load before |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    paired: dict[int, float] = {}  # run index -> its seconds over the run without history just before it
    last_none = None
    for i, x in enumerate(runs):
        if x["role"] == "none":
            last_none = x
        elif x["role"] in ("small", "large") and last_none is not None:
            paired[i] = x["seconds"] / last_none["seconds"]
    for i, x in enumerate(runs):
        ratio = f"{paired[i]:.2f}x" if i in paired else ""
        lines.append(
            f"| {x['label']}"
            + (f" (round {x['round'] + 1})" if "round" in x else "")
            + f" | {x['history_events']:,} | "
            f"{x['seconds']:.1f} | {ratio} | {x['history_rows_read'] if x['history_rows_read'] is not None else ''} | "
            f"{x['load_avg_1m_before']} |"
        )
    import statistics

    medians = {
        role: statistics.median(x["seconds"] for x in runs if x["role"] == role) for role in ("none", "small", "large")
    }
    large_ratios = [paired[i] for i, x in enumerate(runs) if x["role"] == "large" and i in paired]
    if large_ratios:
        ratio = statistics.median(large_ratios)
        lines += [
            "",
            f"Medians: {medians['none']:.1f}s without history, {medians['small']:.1f}s on "
            f"{min(x['history_events'] for x in runs if x['role'] == 'small'):,}+ events, {medians['large']:.1f}s on "
            f"{min(x['history_events'] for x in runs if x['role'] == 'large'):,}+ events of history.",
            "",
            f"Goal: a run on ~3M events of history takes at most 1.2x a run without, the two measured side by side: "
            f"median of the rounds' ratios **{ratio:.2f}x** (rounds: {', '.join(f'{v:.2f}x' for v in large_ratios)}), "
            f"**{'met' if ratio <= 1.2 else 'not met'}**.",
        ]

    def median_stage(role: str, *keys: str) -> float:
        return statistics.median(sum(x["stages_s"].get(k, 0.0) for k in keys) for x in runs if x["role"] == role)

    reads = ("features.raw_read_dedup", "features.history_read")
    lines += [
        "",
        "Load moves these numbers (other jobs share the 2 CPUs). Two stages tell history's own cost from the load's: "
        "the Kafka read (stage 1) never reads history, so its spread is the load's; the dedup against earlier "
        "batches and the history slice are the work that depends on history. Medians (seconds):",
        "",
        "| stage | no history | ~1M history | ~3M history |",
        "| --- | ---: | ---: | ---: |",
        "| Kafka read + check + quarantine (does not read history) | "
        + " | ".join(f"{median_stage(role, 'consume_parse'):.2f}" for role in ("none", "small", "large"))
        + " |",
        "| raw read + dedup against earlier batches + history slice | "
        + " | ".join(f"{median_stage(role, *reads):.2f}" for role in ("none", "small", "large"))
        + " |",
        "| of which the dedup lookup (id filters + index row groups) | "
        + " | ".join(f"{median_stage(role, 'features.dedup'):.2f}" for role in ("none", "small", "large"))
        + " |",
        "| Spark query + collect | "
        + " | ".join(f"{median_stage(role, 'features.spark_query'):.2f}" for role in ("none", "small", "large"))
        + " |",
    ]
    lines += ["", "Where the time goes (seconds):", ""]
    shown = [x for x in runs if x.get("round", 0) == 0]  # the first round's, and the overlapping run
    lines.append("| stage | " + " | ".join(x["label"] for x in shown) + " |")
    lines.append("| --- |" + " ---: |" * len(shown))
    for key, name in STAGES.items():
        cells = [x["stages_s"].get(key) for x in shown]
        if any(c is not None for c in cells):
            lines.append(f"| {name} | " + " | ".join(f"{c:.2f}" if c is not None else "" for c in cells) + " |")
    lines.append("| **run** | " + " | ".join(f"**{x['seconds']:.1f}**" for x in shown) + " |")
    shipping = r.get("history_to_spark") or {}
    if shipping.get("error"):
        lines += ["", f"History handed to Spark: not measured ({shipping['error']})."]
    elif shipping:
        lines += [
            "",
            f"History handed to Spark (the overlapping run's slice, {shipping['history_rows']:,} rows, a no-op write, "
            f"best of 3): shipped as Arrow {shipping['arrow_shipped_s']:.2f}s; read by Spark from the "
            f"{shipping['files']} model-table files it comes from (event-time filter, semi-join on the batch's "
            f"entities) {shipping['files_read_s']:.2f}s.",
        ]
    lines += [
        "",
        "History is ingested before each measured run in runs of at most 1M events and is not measured. The new "
        "events of a measured run start a day after the longest window past the history, except in the "
        "overlapping run, whose event time starts halfway through the previous run's.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
