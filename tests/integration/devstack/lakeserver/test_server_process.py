"""Running the server: credentials, authentication, the busy-port message, restart with data intact."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import lakefs
import pytest
from lakefs.exceptions import NotAuthorizedException

from pipelines.devstack.lakeserver import process
from pipelines.lake import Lake, LakeAuthError, LakeFSSettings, LakeUnavailableError

from .conftest import Server, free_port, start_server


def test_generated_credentials_are_private_and_required(lakefs_server: Server) -> None:
    path = lakefs_server.data_dir / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key, secret = lakefs_server.credentials
    assert key.startswith("AKIAJ") and len(secret) == 40
    wrong = lakefs.Client(host=lakefs_server.endpoint, username=key, password="not-the-secret")
    with pytest.raises(NotAuthorizedException):
        list(lakefs.repositories(client=wrong))


def test_lake_errors_say_what_failed_and_what_to_do(lakefs_server: Server) -> None:
    key, _ = lakefs_server.credentials
    with pytest.raises(LakeAuthError, match=r"refused the credentials.*LAKEFS_ACCESS_KEY_ID"):
        Lake(LakeFSSettings(lakefs_server.endpoint, key, "wrong")).resolve("main")
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LakeUnavailableError, match=r"cannot reach lakeFS at .*is it running"):
        Lake(LakeFSSettings(closed, key, "x", connect_timeout_s=1)).resolve("main")


def test_endpoint_with_or_without_api_suffix(lakefs_server: Server) -> None:
    key, secret = lakefs_server.credentials
    for host in (lakefs_server.endpoint, lakefs_server.endpoint + "/api/v1"):
        assert lakefs.Client(host=host, username=key, password=secret).version.endswith("flywheel-embedded")


def test_credentials_from_environment(tmp_path) -> None:
    env = {"LAKEFS_ACCESS_KEY_ID": "AKIAJFLYWHEELTEST", "LAKEFS_SECRET_ACCESS_KEY": "s" * 40}
    data_dir = tmp_path / "data"
    server = Server(data_dir, free_port(), tmp_path / "log")
    server.proc = process.start(data_dir, server.port, log_path=server.log_path, env=env)
    try:
        process.wait_healthy(server.endpoint, 30, server.proc, server.log_path)
        assert process.read_credentials(data_dir) == ("AKIAJFLYWHEELTEST", "s" * 40)
        assert lakefs.Client(host=server.endpoint, username=env["LAKEFS_ACCESS_KEY_ID"], password="s" * 40).version
    finally:
        server.stop()


def test_busy_port_is_one_clear_sentence(lakefs_server: Server, tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.devstack.lakeserver",
            "--data-dir",
            str(tmp_path),
            "--port",
            str(lakefs_server.port),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(process.REPO_ROOT)},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"lakeserver: port {lakefs_server.port} on 127.0.0.1 is already in use: "
        "stop what runs there or pick another with --port"
    )


def test_restart_keeps_everything(tmp_path) -> None:
    server = start_server(tmp_path / "data")
    try:
        repo = lakefs.Repository("restart", client=server.client()).create(storage_namespace="local://restart")
        repo.branch("main").object("a").upload(b"kept")
        commit_id = repo.branch("main").commit("c").get_commit().id
        repo.branch("main").object("staged").upload(b"staged too")
    finally:
        server.stop()
    server.start()
    try:
        repo = lakefs.Repository("restart", client=server.client())
        assert repo.branch("main").get_commit().id == commit_id
        with repo.branch("main").object("staged").reader("rb") as r:
            assert r.read() == b"staged too"
    finally:
        server.stop()


def test_a_second_server_on_the_same_data_directory_is_refused(lakefs_server: Server) -> None:
    """Startup clears tmp/ (uploads in flight): a second server must not touch a directory in use."""
    repo = lakefs.Repository("locked", client=lakefs_server.client()).create(storage_namespace="local://locked")
    second = subprocess.Popen(
        process.server_command(lakefs_server.data_dir, "127.0.0.1", free_port()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(process.REPO_ROOT)},
    )
    try:
        _, stderr = second.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.stop(second)
        pytest.fail("a second server started on a data directory that a running server uses")
    assert second.returncode == 2
    data_dir = lakefs_server.data_dir.resolve()
    lock = data_dir / "server.lock"
    assert stderr.strip() == (
        f"lakeserver: the data directory {data_dir} is in use by another lakeFS server "
        f"(pid {lakefs_server.proc.pid}, which holds {lock}): stop that server, or give this one "
        "another --data-dir"
    )
    assert repo.branch("main").get_commit().message == "Repository created"  # the first one still serves
