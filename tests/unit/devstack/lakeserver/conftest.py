"""The embedded lakeFS app in process (Starlette's TestClient, no server, no socket), with one repository."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from pipelines.devstack.lakeserver.app import build_app
from pipelines.devstack.lakeserver.auth import Credentials
from pipelines.devstack.lakeserver.store import Store

KEY, SECRET = "AKIAJTEST", "secret"
REPO = "/api/v1/repositories/demo"


@pytest.fixture
def http(tmp_path) -> Iterator[TestClient]:
    """A client authenticated with the app's key pair; repository `demo` exists (branch main)."""
    creds = Credentials(KEY, SECRET)
    token = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    with TestClient(build_app(Store(tmp_path / "lake"), creds), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Basic {token}"
        created = client.post("/api/v1/repositories", json={"name": "demo", "storage_namespace": "local://demo"})
        assert created.status_code == 201
        yield client
