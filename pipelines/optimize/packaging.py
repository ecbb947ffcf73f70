"""A chosen candidate as MLflow pyfunc artifacts, and the one PythonModel that serves every form.

    artifacts = save_candidate(candidate, directory)   # {"form": ..., "model": ..., "preprocessor": ...}
    mlflow.pyfunc.log_model(name="model", python_model=FlywheelOptimizedModel(), artifacts=artifacts,
                            signature=model_signature(spec), pip_requirements=pip_requirements(candidate), ...)
    mlflow.pyfunc.load_model(uri).predict(raw_df)   # -> DataFrame with one column "probability"

Artifacts:
- form.json: {"form": "onnx-int8", "runtime": "torch" | "onnxruntime", "int8_layers": [...], "format": 1}
- model.pt (torch forms): {"architecture", "state_dict"} like the trained model's (fp32, pruned, distilled);
  int8 holds the quantized state dict (int8 weights and their scales) and is rebuilt by quantizing the same
  layers of a fresh TabularNet and loading it (weights_only=True throughout).
- model.onnx (ONNX forms): the graph, probabilities out, run with ONNX Runtime on CPU.
- preprocessor.json: the teacher's fitted Preprocessor, so raw rows are prepared exactly as in training.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel

from pipelines.errors import FlywheelError
from pipelines.optimize.candidates import quantize_int8
from pipelines.optimize.forms import ONNXRUNTIME, TORCH, Candidate, OnnxCandidate, TorchCandidate
from pipelines.training.model import TabularNet
from pipelines.training.packaging import OUTPUT_COLUMN, PREPROCESSOR_ARTIFACT
from pipelines.training.preprocess import Preprocessor

FORM_ARTIFACT = "form"
MODEL_ARTIFACT = "model"
FORMAT_VERSION = 1


def model_file(directory: Path, candidate: Candidate) -> Path:
    return directory / ("model.onnx" if candidate.runtime == ONNXRUNTIME else "model.pt")


def save_candidate(candidate: Candidate, directory: Path) -> dict[str, str]:
    """Write form.json, the model file and preprocessor.json; returns the pyfunc `artifacts` mapping."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = model_file(directory, candidate)
    int8_layers: list[str] = []
    if isinstance(candidate, TorchCandidate):
        int8_layers = list(candidate.quantized_layers)
        state = candidate.module.state_dict()  # on the CPU already: every candidate is built there
        torch.save({"architecture": candidate.architecture, "state_dict": state}, path)
    elif isinstance(candidate, OnnxCandidate):
        path.write_bytes(candidate.model_bytes)
    else:
        raise TypeError(f"cannot save a {type(candidate).__name__}: only torch and ONNX candidates are packaged")
    form = {
        "form": candidate.name,
        "runtime": candidate.runtime,
        "architecture": candidate.architecture,
        "int8_layers": int8_layers,
        "format": FORMAT_VERSION,
    }
    (directory / "form.json").write_text(json.dumps(form, indent=1))
    (directory / "preprocessor.json").write_text(json.dumps(candidate.preprocessor.to_dict(), indent=1))
    return {
        FORM_ARTIFACT: str(directory / "form.json"),
        MODEL_ARTIFACT: str(path),
        PREPROCESSOR_ARTIFACT: str(directory / "preprocessor.json"),
    }


def load_candidate(artifacts: Mapping[str, str]) -> Candidate:
    """The candidate saved by save_candidate, from its artifacts mapping (local paths)."""
    form = json.loads(Path(artifacts[FORM_ARTIFACT]).read_text())
    if form.get("format") != FORMAT_VERSION:
        raise FlywheelError(
            f"{artifacts[FORM_ARTIFACT]} has format {form.get('format')!r}; this code reads format "
            f"{FORMAT_VERSION}: load it with the flywheel version that registered it"
        )
    prep = Preprocessor.from_dict(json.loads(Path(artifacts[PREPROCESSOR_ARTIFACT]).read_text()))
    model_path = Path(artifacts[MODEL_ARTIFACT])
    if form["runtime"] == ONNXRUNTIME:
        return OnnxCandidate(
            name=form["form"], architecture=form["architecture"], preprocessor=prep, model_bytes=model_path.read_bytes()
        )
    if form["runtime"] != TORCH:
        raise FlywheelError(f"{artifacts[FORM_ARTIFACT]}: unknown runtime {form['runtime']!r} (torch or onnxruntime)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's TypedStorage notice when it rebuilds int8 tensors
        blob = torch.load(model_path, map_location="cpu", weights_only=True)
    module = TabularNet(**blob["architecture"]).eval()
    layers = list(form.get("int8_layers") or [])
    if layers:
        module = quantize_int8(module, layers)  # the same int8 modules, then the saved int8 weights and scales
    module.load_state_dict(blob["state_dict"])
    return TorchCandidate(
        name=form["form"], architecture=blob["architecture"], preprocessor=prep, module=module, quantized_layers=layers
    )


def pip_requirements(candidate: Candidate) -> list[str]:
    """What loading the pyfunc needs besides this package (explicit, so MLflow skips its slow inference)."""
    reqs = [f"torch=={torch.__version__.split('+')[0]}", "pandas", "numpy", "mlflow"]
    if candidate.runtime == ONNXRUNTIME:
        import onnxruntime

        reqs.append(f"onnxruntime=={onnxruntime.__version__}")
    return reqs


ORT_THREADS_SETTING = "FLYWHEEL_ORT_THREADS"


def ort_threads_setting() -> int | None:
    """FLYWHEEL_ORT_THREADS: intra-op threads of the pyfunc's model calls; None when unset (runtime default)."""
    import os

    raw = os.environ.get(ORT_THREADS_SETTING, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise FlywheelError(
            f"{ORT_THREADS_SETTING}={raw!r} is not a thread count: set a whole number >= 0 (0: the runtime's "
            "default, one thread per core) or unset it"
        )
    return value


class FlywheelOptimizedModel(PythonModel):
    """mlflow.pyfunc wrapper for any candidate form: raw feature columns in, probabilities out (CPU).

    Threads: unset FLYWHEEL_ORT_THREADS keeps the runtime's default (ONNX Runtime: one spin-waiting thread per
    core), the fastest for one large batch (mlflow.pyfunc / spark_udf batch scoring). A server answering
    concurrent small requests (`mlflow models serve`) should set FLYWHEEL_ORT_THREADS=1: one thread per call,
    no spin-waiting pool competing with the server for the cores."""

    def load_context(self, context) -> None:
        self.candidate = load_candidate(context.artifacts)
        self.form = self.candidate.name
        self.preprocessor = self.candidate.preprocessor
        threads = ort_threads_setting()
        if threads is not None and isinstance(self.candidate, OnnxCandidate):
            self.candidate.pin_threads(threads, spinning=False)  # a set count is a server's: no spin-waiting
        elif threads:
            torch.set_num_threads(threads)
        if isinstance(self.candidate, OnnxCandidate):
            self.candidate.session()  # build the session now, not on the first request

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        numeric, categorical = self.preprocessor.transform(df)
        return self.candidate.predict(numeric, categorical)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return pd.DataFrame({OUTPUT_COLUMN: self.predict_proba(model_input)}, index=model_input.index)


__all__ = [
    "FORM_ARTIFACT",
    "MODEL_ARTIFACT",
    "PREPROCESSOR_ARTIFACT",
    "FlywheelOptimizedModel",
    "load_candidate",
    "pip_requirements",
    "save_candidate",
]
