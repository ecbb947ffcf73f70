"""torchrun on this machine (no Dagster): its command line, and the last lines its workers wrote.

The local launcher runs `python -m torch.distributed.run --standalone ... -m pipelines.training.entry`
with per-worker log files in `--log-dir`; a failure quotes their last lines. Dagster Pipes messages travel
in the same streams (one JSON line each, carrying PIPES_MARKER); they are protocol, not output, so they
are left out of what a user reads (here and in pod logs).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from pipelines.training.failure import TrainingFailed

PIPES_MARKER = "__dagster_pipes_version"
TIMEOUT_EXIT_CODE = 124  # coreutils `timeout`: the command ran past its deadline


def deadline_prefix(timeout_s: float) -> list[str]:
    """`timeout ...` ending torchrun (which stops its workers) with SIGTERM, then SIGKILL a minute later.

    PipesSubprocessClient has no timeout of its own; exit code 124 then names the cause. Empty when
    timeout_s is 0 or coreutils `timeout` is missing."""
    if not timeout_s or shutil.which("timeout") is None:
        return []
    return ["timeout", "--signal=TERM", "--kill-after=60", f"{timeout_s:g}s"]


def local_command(
    *,
    python: str,
    nproc: int,
    max_restarts: int,
    log_dir: str,
    device: str,
    entry_args: Sequence[str],
    timeout_s: float = 0,
) -> list[str]:
    return [
        *deadline_prefix(timeout_s),
        python,
        "-m", "torch.distributed.run",
        "--standalone",
        "--nproc-per-node", str(nproc),
        "--max-restarts", str(max_restarts),
        "--log-dir", log_dir,
        "--tee", "3",  # worker stdout/stderr to the console (Dagster's compute logs) and to log_dir
        "-m", "pipelines.training.entry",
        "--device", device,
        *entry_args,
    ]  # fmt: skip


def last_lines(text: str, lines: int) -> list[str]:
    """The last `lines` non-empty lines of `text` that are not Pipes protocol messages."""
    if lines <= 0:
        return []
    return [ln for ln in text.splitlines() if PIPES_MARKER not in ln and ln.strip()][-lines:]


def worker_log_tail(log_dir: Path, lines: int) -> str:
    """The last lines of each worker's log of the newest torchrun attempt (`torchrun --log-dir`)."""
    files = sorted(log_dir.rglob("*.log"), key=lambda p: p.stat().st_mtime)
    out: list[str] = []
    for path in files[-4:]:  # the newest attempt's files (a restart writes a new attempt directory)
        tail = last_lines(path.read_text(errors="replace"), lines)
        if tail:
            out.append(f"--- {path.relative_to(log_dir)}")
            out.extend(tail)
    return "\n".join(out) or "(no worker output)"


def local_failure(why: str, *, where: str, log_dir: str, tail_lines: int, timeout_s: float) -> TrainingFailed:
    """The error for a torchrun that exited non-zero (`why`), with its workers' last log lines."""
    tail = worker_log_tail(Path(log_dir), tail_lines)
    if deadline_prefix(timeout_s) and f"code {TIMEOUT_EXIT_CODE}" in why:
        why = f"it ran past timeout_s={timeout_s:g}s and was stopped ({why}); raise timeout_s if expected"
    return TrainingFailed(
        f"training failed on this machine ({where}): {why}. Last worker log lines:\n{tail}\n"
        "Fix the cause above and re-run; a re-run with the same Dagster run id resumes from the last checkpoint.",
        log_tail=tail,
        log_dir=log_dir,
    )
