"""The training entry point that torchrun starts on every worker (no Dagster import beyond dagster_pipes).

    python -m torch.distributed.run --standalone --nproc-per-node 2 --max-restarts 1 \\
        -m pipelines.training.entry --data lakefs://flywheel/<commit id>/ [--spec transactions]

Also runs as a single plain process (`python -m pipelines.training.entry --data ...`) and outside Dagster
(reporting then goes to stderr). `--data` is a lakeFS commit URI (never a branch) or a local directory laid
out like the repository (features/<spec>/part-*.parquet). Rank 0 logs to MLflow when MLFLOW_TRACKING_URI is
set (unless --no-mlflow) and logs the model there (an MLflow 3 logged model); registering a version is the
optimization stage's decision.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.distributed.elastic.multiprocessing.errors import record

from pipelines import layout
from pipelines.config import int_setting, setting, state_dir
from pipelines.lineage import keys
from pipelines.lineage.records import TrainedModel
from pipelines.spec import DatasetSpec, load_spec, spec_hash
from pipelines.training import data as datasets
from pipelines.training.checkpoint import CheckpointStore
from pipelines.training.distributed import DistContext, setup, teardown
from pipelines.training.loop import LoopConfig, LoopResult, Tensors, predict, train
from pipelines.training.metrics import classification_metrics, write_plots
from pipelines.training.model import TabularNet, count_parameters
from pipelines.training.packaging import input_example, model_signature
from pipelines.training.preprocess import Preprocessor
from pipelines.training.reporting import Reporter, open_reporter

# Keep the whole train split on the GPU when it takes less than this share of free device memory.
DEVICE_DATA_FRACTION = 0.5


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pipelines.training.entry", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="lakefs://<repo>/<commit id>/ or a local dataset directory")
    p.add_argument("--spec", default=None, help="spec name or YAML path (default: FLYWHEEL_SPEC, transactions)")
    p.add_argument("--epochs", type=int, default=None, help="override spec model.epochs")
    p.add_argument("--batch-size", type=int, default=None, help="override spec model.batch_size (global batch)")
    p.add_argument("--learning-rate", type=float, default=None, help="override spec model.learning_rate")
    p.add_argument("--seed", type=int, default=None, help="override spec model.seed")
    p.add_argument(
        "--early-stopping-metric",
        dest="monitor",
        choices=("auc", "loss"),
        default="auc",
        help="early-stopping metric on validation",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--no-bf16", action="store_true", help="disable bfloat16 autocast on GPU")
    p.add_argument("--checkpoint-dir", default=None, help="default: .flywheel/checkpoints/<run key>")
    p.add_argument("--experiment", default=None, help="MLflow experiment (default: MLFLOW_EXPERIMENT_NAME, flywheel)")
    p.add_argument(
        "--model-name",
        default=None,
        help="the model's name in the registry, used by optimization (default: the spec's)",
    )
    p.add_argument("--no-mlflow", action="store_true", help="no MLflow logging at all (manual or benchmark runs)")
    p.add_argument("--result-json", default=None, help="rank 0 writes the result summary here")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep the checkpoints after a successful run")
    p.add_argument("--throttle-s", type=float, default=0.0, help="sleep after each epoch (fault-injection drills)")
    return p


def run_key() -> str:
    """Stable across torchrun restarts of one launch, different between launches."""
    return (
        os.environ.get("DAGSTER_RUN_ID")
        or os.environ.get("TORCHELASTIC_RUN_ID")
        or f"manual-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    )


@record  # torchrun's failure summary then shows the worker's traceback instead of "To enable traceback..."
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ctx = setup(args.device)
    try:
        with open_reporter(ctx.rank) as reporter:
            run(args, ctx, reporter)
    finally:
        teardown(ctx)
    return 0


def run(args: argparse.Namespace, ctx: DistContext, reporter: Reporter) -> dict[str, Any]:
    spec = load_spec(args.spec)
    settings = spec.model.model_copy(
        update={
            k: v
            for k, v in {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "learning_rate": args.learning_rate,
                "seed": args.seed,
            }.items()
            if v is not None
        }
    )
    location = datasets.parse_location(args.data)
    reporter.info(f"reading {location.table_uri(spec)} on {ctx.hardware()}")
    store = datasets.open_store(location)
    table = datasets.read_model_table(store, spec)
    vocabularies = datasets.read_vocabularies(store, spec)
    splits = {name: table[table[layout.SPLIT_COLUMN] == name] for name in layout.SPLITS}
    prep = Preprocessor.fit(spec, splits["train"], vocabularies)

    tensors = {name: _to_tensors(spec, prep, df, ctx) for name, df in splits.items() if len(df)}
    torch.manual_seed(settings.seed)  # identical initial weights on every rank and every run
    model = TabularNet.from_spec(settings, prep.numeric_width, prep.cardinalities)
    architecture = {
        "numeric_width": prep.numeric_width,
        "cardinalities": prep.cardinalities,
        "hidden_dims": list(settings.hidden_dims),
        "embedding_dim": settings.embedding_dim,
        "dropout": settings.dropout,
    }
    checkpoints = CheckpointStore(args.checkpoint_dir or state_dir() / "checkpoints" / run_key())

    tracker = None
    tracking_uri = setting("MLFLOW_TRACKING_URI")
    if ctx.is_main and not args.no_mlflow and tracking_uri:
        tracker = _start_tracking(args, spec, settings, location, splits, ctx, reporter, checkpoints, model)
    elif ctx.is_main and not args.no_mlflow:
        reporter.warning(
            "MLFLOW_TRACKING_URI is not set: training without MLflow logging (pass --no-mlflow to silence)"
        )

    def on_epoch(row: dict[str, float]) -> None:
        if ctx.is_main:
            reporter.epoch(row)
            if tracker:
                tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))

    cfg = LoopConfig(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        patience=settings.early_stopping_patience,
        seed=settings.seed,
        monitor=args.monitor,
        bf16=not args.no_bf16,
        throttle_s=args.throttle_s,
    )
    done = checkpoints.epochs()
    if done and ctx.is_main:
        reporter.info(f"resuming from the checkpoint of epoch {done[-1]} in {checkpoints.directory}")
    try:
        result = train(model, tensors["train"], tensors["validation"], cfg, ctx, checkpoints, on_epoch)
        job = TrainingJob(args, spec, location, splits, tensors, prep, architecture, ctx, reporter, tracker)
        summary = _finish(job, result)
    except BaseException:
        if tracker:
            tracker.end("FAILED")
        raise
    if tracker:
        tracker.end("FINISHED")
    ctx.barrier()
    if ctx.is_main and not args.keep_checkpoints:
        # Done and reported: nothing left to resume, so the run's checkpoints only cost disk.
        shutil.rmtree(checkpoints.directory, ignore_errors=True)
    return summary


def _to_tensors(spec: DatasetSpec, prep: Preprocessor, df: pd.DataFrame, ctx: DistContext) -> Tensors:
    numeric, categorical = prep.transform(df)
    labels = df[spec.label].astype("int64").to_numpy()
    target = ctx.device
    if ctx.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(ctx.device)
        if numeric.nbytes + categorical.nbytes + labels.nbytes * 2 > DEVICE_DATA_FRACTION * free:
            target = torch.device("cpu")  # too big for the device: stream batches from pinned host memory
    return Tensors.from_arrays(numeric, categorical, labels.astype(np.float32), target)


def _start_tracking(args, spec, settings, location, splits, ctx, reporter, checkpoints, model):
    from pipelines.training.tracking import RunTracker, code_version

    tracker = RunTracker(args.experiment or setting("MLFLOW_EXPERIMENT_NAME") or "flywheel", checkpoints)
    resuming = checkpoints.read_value("mlflow_run_id") is not None
    # torchrun sets GROUP_WORLD_SIZE; FLYWHEEL_NODES is for launches without it
    nodes = int(os.environ.get("GROUP_WORLD_SIZE") or int_setting("FLYWHEEL_NODES", default=1, minimum=1))
    tags = _lineage_tags(spec, location, reporter, ctx, nodes, code_version())
    run_id = tracker.start(run_name=f"{spec.name}-{location.commit[:12]}", tags=tags)
    reporter.info(f"MLflow run {run_id}{' (resumed)' if resuming else ''}")
    if not resuming:
        tracker.log_params(
            {
                **settings.model_dump(),
                "monitor": args.monitor,
                "world_size": ctx.world_size,
                "parameters": count_parameters(model),
                "bf16": ctx.device.type == "cuda" and not args.no_bf16,
                **{f"rows_{k}": len(v) for k, v in splits.items()},
            }
        )
        inputs = [*spec.model_numeric_inputs, *spec.model_categorical_inputs]
        for split, df in splits.items():
            if len(df):
                tracker.log_dataset(
                    df[[*inputs, spec.label]],
                    source_uri=location.table_uri(spec),
                    name=f"{spec.name}@{location.commit[:12]}",
                    context={"validation": "eval"}.get(split, split),
                    targets=spec.label,
                )
    return tracker


def _lineage_tags(spec, location, reporter, ctx, nodes: int, version: str) -> dict[str, str]:
    tags = {
        keys.LAKEFS_REPOSITORY: location.repository,
        keys.LAKEFS_COMMIT: location.commit,
        keys.DATASET_URI: location.table_uri(spec),
        keys.SPEC: spec.name,
        keys.SPEC_HASH: spec_hash(spec),
        keys.CODE_VERSION: version,
        keys.RUN_ID: reporter.run_id or "",
        keys.WORLD_SIZE: str(ctx.world_size),
        keys.NODES: str(nodes),
        keys.BACKEND: ctx.backend,
        keys.HARDWARE: ctx.hardware(),
    }
    if version != "unknown":
        tags["mlflow.source.git.commit"] = version.removesuffix("-dirty")
    return tags


@dataclass
class TrainingJob:
    """What one training run works on, handed from `run` to `_finish`."""

    args: argparse.Namespace
    spec: DatasetSpec
    location: datasets.DataLocation
    splits: dict[str, pd.DataFrame]
    tensors: dict[str, Tensors]
    prep: Preprocessor
    architecture: dict[str, Any]
    ctx: DistContext
    reporter: Reporter
    tracker: Any  # RunTracker on rank 0 with MLflow, else None


def _finish(job: TrainingJob, result: LoopResult) -> dict[str, Any]:
    """Final metrics with the best weights, plots, the logged model, and the report to Dagster."""
    args, spec, location, splits, tensors = job.args, job.spec, job.location, job.splits, job.tensors
    prep, architecture, ctx, reporter, tracker = job.prep, job.architecture, job.ctx, job.reporter, job.tracker
    final: dict[str, float] = {}
    eval_probs = {}
    for split in ("validation", "test"):
        if split in tensors:
            probs = predict(result.model, tensors[split], ctx, not args.no_bf16)
            labels = tensors[split].labels.cpu().numpy()
            eval_probs[split] = (labels, probs)
            final.update({f"{split}_{k}": v for k, v in classification_metrics(labels, probs).items()})
    final["train_samples_per_second"] = result.samples_per_second
    final["best_epoch"] = float(result.best_epoch)
    if not ctx.is_main:
        return {}

    logged_uri = ""
    if tracker:
        tracker.log_metrics(final)
        from pipelines.training.tracking import temporary_directory

        with temporary_directory() as tmp:
            split = "test" if "test" in eval_probs else "validation"
            plots = write_plots(Path(tmp) / "plots", result.history, *eval_probs[split], split=split)
            tracker.log_artifacts(plots, "plots")
            from pipelines.training.packaging import save_artifacts

            artifacts = save_artifacts(Path(tmp) / "model", result.model.cpu(), prep, architecture)
            example = input_example(spec, splits["validation"].head(5))
            logged_uri = tracker.log_model(
                artifacts,
                signature=model_signature(spec),
                input_example=example,
                tags={
                    keys.LAKEFS_REPOSITORY: location.repository,
                    keys.LAKEFS_COMMIT: location.commit,
                    keys.SPEC_HASH: spec_hash(spec),
                    keys.MLFLOW_RUN_ID: tracker.run_id or "",
                    keys.RUN_ID: reporter.run_id or "",
                },
            )
    record = TrainedModel(
        model_name=args.model_name or spec.name,
        model_version="",  # registered later, by the optimization stage, for the candidate it picks
        logged_model_uri=logged_uri,
        mlflow_run_id=(tracker.run_id if tracker else "") or "",
        lakefs_repository=location.repository,
        lakefs_commit=location.commit,
        spec_hash=spec_hash(spec),
        metrics={k: v for k, v in final.items() if v == v},  # drop NaN
    )
    summary = {
        "trained_model": record.to_dict(),
        "history": result.history,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "resumed_from": result.resumed_from,
        "world_size": ctx.world_size,
        "hardware": ctx.hardware(),
        "samples_per_second": result.samples_per_second,
        "metrics": final,
    }
    reporter.materialize(_materialization_metadata(record, result, ctx), data_version=location.commit)
    if args.result_json:
        Path(args.result_json).write_text(json.dumps(summary, indent=1, default=float))
    return summary


def _materialization_metadata(record: TrainedModel, result: LoopResult, ctx: DistContext) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "trained_model": {"raw_value": record.to_dict(), "type": "json"},
        keys.MODEL_NAME: record.model_name,
        keys.MODEL_VERSION: record.model_version,
        keys.MLFLOW_RUN_ID: record.mlflow_run_id,
        keys.LAKEFS_REPOSITORY: record.lakefs_repository,
        keys.LAKEFS_COMMIT: record.lakefs_commit,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "resumed_from_epoch": -1 if result.resumed_from is None else result.resumed_from,
        "world_size": ctx.world_size,
        "hardware": ctx.hardware(),
    }
    for key in ("validation_auc", "test_auc", "test_pr_auc", "test_log_loss", "train_samples_per_second"):
        if key in record.metrics:
            meta[key] = {"raw_value": float(record.metrics[key]), "type": "float"}
    return meta


if __name__ == "__main__":
    sys.exit(main())
