"""Models by alias: load a registered version the fast way, follow `champion`/`challenger` and the rollout, and
swap what serves atomically.

A version registered by the optimization stage is an MLflow pyfunc whose artifacts are the form (form.json),
the model file (ONNX graph or torch weights) and the fitted preprocessor (pipelines.optimize.packaging). Serving
downloads those artifacts and runs them directly (one ONNX Runtime session, or the torch module, plus
`Preprocessor.transform`): the same computation as the pyfunc, without its per-call DataFrame plumbing.
A version logged by training alone (FlywheelTabularModel: weights + preprocessor) loads too.

What serves is one immutable `Snapshot` (champion, challenger, rollout); the follower builds a new one off the
request path and replaces the reference in one assignment, so a request keeps the snapshot it started with and
a swap never fails or drops it. Versions stay loaded for a while after they stop serving (`keep_warm`), so a
rollback or a blue-green switch back is instant.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import yaml

from pipelines.errors import FlywheelError
from pipelines.serving.features import RowFeaturizer
from pipelines.serving.rollout import Rollout
from pipelines.training.preprocess import Preprocessor

log = logging.getLogger(__name__)


class ModelLoadError(FlywheelError):
    """A registered version could not be loaded; the message names the model, version and cause."""


@dataclass(eq=False)
class LoadedModel:
    name: str
    version: str
    form: str
    preprocessor: Preprocessor
    predict_arrays: Callable[[np.ndarray, np.ndarray], np.ndarray]  # preprocessed inputs -> probabilities
    loaded_at: float = field(default_factory=time.time)

    @property
    def input_columns(self) -> list[str]:
        return self.preprocessor.input_columns

    def __post_init__(self) -> None:
        self.featurizer = RowFeaturizer(self.preprocessor)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        numeric, categorical = self.preprocessor.transform(frame)
        return np.asarray(self.predict_arrays(numeric, categorical), dtype=np.float64).reshape(-1)

    def predict_rows(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """The serving path: request records in, the same inputs as `predict` without a DataFrame."""
        numeric, categorical = self.featurizer.transform(rows)
        return np.asarray(self.predict_arrays(numeric, categorical), dtype=np.float64).reshape(-1)


def _pyfunc_artifacts(model_dir: Path) -> dict[str, str]:
    """{artifact name: local path} from the MLmodel file of a downloaded pyfunc model."""
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    pyfunc = (mlmodel.get("flavors") or {}).get("python_function") or {}
    artifacts = pyfunc.get("artifacts") or {}
    return {name: str(model_dir / entry["path"]) for name, entry in artifacts.items()}


def load_from_directory(name: str, version: str, model_dir: Path, threads: int = 1) -> LoadedModel:
    """A LoadedModel from a downloaded pyfunc model directory (either Flywheel form)."""
    from pipelines.optimize.packaging import FORM_ARTIFACT, load_candidate
    from pipelines.training.packaging import WEIGHTS_ARTIFACT

    artifacts = _pyfunc_artifacts(model_dir)
    if FORM_ARTIFACT in artifacts:
        candidate = load_candidate(artifacts)
        if candidate.runtime == "onnxruntime":
            from pipelines.optimize.forms import make_session

            session = make_session(candidate.model_bytes, threads, spinning=False)  # type: ignore[attr-defined]
            inputs = {i.name for i in session.get_inputs()}

            def run_onnx(numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
                given = {"numeric": numeric.astype(np.float32, copy=False), "categorical": categorical}
                (probs,) = session.run(["probability"], {k: v for k, v in given.items() if k in inputs})
                return np.asarray(probs).reshape(-1)

            return LoadedModel(name, version, candidate.name, candidate.preprocessor, run_onnx)
        return LoadedModel(name, version, candidate.name, candidate.preprocessor, candidate.predict)
    if WEIGHTS_ARTIFACT in artifacts:
        import json

        import torch

        from pipelines.training.packaging import PREPROCESSOR_ARTIFACT, build_module

        blob = torch.load(artifacts[WEIGHTS_ARTIFACT], map_location="cpu", weights_only=True)
        module = build_module(blob["architecture"], blob["state_dict"])
        prep = Preprocessor.from_dict(json.loads(Path(artifacts[PREPROCESSOR_ARTIFACT]).read_text()))

        def run_torch(numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module.predict_proba(torch.from_numpy(numeric), torch.from_numpy(categorical)).numpy()

        return LoadedModel(name, version, "fp32", prep, run_torch)
    raise ModelLoadError(
        f"{name} version {version} is not a Flywheel model (its pyfunc artifacts are {sorted(artifacts)}): "
        "register versions through retrain_job's optimized_model"
    )


def mlflow_loader(name: str, tracking_uri: str | None, threads: int = 1) -> Callable[[str], LoadedModel]:
    """Loads versions of `name` from the registry (artifacts downloaded to a temporary directory)."""

    def load(version: str) -> LoadedModel:
        import mlflow.artifacts

        with tempfile.TemporaryDirectory(prefix=f"flywheel-serve-{name}-{version}-") as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{name}/{version}", dst_path=tmp, tracking_uri=tracking_uri
                )
            except Exception as exc:
                raise ModelLoadError(
                    f"downloading {name} version {version} from MLflow at {tracking_uri} failed: {exc}"
                ) from None
            return load_from_directory(name, version, Path(path), threads)

    return load


@dataclass(frozen=True)
class RegistryView:
    """What the registry says should serve."""

    champion: str | None
    challenger: str | None
    rollout: Rollout | None


class RegistrySource(Protocol):
    def read(self) -> RegistryView: ...


@dataclass(frozen=True)
class Snapshot:
    """What serves right now; replaced whole, never changed in place."""

    champion: LoadedModel | None = None
    challenger: LoadedModel | None = None
    rollout: Rollout | None = None  # only when it names the loaded challenger and progresses
    error: str = ""  # why the registry view is not (fully) served, e.g. a version failed to load

    @property
    def ready(self) -> bool:
        return self.champion is not None

    @property
    def challenger_share(self) -> float:
        return self.rollout.challenger_share if self.rollout and self.challenger else 0.0

    @property
    def shadow(self) -> bool:
        return bool(self.rollout and self.challenger and self.rollout.shadow)


class ModelFollower:
    """Keeps `snapshot` equal to the registry's aliases and rollout, polling every `poll_s` seconds."""

    def __init__(
        self,
        source: RegistrySource,
        loader: Callable[[str], LoadedModel],
        poll_s: float = 5.0,
        keep_warm: int = 3,
        on_swap: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self.source = source
        self.loader = loader
        self.poll_s = poll_s
        self.keep_warm = keep_warm
        self.on_swap = on_swap
        self.snapshot = Snapshot()
        self.last_poll: float | None = None
        self.last_error = ""
        self._cache: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()  # one refresh at a time (the poller and /admin/reload)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _model(self, version: str | None) -> LoadedModel | None:
        if version is None:
            return None
        model = self._cache.get(version)
        if model is None:
            model = self.loader(version)
            self._cache[version] = model
        self._cache.move_to_end(version)
        return model

    def refresh(self) -> Snapshot:
        """Read the registry; load what is new (off the request path); swap in one assignment."""
        with self._lock:
            view = self.source.read()
            current = self.snapshot
            errors = []
            try:
                champion = self._model(view.champion)
            except Exception as exc:  # keep serving what was loaded; say why in /v1/models and the log
                champion = current.champion
                errors.append(str(exc))
            try:
                challenger = self._model(view.challenger) if view.challenger != view.champion else None
            except Exception as exc:
                challenger = None
                errors.append(str(exc))
            rollout = view.rollout
            if rollout is not None and (challenger is None or rollout.challenger != challenger.version):
                rollout = None
            new = Snapshot(champion, challenger, rollout, "; ".join(errors))
            serving = {m.version for m in (champion, challenger) if m is not None}
            while len(self._cache) > max(self.keep_warm, len(serving)):
                oldest = next(v for v in self._cache if v not in serving)
                self._cache.pop(oldest)
            changed = (
                new.champion is not current.champion
                or new.challenger is not current.challenger
                or new.rollout != current.rollout
                or new.error != current.error
            )
            if changed:
                self.snapshot = new  # the atomic swap
                if self.on_swap is not None:
                    self.on_swap(new)
                log.info(
                    "serving champion %s, challenger %s, rollout %s",
                    getattr(champion, "version", None),
                    getattr(challenger, "version", None),
                    rollout.to_dict() if rollout else None,
                )
            self.last_poll = time.time()
            self.last_error = new.error
            return self.snapshot

    def poll_once(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # the registry is down: keep serving the last snapshot, retry next poll
            self.last_error = f"reading the registry failed: {exc}"
            log.warning("%s; still serving the models loaded before", self.last_error)

    def start(self) -> None:
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.is_set():
                self.poll_once()
                self._stop.wait(self.poll_s)

        self._thread = threading.Thread(target=loop, name="flywheel-model-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def cached_versions(self) -> list[str]:
        return list(self._cache)


def describe_model(model: LoadedModel | None) -> dict[str, Any] | None:
    if model is None:
        return None
    return {"version": model.version, "form": model.form, "loaded_at": model.loaded_at}
