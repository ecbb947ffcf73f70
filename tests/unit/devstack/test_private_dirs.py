"""The stack's state directory and its service folders are owner-only (0700): they hold the lakeFS secret,
service data and logs. No service is started here."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pipelines.devstack import manager, services
from pipelines.devstack.manager import Stack
from pipelines.devstack.services import Context
from pipelines.errors import StackError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_directory_is_created_owner_only(tmp_path) -> None:
    state = tmp_path / "fresh" / ".flywheel"
    with Stack(state_dir=state, project_root=tmp_path)._lock():
        assert _mode(state) == 0o700


def test_an_existing_open_state_directory_is_tightened(tmp_path) -> None:
    state = tmp_path / ".flywheel"
    state.mkdir(mode=0o755)
    state.chmod(0o755)  # as earlier versions left it
    with Stack(state_dir=state, project_root=tmp_path)._lock():
        assert _mode(state) == 0o700


def test_service_folders_are_owner_only(tmp_path, monkeypatch) -> None:
    ctx = Context(tmp_path, tmp_path, "127.0.0.1", {"mlflow": 1, "lakefs": 2})
    services._mlflow_command(ctx)
    assert _mode(tmp_path / "mlflow") == 0o700
    (tmp_path / "lakefs").mkdir(mode=0o755)
    (tmp_path / "lakefs").chmod(0o755)
    services._lakefs_command(ctx)
    assert _mode(tmp_path / "lakefs") == 0o700
    assert _mode(services.dagster_home(tmp_path)) == 0o700

    def refuse(*args: object, **kwargs: object) -> None:
        raise StackError("stopped before starting anything")

    monkeypatch.setattr(manager.process, "spawn", refuse)
    with pytest.raises(StackError, match="stopped before"):
        Stack(state_dir=tmp_path, project_root=tmp_path)._start(ctx, [services.LAKEFS], [])
    assert _mode(tmp_path / "logs") == 0o700
