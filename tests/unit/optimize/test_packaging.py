"""Every form round-trips through the pyfunc: saved, loaded by mlflow.pyfunc from a local path, and scoring
raw rows exactly as the candidate scores the preprocessed rows."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pytest

from pipelines.optimize import OptimizationResult
from pipelines.optimize.candidates import ALL_FORMS
from pipelines.optimize.packaging import FlywheelOptimizedModel, load_candidate, pip_requirements
from pipelines.training.packaging import OUTPUT_COLUMN


@pytest.mark.slow
@pytest.mark.parametrize("form", ALL_FORMS)
def test_pyfunc_round_trips_every_form(form: str, optimized: OptimizationResult, trained, tmp_path: Path) -> None:
    candidate = optimized.built[form]
    raw = trained.splits["test"].drop(columns=[trained.spec.label])
    expected = candidate.predict(*trained.prep.transform(raw))

    path = tmp_path / "model"
    mlflow.pyfunc.save_model(
        str(path),
        python_model=FlywheelOptimizedModel(),
        artifacts=optimized.artifacts[form],
        pip_requirements=pip_requirements(candidate),
    )
    loaded = mlflow.pyfunc.load_model(str(path))
    out = loaded.predict(raw)
    assert list(out.columns) == [OUTPUT_COLUMN] and out.index.equals(raw.index)
    assert out[OUTPUT_COLUMN].dtype == np.float64
    np.testing.assert_allclose(out[OUTPUT_COLUMN].to_numpy(), expected, rtol=0, atol=1e-6)
    assert loaded.unwrap_python_model().form == form


@pytest.mark.slow
def test_saved_forms_load_back_as_the_same_form_and_int8_stays_int8(optimized: OptimizationResult, trained) -> None:
    num, cat = (trained.data["test"].numeric.numpy(), trained.data["test"].categorical.numpy())
    for form in ALL_FORMS:
        again = load_candidate(optimized.artifacts[form])
        assert again.name == form and again.runtime == optimized.built[form].runtime
        np.testing.assert_array_equal(again.predict(num, cat), optimized.built[form].predict(num, cat))
    sizes = {row["name"]: row["size_bytes"] for row in optimized.candidates}
    # the int8 files hold int8 weights (1 byte instead of 4), not fp32 ones to re-quantize at load time
    layers = dict(trained.teacher.named_modules())
    quantized = sum(layers[name].weight.numel() for name in optimized.built["int8"].quantized_layers)
    assert quantized > 8000
    assert sizes["int8"] < sizes["fp32"] - 0.8 * 3 * quantized
    assert sizes["onnx-int8"] < sizes["onnx-fp32"] - 0.8 * 3 * quantized
    assert sizes["distilled"] < sizes["fp32"]
