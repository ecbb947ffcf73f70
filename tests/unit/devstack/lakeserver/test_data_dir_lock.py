"""The data-directory lock: one holder at a time, released when the holder lets go."""

from __future__ import annotations

import os

import pytest

from pipelines.devstack.lakeserver.server import lock_data_dir
from pipelines.errors import StackError


def test_one_holder_at_a_time(tmp_path) -> None:
    with lock_data_dir(tmp_path):
        assert (tmp_path / "server.lock").read_text().strip() == str(os.getpid())
        # flock is per open file: a second open in this same process conflicts like another process would.
        with (
            pytest.raises(StackError, match=rf"{tmp_path} is in use .*pid {os.getpid()}, which holds"),
            lock_data_dir(tmp_path),
        ):
            pass
    with lock_data_dir(tmp_path):  # released
        pass
