"""The embedded lakeFS app in process: oversized bodies get 413, malformed numbers 400, `^0` is the commit itself."""

from __future__ import annotations

from starlette.testclient import TestClient

from pipelines.devstack.lakeserver import app as app_module
from pipelines.devstack.lakeserver import wire
from pipelines.devstack.lakeserver.store import Store

REPO = "/api/v1/repositories/demo"  # created by conftest's `http` fixture


def test_oversized_json_body_is_413_and_changes_nothing(http: TestClient, monkeypatch) -> None:
    monkeypatch.setattr(wire, "JSON_BODY_LIMIT", 1024)
    answer = http.post(f"{REPO}/branches", json={"name": "big", "source": "main", "pad": "x" * 2048})
    assert answer.status_code == 413
    assert "limit" in answer.json()["message"]
    assert http.get(f"{REPO}/branches/big").status_code == 404


def test_oversized_uploads_are_413(http: TestClient, monkeypatch) -> None:
    monkeypatch.setattr(wire, "MULTIPART_BODY_LIMIT", 1024)
    monkeypatch.setattr(app_module, "MAX_UPLOAD_BYTES", 1024)
    url = f"{REPO}/branches/main/objects"
    multipart = http.post(url, params={"path": "a"}, files={"content": ("a", b"x" * 4096)})
    assert multipart.status_code == 413
    raw = http.post(url, params={"path": "b"}, content=b"x" * 4096)
    assert raw.status_code == 413
    chunked = http.post(url, params={"path": "c"}, content=iter([b"x" * 600, b"x" * 600]))
    assert chunked.status_code == 413
    assert http.post(url, params={"path": "d"}, content=b"x" * 100).status_code == 201
    listed = http.get(f"{REPO}/refs/main/objects/ls").json()["results"]
    assert [o["path"] for o in listed] == ["d"]


def test_malformed_numbers_in_bodies_are_400(http: TestClient) -> None:
    http.post(f"{REPO}/branches/main/objects", params={"path": "a"}, content=b"1")
    bad_date = http.post(f"{REPO}/branches/main/commits", json={"message": "m", "date": "yesterday"})
    assert bad_date.status_code == 400 and "date" in bad_date.json()["message"]
    http.post(f"{REPO}/branches/main/commits", json={"message": "m"})
    bad_parent = http.post(f"{REPO}/branches/main/revert", json={"ref": "main", "parent_number": "first"})
    assert bad_parent.status_code == 400 and "parent_number" in bad_parent.json()["message"]


def test_caret_zero_is_the_commit_itself(http: TestClient) -> None:
    head = http.get(f"{REPO}/commits/main").json()["id"]
    assert head and http.get(f"{REPO}/commits/main^0").json()["id"] == head


def test_internal_errors_are_500_without_internals(http: TestClient, monkeypatch, caplog) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("secret path /srv/lake/x and value 42")

    monkeypatch.setattr(Store, "list_tags", broken)
    answer = http.get(f"{REPO}/tags")
    assert answer.status_code == 500
    message = answer.json()["message"]
    assert "secret" not in message and "RuntimeError" not in message
    error_id = message.split("id ")[1].split(";")[0]
    assert any(error_id in r.getMessage() and r.exc_info for r in caplog.records)  # the details are in the log
