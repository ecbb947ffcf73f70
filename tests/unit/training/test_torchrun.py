"""torchrun on this machine (pipelines/training/torchrun.py): the command line and the workers' log tail."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipelines.training import torchrun


def test_command_runs_the_entry_point_under_torchrun_with_a_deadline() -> None:
    cmd = torchrun.local_command(
        python="/py",
        nproc=3,
        max_restarts=1,
        log_dir="/logs",
        device="cpu",
        entry_args=["--data", "lakefs://r/c/"],
        timeout_s=90,
    )
    start = cmd.index("/py")
    assert cmd[start:] == [
        *("/py", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "3", "--max-restarts", "1"),
        *("--log-dir", "/logs", "--tee", "3", "-m", "pipelines.training.entry", "--device", "cpu"),
        *("--data", "lakefs://r/c/"),
    ]
    if shutil.which("timeout"):
        assert cmd[:start] == ["timeout", "--signal=TERM", "--kill-after=60", "90s"]
    no_deadline = torchrun.local_command(
        python="/py", nproc=1, max_restarts=0, log_dir="/l", device="cpu", entry_args=[], timeout_s=0
    )
    assert no_deadline[0] == "/py"


def test_last_lines_leave_out_pipes_messages_and_blanks() -> None:
    text = "a\n\nb\n" + '{"__dagster_pipes_version": "0.1", "method": "report_asset_materialization"}\nc\n'
    assert torchrun.last_lines(text, 2) == ["b", "c"]
    assert torchrun.last_lines(text, 0) == []


def test_worker_log_tail_quotes_each_worker_newest_last(tmp_path: Path) -> None:
    old = tmp_path / "attempt_0" / "0" / "stderr.log"
    new = tmp_path / "attempt_1" / "0" / "stderr.log"
    for path, text in ((old, "old failure\n"), (new, "x\ny\nCUDA out of memory\n")):
        path.parent.mkdir(parents=True)
        path.write_text(text)
    os.utime(old, (1, 1))  # older than the newest attempt
    tail = torchrun.worker_log_tail(tmp_path, 2)
    assert tail == "--- attempt_0/0/stderr.log\nold failure\n--- attempt_1/0/stderr.log\ny\nCUDA out of memory"


@pytest.mark.parametrize("lines", [1, 5])
def test_worker_log_tail_with_no_output(tmp_path: Path, lines: int) -> None:
    assert torchrun.worker_log_tail(tmp_path, lines) == "(no worker output)"
