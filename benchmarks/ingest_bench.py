"""Ingestion end to end (Kafka -> raw -> Spark -> GX -> merged lakeFS main) against the raw kafka-python
consume rate from the same broker, in the same run.

    .venv/bin/python benchmarks/ingest_bench.py [--events 1000000] [--malformed-rate 0.01]

Starts its own embedded Kafka (Tansu) and lakeFS on free ports under a temporary state directory,
produces the events, measures a bare consumer reading them all (the baseline: same consumer settings as
ingestion, no parsing), then one full ingestion run, stage by stage. Writes
benchmarks/results/ingest.json and ingest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def produce(bootstrap: str, spec, n: int, malformed_rate: float, seed: int = 7) -> dict[str, int]:
    """Events for the spec, generated from its types and ranges (as a user's producer would send them)."""
    from kafka import KafkaProducer

    rng = random.Random(seed)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=20,
        batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
        max_block_ms=60_000,
    )
    cats = {f.name: f.values for f in spec.categorical_features}
    base = 1_767_225_600_000
    malformed = 0
    for i in range(n):
        key = f"c{rng.randrange(20_000):05d}"
        if rng.random() < malformed_rate:
            malformed += 1
            producer.send(spec.topic.name, value=b'{"event_id": "broken' + str(i).encode(), key=key.encode())
            continue
        event = {
            spec.event_id: f"ev{i:09d}",
            spec.entity_key: key,
            spec.timestamp: base + i * 200,
            spec.label: rng.random() < 0.02,
        }
        for f in spec.features:
            if f.name in cats:
                event[f.name] = cats[f.name][rng.randrange(len(cats[f.name]))]
            elif f.type == "boolean":
                event[f.name] = rng.random() < 0.5
            elif f.integer:
                event[f.name] = rng.randint(int(f.min or 0), int(min(f.max or 100, (f.min or 0) + 500)))
            else:
                event[f.name] = round(rng.uniform(f.min or 0, min(f.max or 100, (f.min or 0) + 500)), 2)
        producer.send(spec.topic.name, value=json.dumps(event).encode(), key=key.encode())
    producer.flush(300)
    producer.close(30)
    return {"valid": n - malformed, "malformed": malformed}


def raw_consume_rate(bootstrap: str, topic: str, n: int) -> dict[str, float]:
    """A bare kafka-python consumer, same settings as ingestion, reading all n records; no parsing."""
    from kafka import KafkaConsumer, TopicPartition

    from pipelines.ingest.runner import CONSUMER_DEFAULTS

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **CONSUMER_DEFAULTS)
    parts = sorted(consumer.partitions_for_topic(topic) or [])
    tps = [TopicPartition(topic, p) for p in parts]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    seen = 0
    nbytes = 0
    t0 = time.perf_counter()
    while seen < n:
        for records in consumer.poll(timeout_ms=1000, max_records=20_000).values():
            seen += len(records)
            nbytes += sum(len(r.value) for r in records)
    seconds = time.perf_counter() - t0
    consumer.close()
    return {"events": seen, "seconds": round(seconds, 3), "events_per_s": round(seen / seconds, 1), "bytes": nbytes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--malformed-rate", type=float, default=0.01)
    parser.add_argument("--spark-master", default="local[*]")
    parser.add_argument("--keep", action="store_true", help="keep the temporary state directory")
    parser.add_argument("--out", default=str(RESULTS / "ingest"))
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the existing .json")
    parser.add_argument(
        "--compare",
        default=None,
        help="an earlier result JSON (e.g. `git show REV:benchmarks/results/ingest.json > before.json`) shown as "
        "a 'before' column; its label is --compare-label",
    )
    parser.add_argument("--compare-label", default="before")
    args = parser.parse_args()
    before = None
    if args.compare:
        old = json.loads(Path(args.compare).read_text())
        before = {
            "label": args.compare_label,
            "raw_consume": old["raw_consume"],
            "end_to_end": {k: old["end_to_end"][k] for k in ("seconds", "events_per_s", "ratio_to_raw_consume")},
            "stages_s": old["end_to_end"]["stages_s"],
            "consume_parse_only": old["consume_parse_only"],
            "load_avg_1m_at_end": old["machine"]["load_avg_1m_at_end"],
        }
    if args.markdown_only:
        out = Path(args.out)
        out.with_suffix(".md").write_text(markdown(json.loads(out.with_suffix(".json").read_text())))
        return 0

    state = Path(tempfile.mkdtemp(prefix="flywheel-ingest-bench-"))
    os.environ["FLYWHEEL_STATE_DIR"] = str(state)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from pipelines.config import read_env_file
    from pipelines.ingest.runner import kafka_consumer_factory, run_ingest
    from pipelines.ingest.stages import IngestSettings
    from pipelines.lake import Lake
    from pipelines.spec import load_spec
    from pipelines.stack import Stack
    from pipelines.stack.net import free_port

    spec = load_spec("transactions")
    stack = Stack(state_dir=state, project_root=ROOT)
    services = ["kafka", "lakefs"]
    stack.up(services=services, ports={s: free_port() for s in services}, check_java_version=False)
    try:
        env = read_env_file(stack.env_file)
        os.environ.update(env)
        bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(spec.topic.name, spec.topic.partitions, 1)])
        admin.close()

        print(f"producing {args.events} events ...", flush=True)
        t0 = time.perf_counter()
        counts = produce(bootstrap, spec, args.events, args.malformed_rate)
        produce_s = time.perf_counter() - t0
        print(f"  {produce_s:.1f}s; raw consume baseline ...", flush=True)
        baseline = raw_consume_rate(bootstrap, spec.topic.name, args.events)
        print(f"  {baseline}", flush=True)

        print("end-to-end ingestion ...", flush=True)
        os.environ["SPARK_MASTER"] = args.spark_master
        t0 = time.perf_counter()
        # Spark is started by the run itself, overlapped with consumption (as in production).
        outcome = run_ingest(
            spec,
            lake=Lake.from_env(),
            consumer_factory=kafka_consumer_factory(bootstrap),
            run_id="bench",
            settings=IngestSettings(max_events=None, max_seconds=3600),
        )
        e2e = time.perf_counter() - t0
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
        assert outcome.published is not None, outcome.status
        assert outcome.raw.events == args.events, (outcome.raw.events, args.events)
        stages = dict(outcome.seconds)
        e2e_rate = args.events / e2e
        result = {
            "benchmark": "ingest",
            "events": args.events,
            "malformed_rate": args.malformed_rate,
            "produced": counts,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
            },
            "spark_master": args.spark_master,
            "raw_consume": baseline,
            "end_to_end": {
                "seconds": round(e2e, 3),
                "events_per_s": round(e2e_rate, 1),
                "ratio_to_raw_consume": round(e2e_rate / baseline["events_per_s"], 3),
                "stages_s": stages,
                "rows_published": outcome.features.rows if outcome.features else None,
                "quarantined": outcome.raw.quarantined,
                "main_commit": outcome.published.commit,
            },
            "consume_parse_only": {
                "events_per_s": round(args.events / outcome.seconds["consume_parse"], 1),
                "ratio_to_raw_consume": round(
                    args.events / outcome.seconds["consume_parse"] / baseline["events_per_s"], 3
                ),
            },
            "produce_seconds": round(produce_s, 3),
            "before": before,
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(markdown(result))
        print(json.dumps(result, indent=2))
    finally:
        stack.down()
        if not args.keep:
            shutil.rmtree(state, ignore_errors=True)
    return 0


def markdown(r: dict) -> str:
    e2e, raw, before = r["end_to_end"], r["raw_consume"], r.get("before")
    lines = [
        "# Ingestion benchmark",
        "",
        f"{r['events']:,} events ({r['malformed_rate']:.0%} malformed), transactions spec, one run of "
        f"`benchmarks/ingest_bench.py`; {r['machine']['cpus']} CPUs shared with other work "
        f"(1-min load average at the end: {r['machine']['load_avg_1m_at_end']}), Spark `{r['spark_master']}`.",
        "",
        "| measurement | seconds | events/s | vs raw consume |",
        "| --- | ---: | ---: | ---: |",
        f"| raw kafka-python consume (baseline, no parsing) | {raw['seconds']:.1f} | "
        f"{raw['events_per_s']:,.0f} | 1.00x |",
        f"| ingestion consume + parse + quarantine (stage 1 only) | {e2e['stages_s']['consume_parse']:.1f} | "
        f"{r['consume_parse_only']['events_per_s']:,.0f} | {r['consume_parse_only']['ratio_to_raw_consume']:.2f}x |",
        f"| **end to end: Kafka to merged lakeFS main** | **{e2e['seconds']:.1f}** | **{e2e['events_per_s']:,.0f}** | "
        f"**{e2e['ratio_to_raw_consume']:.2f}x** |",
        "",
    ]
    if before:
        b = before
        lines += [
            f"{b['label']} (same machine, 1-min load {b['load_avg_1m_at_end']}): raw consume "
            f"{b['raw_consume']['seconds']:.1f}s, consume + parse {b['stages_s']['consume_parse']:.1f}s "
            f"({b['consume_parse_only']['ratio_to_raw_consume']:.2f}x), end to end {b['end_to_end']['seconds']:.1f}s "
            f"(**{b['end_to_end']['ratio_to_raw_consume']:.2f}x**).",
            "",
        ]
    label = before["label"] if before else ""
    lines += [
        "Where the end-to-end time goes:",
        "",
        "| stage | seconds | share |" + (f" {label} (s) |" if before else ""),
        "| --- | ---: | ---: |" + (" ---: |" if before else ""),
    ]
    names = {
        "spark_start_waited": "waiting for the Spark JVM after consumption (its start overlaps consumption)",
        "consume_parse": "consume + parse + quarantine (Kafka -> local Parquet)",
        "raw_write": "raw/quarantine Parquet upload + commit on the branch",
        "features": "Spark model table (read, dedup, windows, split, collect, upload, commit)",
        "features.spark_compute_collect": "  of which Spark compute + collect to Arrow + sort",
        "features.parquet_write": "  of which model-table Parquet write",
        "features.upload_commit": "  of which upload + commit on the branch",
        "validation": "Great Expectations suite + dataset checks + Data Docs",
        "commit_merge": "commit metadata + merge into main + tag",
    }
    for key, name in names.items():
        s = e2e["stages_s"].get(key)
        if s is not None:
            row = f"| {name} | {s:.1f} | {s / e2e['seconds']:.0%} |"
            if before:
                old = before["stages_s"].get(key)
                row += f" {old:.1f} |" if old is not None else " |"
            lines.append(row)
    if before:
        lines.append(
            f"| **end to end** | **{e2e['seconds']:.1f}** | 100% | **{before['end_to_end']['seconds']:.1f}** |"
        )
    if r.get("other_runs"):
        lines += [
            "",
            "Other 1M-event runs on this machine (load varies: the test suite of another session shares the 2 CPUs):",
            "",
            "| run | 1-min load | raw consume (s) | consume + parse (s) | Spark (s) | GX (s) | end to end (s) "
            "| vs raw |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for o in r["other_runs"]:
            lines.append(
                f"| {o['label']} | {o['load']:.2f} | {o['raw']:.1f} | {o['consume_parse']:.1f} | "
                f"{o['features']:.1f} | {o['validation']:.1f} | {o['e2e']:.1f} | {o['ratio']:.2f}x |"
            )
    st = e2e["stages_s"]
    fixed = st.get("features", 0) + st.get("validation", 0)
    ratio = e2e["ratio_to_raw_consume"]
    lines += [
        "",
        f"Produced with kafka-python in {r['produce_seconds']:.0f}s (not part of either measurement).",
        "",
        "Reading the numbers:",
        "",
        f"- The goal of 0.8x the raw consume rate is **{'met' if ratio >= 0.8 else 'not met'}** ({ratio:.2f}x). "
        f"At 0.8x, 1M events would have to go from Kafka to merged main in {raw['seconds'] / 0.8:.1f}s; the "
        f"Spark model table and the GX gate alone take {fixed:.0f}s, {fixed / raw['seconds']:.1f}x what a bare "
        "consumer needs for the whole batch. Both rebuild and check the full history on every run, after the "
        "read, so they are not overlapped with it. Reaching 0.8x needs an incremental model table (new events "
        "plus the windows of the entities they touch) and validating only what changed, or a bigger machine; "
        "faster per-event code alone cannot get there.",
        "- The bare consumer does nothing per record; ingestion parses JSON (orjson), checks every field "
        "against the spec into per-column lists (no per-event dict) and writes Parquet, in one reader process "
        "per partition share, up to two per CPU (3 partitions on 2 CPUs: 3 processes, so the shares even out "
        "instead of one core idling while the 2-partition share finishes). kafka-python's own record decoding "
        "is about half of each reader's CPU; on 2 shared cores, consume + parse cannot be much under the raw "
        "single-consumer time.",
        "- Spark's time is the dedup and the per-entity window aggregates over the whole history (one shuffle "
        "by entity, one sort per window group, as `explain()` shows) on local cores, plus collecting the table "
        "to Arrow; most of it is the JVM's first, cold query in the process (the same query runs in about a third of "
        "the time when repeated in one JVM). This round did not change the Spark code: the plan already has one "
        "shuffle and one window pass per group, and a difference to an earlier run is load and JIT, not code. "
        "GX's is "
        f"{st.get('validation', 0) / max(1, e2e['rows_published'] or 1) * 1e6:.1f} us per row for the spec's "
        "~50 expectations on pandas: string columns as StringDtype and integer columns without nulls as numpy "
        "types let GX check types and ranges per column instead of calling Python per value, the stored suite "
        "and checkpoint are reused while the spec's fingerprint is unchanged, and GX is imported while Spark "
        "works. Every expectation still runs on every row.",
        "- The machine is shared (2 CPUs, another test suite running): stage times move by several seconds "
        "between runs (the Spark stage most), so compare the ratio to the raw consume measured in the same run.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
