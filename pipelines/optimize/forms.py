"""The runnable forms of a model: one interface, so metrics, latency and packaging treat every candidate alike.

A candidate takes preprocessed inputs (the float32 numeric block and the int64 category indices that
`Preprocessor.transform` returns) and returns float64 probabilities. Preprocessing is the same for every
form, so it sits outside the candidate and outside the latency it is timed with.

`threads(n)` runs a block with n intra-op threads: torch's process-wide setting (restored afterwards) or an
ONNX Runtime session built with intra_op_num_threads=n (cached per n, since ORT fixes threads per session).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from pipelines.training.preprocess import Preprocessor

TORCH = "torch"
ONNXRUNTIME = "onnxruntime"
# The ONNX graph's names: the exported graph returns probabilities (sigmoid included).
ONNX_INPUTS = ("numeric", "categorical")
ONNX_OUTPUT = "probability"

ArrayLike = np.ndarray | torch.Tensor


def as_numpy(x: ArrayLike, dtype: type) -> np.ndarray:
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.ascontiguousarray(array, dtype=dtype)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to n for the block, then put back as it was."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(eq=False, kw_only=True)
class Candidate(ABC):
    """One form of the model. `name` is the spec's candidate name (fp32, int8, pruned, distilled, onnx-...)."""

    name: str
    architecture: dict[str, Any]  # the TabularNet arguments this form was built from (the student's own)
    preprocessor: Preprocessor
    notes: dict[str, Any] = field(default_factory=dict)  # how it was built (pruned share, student size, ...)

    runtime: ClassVar[str]

    @abstractmethod
    def predict(self, numeric: ArrayLike, categorical: ArrayLike) -> np.ndarray:
        """Probabilities (float64, shape [N]) for preprocessed inputs."""

    @abstractmethod
    def threads(self, n: int) -> contextlib.AbstractContextManager[None]:
        """Run the block's predict calls with n intra-op threads."""


@dataclass(eq=False, kw_only=True)
class TorchCandidate(Candidate):
    """An eager torch module in eval mode: fp32, pruned, distilled, or dynamically quantized int8."""

    module: nn.Module
    quantized_layers: list[str] = field(default_factory=list)  # Linear layers swapped for dynamic int8 ones
    runtime: ClassVar[str] = TORCH

    def __post_init__(self) -> None:
        self.module.eval()

    def predict(self, numeric: ArrayLike, categorical: ArrayLike) -> np.ndarray:
        num = torch.as_tensor(as_numpy(numeric, np.float32))
        cat = torch.as_tensor(as_numpy(categorical, np.int64))
        with torch.inference_mode():
            probs = torch.sigmoid(self.module(num, cat).float())
        return probs.numpy().astype(np.float64)

    def threads(self, n: int) -> contextlib.AbstractContextManager[None]:
        return torch_threads(n)


@dataclass(eq=False, kw_only=True)
class OnnxCandidate(Candidate):
    """An ONNX graph (probabilities out) run with ONNX Runtime on CPU; `model_bytes` is the serialized graph."""

    model_bytes: bytes
    runtime: ClassVar[str] = ONNXRUNTIME
    _sessions: dict[int, Any] = field(default_factory=dict, repr=False)
    _active: int = field(default=0, repr=False)  # 0: ORT's default thread count
    _spinning: bool = field(default=True, repr=False)

    def session(self, n: int | None = None):
        """The session for n intra-op threads (default: the pinned count)."""
        n = self._active if n is None else n
        if n not in self._sessions:
            self._sessions[n] = make_session(self.model_bytes, n, self._spinning)
        return self._sessions[n]

    def pin_threads(self, n: int, spinning: bool = True) -> None:
        """Every later predict runs with n intra-op threads (0: ORT's default), spin-waiting or not."""
        if spinning != self._spinning:
            self._sessions.clear()
        self._active, self._spinning = n, spinning

    def predict(self, numeric: ArrayLike, categorical: ArrayLike) -> np.ndarray:
        session = self.session(self._active)
        given = {"numeric": as_numpy(numeric, np.float32), "categorical": as_numpy(categorical, np.int64)}
        # The exporter drops an input the graph never reads (e.g. a spec without categorical features).
        feed = {i.name: given[i.name] for i in session.get_inputs()}
        (probs,) = session.run([ONNX_OUTPUT], feed)
        return np.asarray(probs, dtype=np.float64).reshape(-1)

    @contextlib.contextmanager
    def threads(self, n: int) -> Iterator[None]:
        before = self._active
        self._active = n
        try:
            yield
        finally:
            self._active = before


def make_session(model: bytes | str, threads: int = 0, spinning: bool = True):
    """A CPU InferenceSession; threads=0 keeps ONNX Runtime's default (one per physical core). spinning=False:
    idle pool threads sleep instead of spin-waiting (ORT's default spins, burning CPU other processes need)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initializers are noise here
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
