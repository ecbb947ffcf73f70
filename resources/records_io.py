"""The IO manager for stage records: each asset's record (pipelines.lineage.records) stored as one JSON file
per asset key, so a step re-executed later, in another process or pod, gets exactly what its upstream
produced. Records name data by immutable lakefs:// commit URIs and models by MLflow URIs, never by local
paths, so reading a record again never depends on the machine that wrote it.

Where: `base_dir` (FLYWHEEL_RECORDS_DIR in resources/profiles.py; any fsspec URL such as s3://bucket/prefix
works when its filesystem package is installed), else the Dagster instance's storage directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dagster import ConfigurableIOManagerFactory, InitResourceContext, InputContext, OutputContext, UPathIOManager
from dagster._core.errors import DagsterInvariantViolationError
from pydantic import Field

from pipelines.lineage.records import Record, RecordError, record_from_json, record_to_json


class RecordJsonIOManager(UPathIOManager):
    """`<base>/<asset>.json` is the asset's latest record; `<base>/runs/<run id>/<asset>.json` the one each run
    wrote. A step reads the record of the run that produced its input when Dagster names it (so two overlapping
    runs never cross their records), else the latest (a step re-executed alone in a new run)."""

    extension = ".json"

    def _run_path(self, run_id: str, asset_path: Sequence[str]) -> Any:
        *folders, name = asset_path
        return self._base_path.joinpath("runs", run_id, *folders, f"{name}{self.extension}")

    def dump_to_path(self, context: OutputContext, obj: Any, path: Any) -> None:
        if not isinstance(obj, Record):
            raise RecordError(
                f"asset {context.asset_key.to_user_string()} returned a {type(obj).__name__}; assets of this "
                "project return a stage record from pipelines.lineage.records (the IO manager stores JSON only)"
            )
        text = record_to_json(obj)
        for target in (self._run_path(context.run_id, context.asset_key.path), path):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".json.tmp")
            tmp.write_text(text)
            tmp.rename(target)  # readers never see half a record

    def load_from_path(self, context: InputContext, path: Any) -> Record:
        producer = _producing_run(context)
        own_run = self._run_path(producer, context.asset_key.path) if producer else None
        if own_run is not None and own_run.exists():
            path = own_run
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise RecordError(
                f"no stored record for {context.asset_key.to_user_string()} at {path}: materialize that asset "
                "first (or point FLYWHEEL_RECORDS_DIR at the storage its run used)"
            ) from None
        return record_from_json(text, where=str(path))


def _producing_run(context: InputContext) -> str | None:
    """The run that produced the upstream output, when Dagster knows it (this run, for a step upstream in it)."""
    try:
        return context.upstream_output.run_id if context.upstream_output is not None else None
    except DagsterInvariantViolationError:
        return None


class RecordIOManager(ConfigurableIOManagerFactory):
    """Stage records as JSON under `base_dir` (default: the Dagster instance's storage directory)."""

    base_dir: str = Field(default="", description="directory or fsspec URL; empty = <DAGSTER_HOME>/storage")

    def create_io_manager(self, context: InitResourceContext) -> RecordJsonIOManager:
        from upath import UPath

        base = self.base_dir or (context.instance.storage_directory() if context.instance else "")
        if not base:
            raise RecordError("RecordIOManager needs base_dir or a Dagster instance with a storage directory")
        return RecordJsonIOManager(base_path=UPath(base) / "flywheel-records")
