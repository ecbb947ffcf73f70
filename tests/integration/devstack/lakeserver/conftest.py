"""Fixtures for the embedded lakeFS server: a real server in a subprocess on a free port, the official
SDK client, and a fresh repository per test (so tests never see each other's branches)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lakefs
import pytest

from pipelines.devstack.lakeserver import process
from pipelines.lake import Lake, LakeFSSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    data_dir: Path
    port: int
    log_path: Path
    proc: object = None

    @property
    def endpoint(self) -> str:
        return process.endpoint_url("127.0.0.1", self.port)

    @property
    def credentials(self) -> tuple[str, str]:
        return process.read_credentials(self.data_dir)

    def start(self) -> Server:
        # Generated credentials, even when the session's stack exported its own LAKEFS_* variables.
        env = {"LAKEFS_ACCESS_KEY_ID": None, "LAKEFS_SECRET_ACCESS_KEY": None}
        self.proc = process.start(self.data_dir, self.port, log_path=self.log_path, env=env)
        process.wait_healthy(self.endpoint, 30, self.proc, self.log_path)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            process.stop(self.proc)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def client(self) -> lakefs.Client:
        key, secret = self.credentials
        return lakefs.Client(host=self.endpoint, username=key, password=secret)


def start_server(data_dir: Path) -> Server:
    return Server(data_dir, free_port(), data_dir.parent / f"{data_dir.name}.log").start()


@pytest.fixture(scope="session")
def lakefs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("lakeserver") / "data")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(lakefs_server: Server) -> lakefs.Client:
    return lakefs_server.client()


@pytest.fixture
def repo(client: lakefs.Client) -> lakefs.Repository:
    name = f"t-{uuid.uuid4().hex[:12]}"
    return lakefs.Repository(name, client=client).create(storage_namespace=f"local://{name}")


@pytest.fixture
def lake(lakefs_server: Server) -> Lake:
    key, secret = lakefs_server.credentials
    settings = LakeFSSettings(
        lakefs_server.endpoint, key, secret, repository=f"wap-{uuid.uuid4().hex[:12]}", read_timeout_s=30
    )
    lake = Lake(settings)
    lake.ensure_repository()
    return lake
