"""The pyfunc's ONNX Runtime threads follow FLYWHEEL_ORT_THREADS (a server sets 1: one thread per call, no
spin-waiting pool); unset, the runtime's default stays (one spinning thread per core, for batch scoring)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipelines.errors import FlywheelError
from pipelines.optimize.candidates import export_onnx
from pipelines.optimize.forms import OnnxCandidate
from pipelines.optimize.packaging import ORT_THREADS_SETTING, FlywheelOptimizedModel, save_candidate
from pipelines.spec import load_spec
from pipelines.training.model import TabularNet
from pipelines.training.preprocess import Preprocessor
from pipelines.training.synthetic import synthetic_table

SPEC = load_spec("transactions")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    table = synthetic_table(SPEC, 200, seed=1)
    prep = Preprocessor.fit(SPEC, table)
    torch.manual_seed(1)
    net = TabularNet(prep.numeric_width, prep.cardinalities, [8], SPEC.model.embedding_dim).eval()
    architecture = {
        "numeric_width": prep.numeric_width,
        "cardinalities": prep.cardinalities,
        "hidden_dims": [8],
        "embedding_dim": SPEC.model.embedding_dim,
    }
    candidate = OnnxCandidate(
        name="onnx-fp32", architecture=architecture, preprocessor=prep, model_bytes=export_onnx(net, prep)
    )
    return save_candidate(candidate, Path(tmp_path_factory.mktemp("candidate")))


def loaded(artifacts: dict[str, str]) -> FlywheelOptimizedModel:
    model = FlywheelOptimizedModel()
    model.load_context(SimpleNamespace(artifacts=artifacts))
    return model


def options(model: FlywheelOptimizedModel):
    return model.candidate.session().get_session_options()  # type: ignore[attr-defined]


def test_a_set_thread_count_pins_the_session_without_spinning(artifacts, monkeypatch) -> None:
    monkeypatch.setenv(ORT_THREADS_SETTING, "1")
    model = loaded(artifacts)
    opts = options(model)
    assert opts.intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    rows = synthetic_table(SPEC, 5, seed=2).drop(columns=[SPEC.label])
    scores = model.predict(None, rows)["probability"].to_numpy()
    monkeypatch.delenv(ORT_THREADS_SETTING)
    np.testing.assert_allclose(scores, loaded(artifacts).predict(None, rows)["probability"].to_numpy(), atol=1e-6)


def test_unset_keeps_the_runtime_default(artifacts, monkeypatch) -> None:
    monkeypatch.delenv(ORT_THREADS_SETTING, raising=False)
    opts = options(loaded(artifacts))
    assert opts.intra_op_num_threads == 0


def test_a_bad_thread_count_says_what_to_set(artifacts, monkeypatch) -> None:
    monkeypatch.setenv(ORT_THREADS_SETTING, "two")
    with pytest.raises(FlywheelError, match=ORT_THREADS_SETTING):
        loaded(artifacts)
