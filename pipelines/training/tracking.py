"""MLflow logging from rank 0: parameters, per-epoch metrics, lineage tags, dataset inputs, plots, model.

Every run (and registered model version) carries the lineage keys of pipelines.lineage.keys.TRAINING_TAGS:
the exact data version (lakeFS repository, commit, dataset URI), the spec and its hash, the code version
(+ mlflow.source.git.commit when known), the Dagster run id ("" by hand) and where it ran.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import project_root, setting


def code_version() -> str:
    """FLYWHEEL_CODE_VERSION (set when an image is built), else the checkout's git SHA (+"-dirty"), else "unknown"."""
    if setting("FLYWHEEL_CODE_VERSION"):
        return str(setting("FLYWHEEL_CODE_VERSION"))
    try:
        root = project_root()
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class RunTracker:
    """One MLflow run, resumable: its id is kept beside the checkpoints so a restarted worker continues it."""

    def __init__(self, experiment: str, run_id_store=None) -> None:
        import mlflow

        self._mlflow = mlflow
        self.experiment = experiment
        self._store = run_id_store
        self.run_id: str | None = None

    def start(self, run_name: str, tags: Mapping[str, str]) -> str:
        mlflow = self._mlflow
        mlflow.set_experiment(self.experiment)
        previous = self._store.read_value("mlflow_run_id") if self._store else None
        if previous:
            run = mlflow.start_run(run_id=previous)
        else:
            run = mlflow.start_run(run_name=run_name, tags=dict(tags))
            if self._store:
                self._store.write_value("mlflow_run_id", run.info.run_id)
        mlflow.set_tags(dict(tags))
        self.run_id = run.info.run_id
        return self.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        # A resumed run re-logs the same values, which MLflow accepts.
        self._mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        clean = {k: float(v) for k, v in metrics.items() if v is not None and not math.isnan(float(v))}
        if clean:
            self._mlflow.log_metrics(clean, step=step)

    def log_dataset(self, df: pd.DataFrame, source_uri: str, name: str, context: str, targets: str) -> None:
        import mlflow.data

        source = lakefs_dataset_source(source_uri) if source_uri.startswith("lakefs://") else source_uri
        dataset = mlflow.data.from_pandas(df, source=source, name=name, targets=targets)
        self._mlflow.log_input(dataset, context=context, tags={"uri": source_uri})

    def log_artifacts(self, paths: list[Path], artifact_path: str) -> None:
        for p in paths:
            self._mlflow.log_artifact(str(p), artifact_path=artifact_path)

    def log_model(
        self,
        artifacts: dict[str, str],
        signature,
        input_example: pd.DataFrame,
        tags: Mapping[str, str],
    ) -> str:
        """Log the pyfunc model to the run (an MLflow 3 logged model, tagged with its lineage) and return its
        URI. Nothing is registered here: the optimization stage registers the candidate it picks."""
        import mlflow.pyfunc
        import torch

        from pipelines.training.packaging import FlywheelTabularModel

        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=FlywheelTabularModel(),
            artifacts=artifacts,
            signature=signature,
            input_example=input_example,
            # Explicit requirements skip MLflow's slow inference; loading also needs this package.
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "pandas", "numpy", "mlflow"],
            tags=dict(tags),
        )
        return str(info.model_uri)

    def end(self, status: str = "FINISHED") -> None:
        self._mlflow.end_run(status=status)


def lakefs_dataset_source(uri: str):
    """An MLflow dataset source of type "lakefs" whose URI is the immutable lakefs://<repo>/<commit>/<path>."""
    from mlflow.data.dataset_source import DatasetSource

    class LakeFSDatasetSource(DatasetSource):
        def __init__(self, uri: str) -> None:
            self.uri = uri

        @staticmethod
        def _get_source_type() -> str:
            return "lakefs"

        def load(self, **kwargs: Any) -> str:
            return self.uri  # read it with pipelines.training.data (a commit URI never changes)

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return isinstance(raw_source, str) and raw_source.startswith("lakefs://")

        @classmethod
        def _resolve(cls, raw_source: Any) -> DatasetSource:
            return cls(str(raw_source))

        def to_dict(self) -> dict[str, Any]:
            return {"uri": self.uri}

        @classmethod
        def from_dict(cls, source_dict: dict[Any, Any]) -> DatasetSource:
            return cls(source_dict["uri"])

    return LakeFSDatasetSource(uri)


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    base = tracking_uri.rstrip("/")
    if not base.startswith("http"):
        return f"{base}#/experiments/{experiment_id}/runs/{run_id}"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def model_version_url(tracking_uri: str, name: str, version: str) -> str:
    return f"{tracking_uri.rstrip('/')}/#/models/{name}/versions/{version}"


def temporary_directory() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="flywheel-train-")
