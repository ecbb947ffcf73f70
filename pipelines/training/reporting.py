"""Progress reporting: through Dagster Pipes when launched by Dagster, plain logging when run by hand.

Only rank 0 opens the Pipes context (every worker inherits the Pipes env vars, and one writer keeps the
message stream clean); other ranks log warnings and errors to stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, open_dagster_pipes


class Reporter(Protocol):
    run_id: str | None

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def epoch(self, row: Mapping[str, float]) -> None: ...

    def materialize(self, metadata: Mapping[str, Any], data_version: str | None = None) -> None: ...


class LogReporter:
    """Structured lines on stderr through pipelines.logs (one JSON object a line with FLYWHEEL_LOG_FORMAT=json)."""

    def __init__(self, rank: int) -> None:
        from pipelines.logs import get_logger

        self.rank = rank
        self.run_id = os.environ.get("DAGSTER_RUN_ID") or None
        self.log = get_logger("training")
        if rank != 0:
            self.log.setLevel(logging.WARNING)  # one rank tells the story; the others speak up on problems

    def _emit(self, level: int, message: str, **fields: Any) -> None:
        self.log.log(level, f"[rank {self.rank}] {message}", extra={"fields": {"rank": self.rank, **fields}})

    def info(self, message: str) -> None:
        self._emit(logging.INFO, message)

    def warning(self, message: str) -> None:
        self._emit(logging.WARNING, message)

    def epoch(self, row: Mapping[str, float]) -> None:
        self._emit(logging.INFO, _epoch_line(row), event="epoch", **row)

    def materialize(self, metadata: Mapping[str, Any], data_version: str | None = None) -> None:
        record = metadata.get("trained_model", {})
        record = record.get("raw_value", record) if isinstance(record, dict) else {}
        metrics = record.get("metrics", {})
        summary = ", ".join(f"{k}={metrics[k]:.4f}" for k in ("validation_auc", "test_auc") if k in metrics)
        logged = record.get("logged_model_uri") or "not logged"
        self._emit(
            logging.INFO,
            f"training done: model {record.get('model_name')} logged as {logged}, MLflow run "
            f"{record.get('mlflow_run_id') or '-'}, data {record.get('lakefs_repository')}@"
            f"{str(record.get('lakefs_commit'))[:12]}; {summary}",
            event="result",
            trained_model=record,
        )


class PipesReporter:
    def __init__(self, context) -> None:
        self.context = context
        self.run_id = context.run_id

    def info(self, message: str) -> None:
        self.context.log.info(message)

    def warning(self, message: str) -> None:
        self.context.log.warning(message)

    def epoch(self, row: Mapping[str, float]) -> None:
        # Custom messages are collected by the launching asset; the log line shows progress in the UI.
        self.context.report_custom_message({"type": "epoch", **{k: float(v) for k, v in row.items()}})
        self.context.log.info(_epoch_line(row))

    def materialize(self, metadata: Mapping[str, Any], data_version: str | None = None) -> None:
        if self.context.is_asset_step:
            self.context.report_asset_materialization(metadata=dict(metadata), data_version=data_version)
        else:
            self.context.report_custom_message({"type": "result", "metadata": dict(metadata)})


def _epoch_line(row: Mapping[str, float]) -> str:
    return (
        f"epoch {int(row['epoch'])}: train_loss={row['train_loss']:.4f} val_auc={row.get('val_auc', float('nan')):.4f} "
        f"val_log_loss={row['val_log_loss']:.4f} {row['samples_per_second']:.0f} samples/s"
    )


def under_pipes() -> bool:
    return bool(os.environ.get(DAGSTER_PIPES_CONTEXT_ENV_VAR))


@contextlib.contextmanager
def open_reporter(rank: int) -> Iterator[Reporter]:
    """Rank 0 under Dagster Pipes: a PipesReporter (errors raised inside are reported to Dagster)."""
    if rank == 0 and under_pipes():
        with open_dagster_pipes() as context:
            yield PipesReporter(context)
    else:
        yield LogReporter(rank)


def epoch_markdown(rows: list[Mapping[str, float]]) -> str:
    """Per-epoch metrics (as streamed through Pipes) as a Markdown table; a restart repeats epochs."""
    lines = ["| epoch | train loss | val AUC | val log loss | samples/s |", "| ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(
            f"| {int(r['epoch'])} | {r['train_loss']:.4f} | {r.get('val_auc', float('nan')):.4f} | "
            f"{r['val_log_loss']:.4f} | {r['samples_per_second']:,.0f} |"
        )
    return "\n".join(lines)
