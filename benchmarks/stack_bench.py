"""What `flywheel up` costs in memory: the resident memory of each service of the embedded stack, the Spark
Connect server included, idle after start and after the server answered model-table queries.

    .venv/bin/python -m benchmarks.stack_bench [--rows 1000000]

Starts the stack as `flywheel up` does (every service it starts by default) on free ports under a temporary
state directory, measures each service's process and its children (RSS and USS), runs the model-table query
through the Spark Connect server on `--rows` generated rows three times, measures again, and stops the stack.
Writes benchmarks/results/stack.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def memory(stack: Any) -> dict[str, dict[str, float]]:
    """{service: {rss_mib, uss_mib, processes}} for each process `up` recorded, its descendants included."""
    import psutil

    out: dict[str, dict[str, float]] = {}
    for record in stack.records():
        proc = record.process()
        if proc is None:
            continue
        family = [proc, *proc.children(recursive=True)]
        rss = uss = 0
        for p in family:
            try:
                full = p.memory_full_info()
            except psutil.Error:
                continue
            rss += full.rss
            uss += full.uss
        out[record.service] = {
            "rss_mib": round(rss / 2**20, 1),
            "uss_mib": round(uss / 2**20, 1),
            "processes": len(family),
        }
    return out


def queries(spec: Any, rows: int) -> float:
    """The model-table query through the stack's Connect server on `rows` generated raw rows, three times."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.features.build import model_table, read_raw
    from pipelines.ingest.runner import default_spark
    from pipelines.layout import OFFSET_COLUMN, PARTITION_COLUMN, raw_schema
    from pipelines.spec.samples import null_mask, sample_columns

    cols = sample_columns(spec, rows, seed=0, prefix="mem", entities=max(1, rows // 30), step_ms=20_000)
    table = {
        f.name: pa.array(cols[f.name], mask=null_mask(cols, f.name))
        for f in raw_schema(spec)
        if f.name not in (PARTITION_COLUMN, OFFSET_COLUMN)
    }
    table[PARTITION_COLUMN] = pa.array(np.zeros(rows, dtype=np.int32))
    table[OFFSET_COLUMN] = pa.array(np.arange(rows, dtype=np.int64))
    path = Path(tempfile.mkdtemp(prefix="flywheel-stack-bench-")) / "raw.parquet"
    pq.write_table(pa.table(table).cast(raw_schema(spec)), path)
    spark = default_spark()
    t0 = time.perf_counter()
    for _ in range(3):
        model_table(spark, spec, read_raw([path], spec), [path])
    shutil.rmtree(path.parent, ignore_errors=True)
    return round(time.perf_counter() - t0, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", default=str(RESULTS / "stack"))
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the existing .json")
    args = parser.parse_args()
    out = Path(args.out)
    if args.markdown_only:
        out.with_suffix(".md").write_text(markdown(json.loads(out.with_suffix(".json").read_text())))
        return 0

    load_before = os.getloadavg()[0]
    state = Path(tempfile.mkdtemp(prefix="flywheel-stack-bench-"))
    os.environ["FLYWHEEL_STATE_DIR"] = str(state)
    from benchmarks.run_facts import run_facts
    from pipelines.config import read_env_file
    from pipelines.devstack.manager import Stack
    from pipelines.devstack.net import free_port
    from pipelines.devstack.services import SERVICES
    from pipelines.spec import load_spec

    spec = load_spec("transactions")
    stack = Stack(state_dir=state, project_root=ROOT)
    names = [n for n, s in SERVICES.items() if not s.optional and s.wanted()]  # what `flywheel up` starts
    t0 = time.perf_counter()
    stack.up(services=names, ports={n: free_port() for n in names}, topics=[(spec.topic.name, spec.topic.partitions)])
    up_s = time.perf_counter() - t0
    try:
        os.environ.update(read_env_file(stack.env_file))
        time.sleep(5)  # let the servers settle after their start
        idle = memory(stack)
        print(json.dumps(idle, indent=2), flush=True)
        query_s = queries(spec, args.rows)
        after = memory(stack)
        result = {
            "benchmark": "stack",
            "services": names,
            "up_seconds": round(up_s, 1),
            "idle": idle,
            "after_queries": after,
            "query_rows": args.rows,
            "queries_seconds": query_s,
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


def markdown(r: dict[str, Any]) -> str:
    facts = r["facts"]
    lines = [
        "# What the embedded stack costs in memory",
        "",
        f"Every service `flywheel up` starts ({', '.join(r['services'])}), up in {r['up_seconds']:.0f}s; "
        f"{facts['machine']}, {facts['when']}, 1-min load average {facts['load_average_before']:.2f} before. "
        "Each service with its child processes; RSS counts shared pages in each process, USS only its own.",
        "",
        "| service | processes | RSS idle (MiB) | USS idle (MiB) | RSS after the queries (MiB) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, idle in r["idle"].items():
        after = r["after_queries"].get(name, {})
        lines.append(
            f"| {name} | {idle['processes']} | {idle['rss_mib']:,.0f} | {idle['uss_mib']:,.0f} | "
            f"{after.get('rss_mib', 0):,.0f} |"
        )
    total_idle = sum(x["rss_mib"] for x in r["idle"].values())
    total_after = sum(x["rss_mib"] for x in r["after_queries"].values())
    lines += [
        f"| **all** | | **{total_idle:,.0f}** | **{sum(x['uss_mib'] for x in r['idle'].values()):,.0f}** | "
        f"**{total_after:,.0f}** |",
        "",
        f"'After the queries': the model-table query on {r['query_rows']:,} generated rows, three times through the "
        f"Spark Connect server ({r['queries_seconds']:.1f}s). The server's JVM keeps the heap it grew (its driver "
        "memory is capped by FLYWHEEL_SPARK_DRIVER_MEMORY, default 2g).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
