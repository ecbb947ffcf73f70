"""The records IO manager: JSON per asset (latest) and per run, read back in a later run, no pickles.

No `from __future__ import annotations`: Dagster reads the assets' annotations at definition time.
"""

import json
from pathlib import Path

import dagster as dg
import pytest

from pipelines.lineage.records import DatasetVersion, RecordError
from resources.records_io import RecordIOManager


def version(n: int) -> DatasetVersion:
    return DatasetVersion("flywheel", f"{n:064d}", f"dataset-t-{n}", n, "t", "features/t/")


@dg.asset
def upstream(context: dg.AssetExecutionContext) -> DatasetVersion:
    return version(int(context.run.tags.get("n", "1")))


@dg.asset
def downstream(upstream: DatasetVersion) -> DatasetVersion:
    return version(upstream.version + 100)


@dg.asset
def not_a_record() -> dict:
    return {"commit": "abc"}


def test_a_later_run_reads_the_stored_record(tmp_path: Path) -> None:
    io = {"io_manager": RecordIOManager(base_dir=str(tmp_path))}
    instance = dg.DagsterInstance.ephemeral()
    first = dg.materialize([upstream], resources=io, instance=instance, tags={"n": "7"})
    stored = json.loads((tmp_path / "flywheel-records" / "upstream.json").read_text())
    assert stored["kind"] == "dataset_version" and stored["record"]["version"] == 7
    assert (tmp_path / "flywheel-records" / "runs" / first.run_id / "upstream.json").exists()
    # A new run materializes only downstream: its input comes back from the JSON, not from memory.
    later = dg.materialize([upstream.to_source_asset(), downstream], resources=io, instance=instance)
    assert later.output_for_node("downstream").version == 107


def test_a_run_reads_its_own_upstream_record_even_if_another_run_wrote_later(tmp_path: Path) -> None:
    io = RecordIOManager(base_dir=str(tmp_path)).create_io_manager(dg.build_init_resource_context())
    base = tmp_path / "flywheel-records"
    (base / "runs" / "run-a").mkdir(parents=True)
    (base / "runs" / "run-a" / "upstream.json").write_text(
        json.dumps({"kind": "dataset_version", "schema": 1, "record": version(1).to_dict()})
    )
    (base / "upstream.json").write_text(  # an overlapping run wrote the latest record meanwhile
        json.dumps({"kind": "dataset_version", "schema": 1, "record": version(2).to_dict()})
    )

    def load(producing_run: str) -> DatasetVersion:
        upstream_output = dg.build_output_context(asset_key=dg.AssetKey("upstream"), run_id=producing_run)
        context = dg.build_input_context(asset_key=dg.AssetKey("upstream"), upstream_output=upstream_output)
        return io.load_input(context)

    assert (load("run-a").version, load("run-b").version) == (1, 2)


def test_an_asset_that_returns_no_record_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="returned a dict"):
        dg.materialize([not_a_record], resources={"io_manager": RecordIOManager(base_dir=str(tmp_path))})
