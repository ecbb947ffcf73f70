"""Validating what a run adds to the model table: the spec's GX suite on the batch's new rows plus dataset
checks, with Data Docs saved as HTML.

Dataset checks are the ones GX cannot express on one batch: the quarantine fraction of this ingestion; that
the split is the deterministic hash of the split key (entity, else event id) with no key in two splits
(every batch passing this makes the whole table leak-free: a key's split never depends on the batch); and
the row count and label rate of the whole dataset, from the stored per-batch summaries (the batch catalog)
plus this batch, never by rescanning the table.
The result is a `ValidationSummary`: JSON-able, recorded in the lakeFS commit and on the asset.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipelines.features.split import split_of
from pipelines.layout import SPLIT_COLUMN
from pipelines.quality.suite import build_suite, expectation_configs, suite_name
from pipelines.spec.model import DatasetSpec

log = logging.getLogger(__name__)
STRING_STORAGE = "pyarrow"


@dataclass
class CheckResult:
    name: str
    success: bool
    observed: Any
    expected: str

    def describe(self) -> str:
        return f"{self.name}: observed {self.observed}, expected {self.expected}"


@dataclass
class ValidationSummary:
    success: bool
    suite: str
    rows: int
    quarantined: int
    expectations: int
    expectations_failed: int
    failures: list[str] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    data_docs: str | None = None
    label_rate: float | None = None
    quarantine_fraction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationSummary:
        checks = [CheckResult(**c) for c in data.get("checks", [])]
        return cls(**{**data, "checks": checks})

    def headline(self) -> str:
        if self.success:
            return f"passed: {self.expectations} expectations and {len(self.checks)} dataset checks on {self.rows} rows"
        return f"failed {len(self.failures)} of {self.expectations + len(self.checks)} checks: " + "; ".join(
            self.failures[:5]
        )


def dataset_checks(
    table: pa.Table,
    spec: DatasetSpec,
    *,
    valid_in_batch: int,
    quarantined_in_batch: int,
    rows_before: int = 0,
    labels_before: int = 0,
) -> list[CheckResult]:
    """Quarantine fraction of this batch; split = hash(split key) and no key in two splits; the row count
    and label rate of the dataset: `rows_before`/`labels_before` (rows, positive labels of the earlier
    batches, from their summaries) plus `table` (the batch)."""
    results = []
    rows = rows_before + table.num_rows
    results.append(
        CheckResult("row_count", rows >= spec.gates.min_rows, rows, f">= {spec.gates.min_rows} rows in the dataset")
    )
    if rows:
        labels = labels_before + (int(pa.compute.sum(table.column(spec.label)).as_py() or 0) if table.num_rows else 0)
        rate = labels / rows
        low, high = spec.gates.label_rate_min, spec.gates.label_rate_max
        results.append(
            CheckResult("dataset_label_rate", low <= rate <= high, round(rate, 6), f"in [{low}, {high}] ({rows} rows)")
        )
    seen = valid_in_batch + quarantined_in_batch
    fraction = quarantined_in_batch / seen if seen else 0.0
    results.append(
        CheckResult(
            "quarantine_fraction",
            fraction <= spec.gates.max_quarantine_fraction,
            round(fraction, 6),
            f"<= {spec.gates.max_quarantine_fraction} ({quarantined_in_batch} of {seen} events)",
        )
    )
    key = spec.split_key
    pairs = table.select([key, SPLIT_COLUMN]).group_by([key, SPLIT_COLUMN]).aggregate([])
    keys = pairs.column(key).to_pylist()
    splits = pairs.column(SPLIT_COLUMN).to_pylist()
    leaked = len(keys) - len(set(keys))
    results.append(CheckResult("no_entity_in_two_splits", leaked == 0, leaked, "0 entities in more than one split"))
    wrong = sum(1 for k, s in zip(keys, splits, strict=True) if split_of(k, spec) != s)
    results.append(
        CheckResult("split_is_deterministic_hash", wrong == 0, wrong, f"0 entities off hash(salt={spec.split.salt!r})")
    )
    return results


def _to_pandas(table: pa.Table) -> Any:
    """The table for GX's pandas engine, in dtypes it checks column-wise instead of value by value.

    Strings become StringDtype (every value a string or NA, so the type-list expectations check the dtype
    instead of calling isinstance on each of n values); integer columns with nulls stay integers (Int64,
    not float64 with NaN); integer columns without nulls stay numpy int64/int32, whose range checks GX
    vectorizes (on Int64 it calls a Python function per value). Null checks are unchanged: the columns
    that hold nulls keep them as NA.
    """
    import pandas as pd

    frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype(STRING_STORAGE)}.get)
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_integer(column.type) and column.null_count:
            nullable = pd.Int64Dtype() if column.type == pa.int64() else pd.Int32Dtype()
            frame[name] = column.to_pandas(types_mapper={column.type: nullable}.get)
    return frame


def run_gx(table: pa.Table, spec: DatasetSpec, gx_dir: Path, run_name: str) -> tuple[Any, str | None]:
    """Run the spec's suite on the table in a file-backed GX context; returns (result, Data Docs page).

    The context's files are only a cache of what the spec generates plus Data Docs history; if a killed
    run left them unreadable, they are moved aside and rebuilt rather than blocking every later run.
    """
    try:
        return _run_gx(table, spec, gx_dir, run_name)
    except Exception as exc:
        if not gx_dir.exists():
            raise
        aside = gx_dir.with_name(f"{gx_dir.name}.broken-{int(time.time())}")
        log.warning("GX context at %s failed (%s); moving it to %s and starting a fresh one", gx_dir, exc, aside)
        gx_dir.rename(aside)
        return _run_gx(table, spec, gx_dir, run_name)


FINGERPRINT_KEY = "flywheel_fingerprint"
# BASIC: counts and a sample of unexpected values (what failure messages show); SUMMARY's per-value counts
# of unexpected values cost about a second per million rows and nothing here reads them.
RESULT_FORMAT = {"result_format": "BASIC"}


def _checkpoint_name(spec: DatasetSpec) -> str:
    return f"{spec.name}_ingest"


def _fingerprint(spec: DatasetSpec) -> str:
    """What the stored suite and checkpoint were generated from: their expectations and result format."""
    configs = [e.configuration.to_json_dict() for e in expectation_configs(spec)]
    payload = json.dumps({"expectations": configs, "result_format": RESULT_FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _stored_checkpoint(context: Any, spec: DatasetSpec, fingerprint: str) -> Any:
    """The checkpoint stored by an earlier run when its suite has this fingerprint, else None.

    Storing them again costs seconds per run: GX's add_or_update compares every expectation with every
    other (52 x 52 pydantic dumps, three times over); the stored objects are already these.
    """
    try:
        if context.suites.get(suite_name(spec)).meta.get(FINGERPRINT_KEY) != fingerprint:
            return None
        return context.checkpoints.get(_checkpoint_name(spec))
    except Exception:  # not stored yet (GX raises several types); storing them is the fallback
        return None


@contextlib.contextmanager
def _no_batch_fingerprint() -> Iterator[None]:
    """Skip GX's batch fingerprint: an md5 of `hash_pandas_object` over the whole DataFrame, stored only as a
    batch marker in the result's metadata (about 1.3s of a 3s gate on 1M rows, on 2 CPUs). GX itself skips it
    for frames above its HASH_THRESHOLD; a threshold of 0 takes that path for every frame. Every expectation,
    the result and Data Docs are unchanged; the run is identified by its run name and batch instead."""
    from great_expectations.execution_engine import pandas_execution_engine as engine

    saved = getattr(engine, "HASH_THRESHOLD", None)
    if saved is None:  # another GX version: validate as it does (tests/unit/quality pins this one's name)
        yield
        return
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = saved


def _run_gx(table: pa.Table, spec: DatasetSpec, gx_dir: Path, run_name: str) -> tuple[Any, str | None]:
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no phoning home from a pipeline run
    gx_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(gx_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    fingerprint = _fingerprint(spec)
    checkpoint = _stored_checkpoint(context, spec, fingerprint)
    if checkpoint is None:  # first run, or the spec's suite changed: (re)store suite, definition, checkpoint
        suite = build_suite(spec)
        suite.meta[FINGERPRINT_KEY] = fingerprint
        suite = context.suites.add_or_update(suite)
        source = context.data_sources.add_or_update_pandas(name="flywheel")
        asset_name = f"{spec.name}_model_table"
        asset = next((a for a in source.assets if a.name == asset_name), None) or source.add_dataframe_asset(
            name=asset_name
        )
        batch_def = next((b for b in asset.batch_definitions if b.name == "whole_table"), None)
        batch_def = batch_def or asset.add_batch_definition_whole_dataframe("whole_table")
        validation = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=suite_name(spec), data=batch_def, suite=suite)
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=_checkpoint_name(spec),
                validation_definitions=[validation],
                actions=[UpdateDataDocsAction(name="data_docs")],
                result_format=RESULT_FORMAT,
            )
        )
    import pandas as pd

    with pd.option_context("mode.string_storage", STRING_STORAGE), _no_batch_fingerprint():
        result = checkpoint.run(
            batch_parameters={"dataframe": _to_pandas(table)}, run_id=RunIdentifier(run_name=run_name)
        )
    identifier, validation_result = next(iter(result.run_results.items()))
    docs = None
    try:
        urls = context.get_docs_sites_urls(resource_identifier=identifier)
        docs = next((u["site_url"] for u in urls if u.get("site_url")), None)
    except Exception as exc:  # docs are a convenience; never fail validation over them
        log.warning("could not resolve the Data Docs page: %s", exc)
    return validation_result, docs


def _describe_failure(res: Any) -> str:
    config = res.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column")
    observed = res.result.get("observed_value")
    if observed is None and "unexpected_count" in res.result:
        sample = res.result.get("partial_unexpected_list") or []
        observed = f"{res.result['unexpected_count']} unexpected, e.g. {sample[:3]}"
    where = f"[{column}]" if column else ""
    return f"{config.type}{where}: observed {observed}"


def validate_model_table(
    table: pa.Table,
    spec: DatasetSpec,
    *,
    valid_in_batch: int,
    quarantined_in_batch: int,
    gx_dir: Path,
    run_name: str,
    rows_before: int = 0,
    labels_before: int = 0,
) -> ValidationSummary:
    """The blocking gate: GX suite on `table` (the batch's new rows) + dataset checks (with the earlier
    batches' `rows_before`/`labels_before`). Never raises for bad data; returns success=False. A batch without
    new rows (every event a re-send) has nothing for GX to check: the dataset checks decide."""
    checks = dataset_checks(
        table,
        spec,
        valid_in_batch=valid_in_batch,
        quarantined_in_batch=quarantined_in_batch,
        rows_before=rows_before,
        labels_before=labels_before,
    )
    results: list[Any] = []
    gx_success, docs = True, None
    if table.num_rows:
        gx_result, docs = run_gx(table, spec, gx_dir, run_name)
        results, gx_success = list(gx_result.results), bool(gx_result.success)
    failures = [_describe_failure(r) for r in results if not r.success]
    failures += [c.describe() for c in checks if not c.success]
    label_rate = None
    if table.num_rows:
        import pyarrow.compute as pc

        label_rate = round(pc.mean(table.column(spec.label)).as_py(), 6)
    seen = valid_in_batch + quarantined_in_batch
    return ValidationSummary(
        success=gx_success and all(c.success for c in checks),
        suite=suite_name(spec),
        rows=table.num_rows,
        quarantined=quarantined_in_batch,
        expectations=len(results),
        expectations_failed=sum(1 for r in results if not r.success),
        failures=failures,
        checks=checks,
        data_docs=docs,
        label_rate=label_rate,
        quarantine_fraction=round(quarantined_in_batch / seen, 6) if seen else 0.0,
    )
