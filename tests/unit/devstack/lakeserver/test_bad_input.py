"""Bad input to the embedded lakeFS app is a 4xx that says what was wrong, never a 500."""

from __future__ import annotations

from starlette.testclient import TestClient

from pipelines.devstack.lakeserver.auth import parse_basic

from .conftest import REPO


def test_non_ascii_basic_credentials_are_401(http: TestClient) -> None:
    assert parse_basic("Basic é") is None
    for raw in ("Basic é".encode(), "Basic é".encode("latin-1"), b"Basic \xff\xfe"):
        answer = http.get("/api/v1/repositories", headers={"Authorization": raw})
        assert answer.status_code == 401, (raw, answer.text)
        assert "invalid access key or secret" in answer.json()["message"]
    assert http.get(REPO).status_code == 200  # the client's own credentials still work
