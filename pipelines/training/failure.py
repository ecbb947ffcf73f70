"""What a failed training launch reports (no Dagster): one FlywheelError saying what failed and what to do,
with where it ran (job, pods, local log directory) and the workers' last log lines as separate details,
which the Dagster launchers turn into Failure metadata."""

from __future__ import annotations

from collections.abc import Sequence

from pipelines.errors import FlywheelError


class TrainingFailed(FlywheelError):
    def __init__(
        self, message: str, *, job: str = "", pods: Sequence[str] = (), log_tail: str = "", log_dir: str = ""
    ) -> None:
        super().__init__(message)
        self.job = job
        self.pods = list(pods)
        self.log_tail = log_tail
        self.log_dir = log_dir

    def details(self) -> dict[str, str]:
        """The non-empty details by metadata name: job, pod, torchrun_log_dir, log_tail."""
        found = {"job": self.job, "pod": ", ".join(self.pods), "torchrun_log_dir": self.log_dir}
        return {k: v for k, v in {**found, "log_tail": self.log_tail}.items() if v}
