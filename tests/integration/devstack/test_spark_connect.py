"""The stack's Spark Connect server as `flywheel up` starts it: SPARK_REMOTE in stack.env, the model-table
query answered through it (both ways Spark gets the rows), and `flywheel down` leaving no JVM behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.config import read_env_file
from pipelines.devstack.net import free_port
from pipelines.features.aggregates import definitions, reference_values
from pipelines.layout import OFFSET_COLUMN, PARTITION_COLUMN, raw_schema
from pipelines.spec import load_spec
from pipelines.spec.samples import null_mask, sample_columns

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SPEC = load_spec("transactions")


def flywheel(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def raw_files(directory: Path, n: int = 3000) -> list[Path]:
    """n raw events of the spec in two files, entities with long histories (150 entities, a minute apart)."""
    cols = sample_columns(SPEC, n, seed=11, prefix="sc", entities=150, step_ms=60_000)
    columns = {
        f.name: pa.array(cols[f.name], mask=null_mask(cols, f.name))
        for f in raw_schema(SPEC)
        if f.name not in (PARTITION_COLUMN, OFFSET_COLUMN)
    }
    columns[PARTITION_COLUMN] = pa.array(np.zeros(n, dtype=np.int32))
    columns[OFFSET_COLUMN] = pa.array(np.arange(n, dtype=np.int64))
    table = pa.table(columns).cast(raw_schema(SPEC))
    files = [directory / "part-a.parquet", directory / "part-b.parquet"]
    pq.write_table(table.slice(0, n // 2), files[0])
    pq.write_table(table.slice(n // 2), files[1])
    return files


def _family(state: Path) -> list[psutil.Process]:
    import json

    procs = []
    for record in json.loads((state / "stack.json").read_text())["processes"]:
        proc = psutil.Process(record["pid"])
        procs += [proc, *proc.children(recursive=True)]
    return procs


def test_up_serves_the_model_table_query_and_down_leaves_no_jvm(isolated_state: Path, tmp_path: Path) -> None:
    env = {**os.environ, "FLYWHEEL_STATE_DIR": str(isolated_state), "FLYWHEEL_SPARK_DRIVER_MEMORY": "1g"}
    env.pop("SPARK_REMOTE", None)
    port = free_port()
    up = flywheel("up", "--services", "spark_connect", f"--spark-connect-port={port}", env=env)
    assert up.returncode == 0, up.stderr
    try:
        stack_env = read_env_file(isolated_state / "stack.env")
        assert stack_env["SPARK_REMOTE"] == f"sc://127.0.0.1:{port}"
        jvms = [p for p in _family(isolated_state) if p.name() == "java"]
        assert len(jvms) == 1  # the server's JVM, a descendant of the process `up` recorded

        out = tmp_path / "out"
        out.mkdir()
        files = raw_files(tmp_path)
        child = subprocess.run(
            [sys.executable, str(HERE / "connect_query.py"), str(out), *map(str, files)],
            cwd=ROOT,
            env={**env, "SPARK_REMOTE": stack_env["SPARK_REMOTE"]},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert child.returncode == 0, child.stderr[-3000:]
        assert (out / "session.txt").read_text() == "remote=True shares_disk=True"
        assert f"Spark: the Spark Connect server at sc://127.0.0.1:{port}" in child.stderr
        from_files = pq.read_table(out / "from_files.parquet")
        assert from_files.equals(pq.read_table(out / "from_arrow.parquet"))
        assert from_files.num_rows == 3000
        check_against_reference(from_files)
    finally:
        family = _family(isolated_state) if (isolated_state / "stack.json").exists() else []
        down = flywheel("down", env=env)
    assert down.returncode == 0, down.stderr
    assert "spark_connect" in down.stdout
    alive = [p.pid for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []


def check_against_reference(table: pa.Table, sample: int = 200) -> None:
    """The server's aggregates are the contract's (pipelines.features.aggregates.reference_values)."""
    data = table.to_pydict()
    defs = definitions(SPEC)
    key, ts = SPEC.entity_key, SPEC.timestamp
    by_entity: dict[str, list[int]] = {}
    for i, k in enumerate(data[key]):
        by_entity.setdefault(k, []).append(i)
    rng = np.random.default_rng(1)
    for i in rng.choice(table.num_rows, sample, replace=False):
        rows = [j for j in by_entity[data[key][i]] if j != i]
        columns = {
            d.column: np.array([np.nan if data[d.column][j] is None else data[d.column][j] for j in rows], dtype=float)
            for d in defs
            if d.column
        }
        expected = reference_values(defs, np.array([data[ts][j] for j in rows], dtype=np.int64), columns, data[ts][i])
        for name, value in expected.items():
            assert data[name][i] == pytest.approx(value, rel=1e-9, abs=1e-9), (name, i)
