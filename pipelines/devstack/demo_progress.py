"""`make demo`'s progress display: rich bars in a terminal, plain heartbeat lines elsewhere (CI logs, pipes).

The long steps report what they do from their own output: `flywheel produce --format json` its progress lines,
a Dagster job the steps its log has started and finished.
"""

from __future__ import annotations

import json
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

console = Console(highlight=False)
STEP_EVENT = re.compile(r" - (\w+) - (STEP_START|STEP_SUCCESS|STEP_FAILURE) - ")


def interactive() -> bool:
    return sys.stdout.isatty()


@dataclass
class JobSteps:
    """The steps a Dagster job's log says started and finished so far."""

    started: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, log_path: Path) -> JobSteps:
        steps = cls()
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        for step, event in STEP_EVENT.findall(text):
            bucket = {"STEP_START": steps.started, "STEP_SUCCESS": steps.done, "STEP_FAILURE": steps.failed}[event]
            if step not in bucket:
                bucket.append(step)
        return steps

    def describe(self) -> str:
        running = [s for s in self.started if s not in self.done and s not in self.failed]
        now = f"now {', '.join(running)}" if running else "starting"
        return f"{len(self.done)} steps done, {now}"


def produce_progress(line: str) -> dict[str, Any] | None:
    """One `flywheel produce --format json` progress line, or None for any other line."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and event.get("event") == "produce.progress" else None


@contextmanager
def bar(description: str, total: float | None):
    """A progress bar (total known) or a spinner with elapsed time; yields update(completed, description)."""
    if not interactive():

        def plain(completed: float | None = None, text: str | None = None) -> None:
            return None  # the heartbeat lines of the caller say it

        yield plain
        return
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total:
        columns += [BarColumn(), TextColumn("{task.percentage:>3.0f}%")]
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)

        def update(completed: float | None = None, text: str | None = None) -> None:
            progress.update(task, completed=completed, description=text or description)

        yield update
