"""Small real models registered in MLflow the way the optimization stage registers them (FlywheelOptimizedModel
pyfunc over save_candidate's artifacts), a real online store (redis-server) and `flywheel serve` as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import mlflow
import numpy as np
import orjson
import torch

from pipelines import registry
from pipelines.devstack.net import free_port
from pipelines.optimize.forms import TorchCandidate
from pipelines.optimize.packaging import FlywheelOptimizedModel, save_candidate
from pipelines.spec import load_spec
from pipelines.spec.samples import sample_columns
from pipelines.training.model import TabularNet
from pipelines.training.preprocess import Preprocessor
from pipelines.training.synthetic import synthetic_table

ROOT = Path(__file__).resolve().parents[3]
SPEC = load_spec("transactions")
TOKEN = "integration-admin-token"


def train_candidate(seed: int, epochs: int = 60, coin: bool = False) -> TorchCandidate:
    """A small TabularNet trained on a synthetic table (a few seconds on a CPU); `coin`: random weights, a model
    that scores like a coin (the gate's worse model)."""
    table = synthetic_table(SPEC, 3000, seed=seed)
    prep = Preprocessor.fit(SPEC, table)
    torch.manual_seed(seed)
    arch = {"numeric_width": prep.numeric_width, "cardinalities": prep.cardinalities, "hidden_dims": [16]}
    net = TabularNet(**arch)
    if not coin:
        numeric, categorical = (torch.from_numpy(a) for a in prep.transform(table))
        labels = torch.tensor(table[SPEC.label].astype(float).to_numpy(), dtype=torch.float32)
        optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
        for _ in range(epochs):
            optimizer.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(numeric, categorical), labels)
            loss.backward()
            optimizer.step()
    else:
        for layer in net.modules():
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.normal_(layer.weight, std=2.0)
    return TorchCandidate(name="fp32", architecture=arch, preprocessor=prep, module=net.eval())


def register_candidate(name: str, candidate: TorchCandidate, workdir: Path, passed: bool = True) -> str:
    """Log and register like optimized_model does; tag it as the gate would (forced to pass for a bad one)."""
    artifacts = save_candidate(candidate, workdir / uuid.uuid4().hex[:8])
    mlflow.set_experiment("serving-tests")
    with mlflow.start_run(run_name=f"serving test {name}"):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=FlywheelOptimizedModel(), artifacts=artifacts, pip_requirements=["mlflow"]
        )
    version = registry.register(str(info.model_uri), name, {"flywheel.form": candidate.name})
    registry.record_decision(name, version, passed, "serving test: " + ("passed" if passed else "rejected"))
    return version


def events(n: int, seed: int = 0, entities: int = 500, labels: bool = False) -> list[dict]:
    """Raw events as a producer sends them (the spec's sampler), without labels unless asked for."""
    cols = sample_columns(SPEC, n, seed=seed, label_rate=0.2, entities=entities, step_ms=1000)
    out = []
    for i in range(n):
        event = {name: _plain(cols[name][i]) for name in SPEC.event_fields if labels or name != SPEC.label}
        out.append(event)
    return out


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value


def bodies(records: list[dict], per_request: int) -> list[bytes]:
    return [orjson.dumps({"records": records[i : i + per_request]}) for i in range(0, len(records), per_request)]


@contextmanager
def serve(env: dict[str, str], log_path: Path, port: int | None = None) -> Iterator[str]:
    """`flywheel serve` as a user starts it; yields its URL once it is live; stopped (SIGTERM) after."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"flywheel serve exited: {log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise AssertionError(f"flywheel serve did not come up: {log_path.read_text()[-3000:]}")
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(check, timeout_s: float = 30.0, interval_s: float = 0.3):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s")


def admin(url: str, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body or {}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
