"""The registered model: an MLflow pyfunc that embeds preprocessing, so serving needs nothing else.

    model = mlflow.pyfunc.load_model("models:/transactions/3")      # or models:/transactions@champion
    model.predict(raw_df)  # -> DataFrame with one column "probability"

`raw_df` holds the raw model-input columns (the spec's features and aggregates, as in the model table);
unknown categories and nulls are handled like in training. For evaluation or optimization (quantization,
ONNX export) `load_model(uri)` returns the torch module and the fitted preprocessor as well.
Loading needs this package importable (the flywheel image or `pip install -e .`) plus torch.

Artifacts: model.pt ({"architecture": ..., "state_dict": ...}, loaded with weights_only=True) and
preprocessor.json (see preprocess.Preprocessor).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel

from pipelines.spec import DatasetSpec
from pipelines.training.model import TabularNet
from pipelines.training.preprocess import Preprocessor

OUTPUT_COLUMN = "probability"
WEIGHTS_ARTIFACT = "weights"
PREPROCESSOR_ARTIFACT = "preprocessor"


def save_artifacts(
    directory: Path, model: TabularNet, preprocessor: Preprocessor, architecture: dict
) -> dict[str, str]:
    """Write model.pt and preprocessor.json; returns the pyfunc `artifacts` mapping."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / "model.pt"
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"architecture": architecture, "state_dict": state}, weights)
    prep = directory / "preprocessor.json"
    prep.write_text(json.dumps(preprocessor.to_dict(), indent=1))
    return {WEIGHTS_ARTIFACT: str(weights), PREPROCESSOR_ARTIFACT: str(prep)}


def build_module(architecture: dict, state_dict: dict[str, torch.Tensor]) -> TabularNet:
    module = TabularNet(**architecture)
    module.load_state_dict(state_dict)
    return module.eval()


class FlywheelTabularModel(PythonModel):
    """mlflow.pyfunc wrapper: raw feature columns in, probabilities out (CPU inference)."""

    def load_context(self, context) -> None:
        blob = torch.load(context.artifacts[WEIGHTS_ARTIFACT], map_location="cpu", weights_only=True)
        self.architecture = blob["architecture"]
        self.module = build_module(self.architecture, blob["state_dict"])
        self.preprocessor = Preprocessor.from_dict(
            json.loads(Path(context.artifacts[PREPROCESSOR_ARTIFACT]).read_text())
        )

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        numeric, categorical = self.preprocessor.transform(df)
        with torch.no_grad():
            probs = self.module.predict_proba(torch.from_numpy(numeric), torch.from_numpy(categorical))
        return probs.numpy().astype(np.float64)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return pd.DataFrame({OUTPUT_COLUMN: self.predict_proba(model_input)}, index=model_input.index)


@dataclass
class LoadedModel:
    """What evaluation and optimization need: the torch module, the preprocessor and a predict function."""

    module: TabularNet
    preprocessor: Preprocessor
    architecture: dict
    pyfunc: Any

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        return self.pyfunc.unwrap_python_model().predict_proba(df)


def load_model(model_uri: str) -> LoadedModel:
    """Load a registered Flywheel model: `models:/<name>/<version>`, `models:/<name>@<alias>` or `runs:/<id>/model`."""
    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model(model_uri)
    inner = pyfunc.unwrap_python_model()
    return LoadedModel(
        module=inner.module, preprocessor=inner.preprocessor, architecture=inner.architecture, pyfunc=pyfunc
    )


def model_signature(spec: DatasetSpec):
    """Raw model inputs (numerics as double, booleans as boolean, categories as string) -> probability."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    nullable = {f.name for f in spec.features if f.nullable} | {a.name for a in spec.aggregates}
    cols = [ColSpec("double", f.name, required=f.name not in nullable) for f in spec.numeric_features]
    cols += [ColSpec("boolean", f.name, required=f.name not in nullable) for f in spec.boolean_features]
    cols += [ColSpec("double", a.name, required=False) for a in spec.aggregates]
    cols += [ColSpec("string", f.name, required=f.name not in nullable) for f in spec.categorical_features]
    return ModelSignature(inputs=Schema(cols), outputs=Schema([ColSpec("double", "probability")]))


def input_example(spec: DatasetSpec, rows: pd.DataFrame) -> pd.DataFrame:
    """A few raw rows, typed like the signature."""
    out = pd.DataFrame(index=range(len(rows)))
    for f in spec.numeric_features:
        out[f.name] = pd.to_numeric(rows[f.name]).astype("float64").to_numpy()
    for f in spec.boolean_features:
        out[f.name] = rows[f.name].astype("bool").to_numpy()
    for a in spec.aggregates:
        out[a.name] = pd.to_numeric(rows[a.name]).astype("float64").to_numpy()
    for f in spec.categorical_features:
        out[f.name] = rows[f.name].astype("object").to_numpy()
    return out
