"""Retrain a registered model version from its lineage record and compare the metrics with the recorded ones.

The record is what the systems hold, not a side file: the version's training run in MLflow carries the lakeFS
commit, the spec name and hash, the code version and every training parameter (seed included). The retrain
goes through the same entry point as the pipeline (`pipelines.training.entry` under torchrun, as the local
launcher starts it) on the recorded commit with the recorded settings.

Tolerance: CPU training is bit-exact here. Every source of randomness is seeded from the spec's seed (initial
weights, the shuffling generator per epoch, dropout per epoch and rank), each CPU worker runs torch with one
thread (FLYWHEEL_TORCH_THREADS, default 1, so no reduction order changes between runs), and gloo's all-reduce
sums in a fixed order; the data is an immutable lakeFS commit. So metrics match to float precision and the
default tolerance is 1e-6 (absolute), which only absorbs the float formatting of the MLflow round trip. GPU
kernels (cuDNN, atomics in reductions, bf16 autocast) are not bit-exact between runs, so a run recorded on a GPU
gets GPU_TOLERANCE unless one is given.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.config import project_root
from pipelines.errors import FlywheelError
from pipelines.lineage import keys

CPU_TOLERANCE = 1e-6
GPU_TOLERANCE = 1e-3
# The final metrics of a run (entry._finish): validation_* and test_* from classification_metrics, and the
# best epoch. Throughput (train_samples_per_second) is timing, not a result, so it is not compared.
COMPARED_PREFIXES = ("validation_", "test_")
COMPARED_EXTRA = ("best_epoch",)
DEFAULT_TIMEOUT_S = 3600.0


class ReproduceError(FlywheelError):
    """The record cannot be retrained as it is (missing, or recorded with another spec); says what to do."""


@dataclass
class Record:
    """What the lineage says the version was trained with."""

    name: str
    version: str
    training_run_id: str
    repository: str
    commit: str
    spec: str
    spec_hash: str
    code_version: str
    params: dict[str, str]
    metrics: dict[str, float]
    hardware: str = ""

    @property
    def data_uri(self) -> str:
        return f"lakefs://{self.repository}/{self.commit}/"

    @property
    def on_gpu(self) -> bool:
        return "cuda" in self.hardware.lower() or "gpu" in self.hardware.lower()


@dataclass
class Comparison:
    rows: list[tuple[str, float, float, float]] = field(default_factory=list)  # metric, recorded, now, |diff|
    tolerance: float = CPU_TOLERANCE

    @property
    def worst(self) -> float:
        return max((d for *_, d in self.rows), default=0.0)

    @property
    def within(self) -> bool:
        return bool(self.rows) and self.worst <= self.tolerance

    def table(self) -> str:
        lines = [f"{'metric':28} {'recorded':>14} {'retrained':>14} {'|diff|':>10}  within {self.tolerance:g}"]
        for metric, old, new, diff in self.rows:
            lines.append(
                f"{metric:28} {old:14.8f} {new:14.8f} {diff:10.2e}  {'yes' if diff <= self.tolerance else 'NO'}"
            )
        return "\n".join(lines)


def parse_ref(ref: str) -> tuple[str, str]:
    name, sep, version = ref.rpartition("/")
    if not sep or not name or not version.isdigit():
        raise ReproduceError(f"--from-lineage wants NAME/VERSION (e.g. transactions-model/3), got {ref!r}")
    return name, version


def read_record(client: Any, name: str, version: str) -> Record:
    """The version's training record from MLflow (version tags -> training run -> its tags, params, metrics)."""
    try:
        mv = client.get_model_version(name, version)
    except Exception as exc:
        raise ReproduceError(
            f"model {name!r} version {version} is not in the MLflow registry at {client.tracking_uri}: "
            f"{str(exc)[:200]} (list versions: flywheel lineage --model {name})"
        ) from exc
    run_id = mv.tags.get(keys.TRAINING_RUN_ID)
    if not run_id:
        raise ReproduceError(
            f"{name} version {version} has no {keys.TRAINING_RUN_ID} tag: it was not registered by the optimization "
            "stage, so there is no training record to retrain from"
        )
    try:
        run = client.get_run(run_id)
    except Exception as exc:
        raise ReproduceError(f"training run {run_id} of {name}/{version} is not readable in MLflow: {exc}") from exc
    tags = run.data.tags
    missing = [k for k in (keys.LAKEFS_REPOSITORY, keys.LAKEFS_COMMIT, keys.SPEC, keys.SPEC_HASH) if not tags.get(k)]
    if missing:
        raise ReproduceError(f"training run {run_id} lacks the lineage tags {missing}: it cannot be reproduced")
    return Record(
        name=name,
        version=version,
        training_run_id=run_id,
        repository=tags[keys.LAKEFS_REPOSITORY],
        commit=tags[keys.LAKEFS_COMMIT],
        spec=tags[keys.SPEC],
        spec_hash=tags[keys.SPEC_HASH],
        code_version=tags.get(keys.CODE_VERSION, "unknown"),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        hardware=tags.get(keys.HARDWARE, ""),
    )


def check_code(record: Record, current: str) -> str | None:
    """A warning when the code differs from the recorded code (retraining still runs: the numbers will say)."""
    if current == record.code_version and not current.endswith("-dirty") and current != "unknown":
        return None
    if current == "unknown" or record.code_version == "unknown":
        return f"code version unknown (recorded {record.code_version}, now {current}): cannot tell whether it differs"
    if current.removesuffix("-dirty") != record.code_version.removesuffix("-dirty"):
        return (
            f"the code differs from the record: trained at {record.code_version}, this tree is {current}; "
            f"for an exact reproduction check out {record.code_version.removesuffix('-dirty')}"
        )
    return f"a working tree with uncommitted changes ({current}; recorded {record.code_version}): results may differ"


def check_spec(record: Record, current_hash: str, force: bool) -> str | None:
    """Refuse (or, with force, warn) when the spec today is not the spec the version was trained with."""
    if current_hash == record.spec_hash:
        return None
    message = (
        f"spec {record.spec!r} changed since {record.name}/{record.version} was trained (recorded hash "
        f"{record.spec_hash}, now {current_hash}): a retrain would not be the same training"
    )
    if not force:
        raise ReproduceError(message + "; restore that spec, or pass --force to retrain with today's spec anyway")
    return message + " (--force: retraining anyway)"


def training_args(record: Record) -> list[str]:
    """Entry arguments that pin every recorded setting the command line can set (the rest is in the spec)."""
    p = record.params
    args = ["--data", record.data_uri, "--spec", record.spec, "--no-mlflow"]
    for param, flag in (("epochs", "--epochs"), ("batch_size", "--batch-size"), ("learning_rate", "--learning-rate")):
        if p.get(param):
            args += [flag, p[param]]
    if p.get("seed"):
        args += ["--seed", p["seed"]]
    if p.get("monitor"):
        args += ["--early-stopping-metric", p["monitor"]]
    args += ["--device", "cuda" if record.on_gpu else "cpu"]
    if p.get("bf16") == "False" and record.on_gpu:
        args.append("--no-bf16")
    return args


def retrain(record: Record, workdir: Path | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, float]:
    """Train again with torchrun (the recorded world size) and return the final metrics."""
    nproc = record.params.get("world_size", "1")
    with tempfile.TemporaryDirectory(prefix="flywheel-retrain-", dir=workdir) as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", nproc,
            "-m", "pipelines.training.entry", *training_args(record),
            "--checkpoint-dir", str(Path(tmp) / "ckpt"), "--result-json", str(result_file),
        ]  # fmt: skip
        env = {**os.environ, "LAKEFS_REPOSITORY": record.repository}
        proc = subprocess.Popen(cmd, cwd=project_root(), env=env, start_new_session=True)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise ReproduceError(f"retraining took over {timeout_s:.0f}s and was stopped") from exc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.returncode != 0 or not result_file.exists():
            raise ReproduceError(
                f"retraining {record.name}/{record.version} failed (exit {proc.returncode}); its output is above"
            )
        return {k: float(v) for k, v in json.loads(result_file.read_text())["metrics"].items()}


def compare(recorded: dict[str, float], now: dict[str, float], tolerance: float) -> Comparison:
    rows = []
    for metric in sorted(now):
        if not (metric.startswith(COMPARED_PREFIXES) or metric in COMPARED_EXTRA) or metric not in recorded:
            continue
        old, new = float(recorded[metric]), float(now[metric])
        if math.isnan(old) and math.isnan(new):
            continue  # a metric undefined in both runs (one class only) agrees
        rows.append((metric, old, new, abs(old - new) if not (math.isnan(old) or math.isnan(new)) else math.inf))
    return Comparison(rows, tolerance)
