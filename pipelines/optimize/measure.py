"""Measuring candidates on the pinned test split: quality, agreement with fp32, latency and size on disk.

Quality: AUC, PR-AUC, log loss, Brier and expected calibration error (pipelines.training.metrics) of the
scores on the whole test split (scored in chunks of SCORE_CHUNK rows: the int8 forms quantize activations per
batch, so a row's int8 score depends slightly on the rows batched with it).
Agreement: `max_abs_diff_vs_fp32`, the largest |p - p_fp32| over the test split (and the mean).

Latency (milliseconds, model only: preprocessed arrays in, probabilities out; preprocessing is the same for
every form): keys `latency_b{batch}_{threads}_{p50|p99}_ms` with batch 1 and 256 and threads `1t` (one
intra-op thread) or `allt` (every CPU this process may use). Each setting runs a warm-up, then `repeats`
timed calls, interleaved over all candidates in ROUNDS rounds, so a load spike on a shared machine hits every
candidate alike. p99 of a few dozen samples is the largest few samples (numpy's linear interpolation).
torch's thread count is restored afterwards; ONNX Runtime fixes threads per session, one session per count.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pipelines.optimize.forms import Candidate
from pipelines.training.metrics import classification_metrics

BATCHES = (1, 256)
ROUNDS = 5
SCORE_CHUNK = 8192
QUALITY_KEYS = ("auc", "pr_auc", "log_loss", "brier", "ece")
AGREEMENT_KEY = "max_abs_diff_vs_fp32"
MEAN_AGREEMENT_KEY = "mean_abs_diff_vs_fp32"
# The largest max |p - p_fp32| each faithful form promises on a test split (tests hold every form to it).
# Measured on 9k test rows of a 1.6M-parameter model (benchmarks/results/optimize.md): onnx-fp32 2e-7;
# onnx-int8 0.011-0.013; torch int8 0.019-0.021 (its x86 kernels quantize activations to 7 bits, ORT to 8; the
# mean difference is 0.0015 and AUC moves by < 1e-4). pruned and distilled are other models: the AUC budget
# judges them, not agreement.
AGREEMENT_TOLERANCE = {"fp32": 0.0, "onnx-fp32": 1e-4, "int8": 0.03, "onnx-int8": 0.02}


def all_threads() -> int:
    """CPUs this process may run on (the cgroup/affinity view, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def thread_settings() -> dict[str, int]:
    return {"1t": 1, "allt": all_threads()}


def latency_key(batch: int, threads: str, stat: str) -> str:
    return f"latency_b{batch}_{threads}_{stat}_ms"


SELECTION_LATENCY = latency_key(1, "1t", "p50")  # what "fastest" means when a candidate is picked
GATE_LATENCY = latency_key(1, "1t", "p99")  # what the evaluation gate's latency budget judges


def score(candidate: Candidate, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """Probabilities for every row, in chunks of SCORE_CHUNK rows."""
    parts = [
        candidate.predict(numeric[i : i + SCORE_CHUNK], categorical[i : i + SCORE_CHUNK])
        for i in range(0, len(numeric), SCORE_CHUNK)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def quality(labels: np.ndarray, probs: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    metrics = classification_metrics(labels, probs)
    out = {k: metrics[k] for k in QUALITY_KEYS}
    diff = np.abs(probs - reference)
    out[AGREEMENT_KEY] = float(diff.max()) if diff.size else 0.0
    out[MEAN_AGREEMENT_KEY] = float(diff.mean()) if diff.size else 0.0
    return out


def _batch(numeric: np.ndarray, categorical: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `size` test rows (repeated when the split is smaller), as contiguous arrays."""
    idx = np.arange(size) % len(numeric)
    return np.ascontiguousarray(numeric[idx]), np.ascontiguousarray(categorical[idx])


def latency(
    candidates: Mapping[str, Candidate],
    numeric: np.ndarray,
    categorical: np.ndarray,
    repeats: int,
    batches: tuple[int, ...] = BATCHES,
    threads: Mapping[str, int] | None = None,
    rounds: int = ROUNDS,
) -> dict[str, dict[str, float]]:
    """{candidate: {latency key: ms}} for every batch size and thread setting."""
    if len(numeric) == 0:
        raise ValueError("latency needs at least one test row to time")
    threads = dict(threads or thread_settings())
    rounds = max(1, min(rounds, repeats))
    per_round = [repeats // rounds + (1 if r < repeats % rounds else 0) for r in range(rounds)]
    warmup = max(3, repeats // 5)
    out: dict[str, dict[str, float]] = {name: {} for name in candidates}
    for batch in batches:
        x_num, x_cat = _batch(numeric, categorical, batch)
        for label, n in threads.items():
            samples: dict[str, list[float]] = {name: [] for name in candidates}
            for cand in candidates.values():
                with cand.threads(n):
                    for _ in range(warmup):
                        cand.predict(x_num, x_cat)
            for count in per_round:
                for name, cand in candidates.items():
                    with cand.threads(n):
                        cand.predict(x_num, x_cat)  # untimed: the first call after a thread-count change
                        for _ in range(count):
                            start = time.perf_counter_ns()
                            cand.predict(x_num, x_cat)
                            samples[name].append((time.perf_counter_ns() - start) / 1e6)
            for name, values in samples.items():
                out[name][latency_key(batch, label, "p50")] = float(np.percentile(values, 50))
                out[name][latency_key(batch, label, "p99")] = float(np.percentile(values, 99))
    return out


def size_on_disk(paths: list[Path] | list[str]) -> int:
    """Bytes of the given files (the candidate's saved model file)."""
    return int(sum(Path(p).stat().st_size for p in paths))
