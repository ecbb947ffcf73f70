"""Per-epoch checkpoints, written atomically, and resume from the newest readable one.

A worker killed mid-write leaves a `.tmp` file, never a truncated checkpoint: the file is written next
to its final name, fsynced, then renamed (atomic on POSIX). torchrun --max-restarts restarts the workers,
which load the newest checkpoint and go on from the next epoch.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

_NAME = re.compile(r"^epoch-(\d{5})\.pt$")


class CheckpointStore:
    def __init__(self, directory: str | os.PathLike[str], keep: int = 2) -> None:
        self.directory = Path(directory)
        self.keep = keep

    def save(self, epoch: int, state: dict[str, Any]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"epoch-{epoch:05d}.pt"
        tmp = final.with_suffix(f".pt.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        self._prune()
        return final

    def epochs(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _NAME.match(p.name)))

    def load_latest(self) -> dict[str, Any] | None:
        """The newest checkpoint that loads (a corrupt one is skipped), or None."""
        for epoch in reversed(self.epochs()):
            try:
                return torch.load(self.directory / f"epoch-{epoch:05d}.pt", map_location="cpu", weights_only=True)
            except Exception:  # a damaged file: fall back to the previous epoch
                continue
        return None

    def _prune(self) -> None:
        for epoch in self.epochs()[: -self.keep]:
            (self.directory / f"epoch-{epoch:05d}.pt").unlink(missing_ok=True)
        for stale in self.directory.glob("*.tmp"):
            if not stale.name.endswith(f".{os.getpid()}.tmp"):
                stale.unlink(missing_ok=True)

    # Small text values that must survive restarts (the MLflow run id) live beside the checkpoints.
    def read_value(self, name: str) -> str | None:
        path = self.directory / name
        return path.read_text().strip() if path.is_file() else None

    def write_value(self, name: str, value: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{name}.tmp"
        tmp.write_text(value)
        os.replace(tmp, self.directory / name)
