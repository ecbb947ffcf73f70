"""`TrainedModel`: what a training run hands to the next stages (optimize, evaluate, deploy)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainedModel:
    model_name: str
    model_version: str
    mlflow_run_id: str
    lakefs_repository: str
    lakefs_commit: str
    spec_hash: str
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def model_uri(self) -> str:
        """`models:/<name>/<version>`: load with `pipelines.training.packaging.load_model` or mlflow.pyfunc."""
        return f"models:/{self.model_name}/{self.model_version}"

    @property
    def dataset_uri(self) -> str:
        return f"lakefs://{self.lakefs_repository}/{self.lakefs_commit}/"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainedModel:
        return cls(
            model_name=str(data["model_name"]),
            model_version=str(data["model_version"]),
            mlflow_run_id=str(data["mlflow_run_id"]),
            lakefs_repository=str(data["lakefs_repository"]),
            lakefs_commit=str(data["lakefs_commit"]),
            spec_hash=str(data.get("spec_hash", "")),
            metrics={k: float(v) for k, v in dict(data.get("metrics", {})).items()},
        )
