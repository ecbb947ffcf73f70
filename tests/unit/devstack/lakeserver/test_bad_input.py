"""Bad input to the embedded lakeFS app is a 4xx that says what was wrong, never a 500."""

from __future__ import annotations

from starlette.testclient import TestClient

from pipelines.devstack.lakeserver.auth import parse_basic
from pipelines.lake import LakeFSSettings

from .conftest import REPO


def test_non_ascii_basic_credentials_are_401(http: TestClient) -> None:
    assert parse_basic("Basic é") is None
    for raw in ("Basic é".encode(), "Basic é".encode("latin-1"), b"Basic \xff\xfe"):
        answer = http.get("/api/v1/repositories", headers={"Authorization": raw})
        assert answer.status_code == 401, (raw, answer.text)
        assert "invalid access key or secret" in answer.json()["message"]
    assert http.get(REPO).status_code == 200  # the client's own credentials still work


MAX_CHAR = "\U0010ffff"  # the largest code point: nothing sorts after it


def _bad(answer, *words: str) -> None:
    """A 400 whose message names what was wrong."""
    assert answer.status_code == 400, answer.text
    message = answer.json()["message"]
    assert all(w in message for w in words), message


def _stage(http: TestClient, *paths: str) -> None:
    for path in paths:
        assert http.post(f"{REPO}/branches/main/objects", params={"path": path}, content=b"x").status_code == 201


def test_prefixes_ending_in_the_largest_code_point_list_and_reset(http: TestClient) -> None:
    _stage(http, "a", f"b{MAX_CHAR}", f"b{MAX_CHAR}{MAX_CHAR}x", f"b{MAX_CHAR}/c", "c")
    listed = http.get(f"{REPO}/refs/main/objects/ls", params={"prefix": f"b{MAX_CHAR}"})
    assert listed.status_code == 200, listed.text
    expected = [f"b{MAX_CHAR}", f"b{MAX_CHAR}/c", f"b{MAX_CHAR}{MAX_CHAR}x"]
    assert [o["path"] for o in listed.json()["results"]] == expected
    # A delimiter of U+10FFFF groups `b<max>` and `b<max><max>x` under one common prefix, then lists on.
    grouped = http.get(f"{REPO}/refs/main/objects/ls", params={"delimiter": MAX_CHAR})
    assert [o["path"] for o in grouped.json()["results"]] == ["a", f"b{MAX_CHAR}", "c"]
    after = http.get(f"{REPO}/refs/main/objects/ls", params={"delimiter": MAX_CHAR, "after": f"b{MAX_CHAR}"})
    assert [o["path"] for o in after.json()["results"]] == ["c"]
    for what in ("branches", "tags"):
        answer = http.get(f"{REPO}/{what}", params={"prefix": MAX_CHAR})
        assert answer.status_code == 200 and answer.json()["results"] == [], answer.text
    assert http.get("/api/v1/repositories", params={"prefix": f"demo{MAX_CHAR}"}).json()["results"] == []
    reset = http.put(f"{REPO}/branches/main", json={"type": "common_prefix", "path": f"b{MAX_CHAR}{MAX_CHAR}"})
    assert reset.status_code == 204, reset.text
    left = http.get(f"{REPO}/branches/main/diff").json()["results"]
    assert [c["path"] for c in left] == ["a", f"b{MAX_CHAR}", f"b{MAX_CHAR}/c", "c"]


def test_huge_ancestor_numbers_in_refs_are_400(http: TestClient) -> None:
    for ref in ("main~" + "9" * 5000, "main^" + "9" * 5000):
        _bad(http.get(f"{REPO}/commits/{ref}"), "invalid ref", "too large")
    assert http.get(f"{REPO}/commits/main~999").status_code == 404  # a plausible number past the root


def test_commit_dates_outside_int64_are_400(http: TestClient) -> None:
    _stage(http, "a")
    for date in (2**63, -(2**63) - 1, 10**30):
        _bad(http.post(f"{REPO}/branches/main/commits", json={"message": "m", "date": date}), "date")
    assert http.post(f"{REPO}/branches/main/commits", json={"message": "m", "date": 2**40}).status_code == 201


def test_lone_surrogates_in_bodies_are_400(http: TestClient) -> None:
    for raw in (
        b'{"message": "\\ud800", "allow_empty": true}',
        b'{"message": "m", "metadata": {"k\\udfff": "v"}, "allow_empty": true}',
    ):
        answer = http.post(f"{REPO}/branches/main/commits", content=raw, headers={"content-type": "application/json"})
        _bad(answer, "surrogate")
    assert len(http.get(f"{REPO}/refs/main/commits").json()["results"]) == 1  # nothing was committed


def test_deeply_nested_json_bodies_are_400(http: TestClient) -> None:
    for depth in (100, 100_000):
        raw = b'{"name": "x", "source": ' + b"[" * depth + b"]" * depth + b"}"
        answer = http.post(f"{REPO}/branches", content=raw, headers={"content-type": "application/json"})
        _bad(answer, "nested")


def test_non_object_commit_overrides_are_400(http: TestClient) -> None:
    _stage(http, "a")
    http.post(f"{REPO}/branches/main/commits", json={"message": "m"})
    for action in ("revert", "cherry-pick"):
        for overrides in ("x", [1], 3, {"message": 5}, {"metadata": "m"}):
            answer = http.post(f"{REPO}/branches/main/{action}", json={"ref": "main", "commit_overrides": overrides})
            assert answer.status_code == 400, (action, overrides, answer.text)


def test_non_string_fields_are_400(http: TestClient) -> None:
    for body in ({"type": "object", "path": 5}, {"type": "common_prefix", "path": ["a"]}, {"type": 1}):
        _bad(http.put(f"{REPO}/branches/main", json=body))
    _bad(http.post(f"{REPO}/refs/main/merge/main", json={"strategy": ["x"]}), "strategy")


def test_a_wrong_method_is_405_listing_every_method_of_the_path(http: TestClient) -> None:
    answer = http.request("TRACE", "/api/v1/setup_lakefs")
    assert answer.status_code == 405
    assert set(answer.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
    unimplemented = http.put(f"{REPO}/branches/main/objects", params={"path": "a"})
    assert unimplemented.status_code == 501 and "not implemented" in unimplemented.json()["message"]
    assert "PUT" in http.request("TRACE", f"{REPO}/branches/main/objects").headers["allow"]


def test_storage_namespaces_follow_the_advertised_rule(http: TestClient) -> None:
    storage = http.get("/api/v1/config/storage").json()
    assert storage["blockstore_namespace_ValidityRegex"] == "^local://"
    for namespace in ("s3://bucket/x", "LOCAL://x", "file:///tmp/x", " local://x", "local:/x"):
        answer = http.post("/api/v1/repositories", json={"name": "bad-ns", "storage_namespace": namespace})
        _bad(answer, "storage_namespace", "local://")
    assert http.get("/api/v1/repositories/bad-ns").status_code == 404
    # The namespace the pipeline uses by default (pipelines.lake: local://<repository>) passes.
    default = LakeFSSettings("http://127.0.0.1:1", "key", "secret", repository="good-ns").namespace
    good = http.post("/api/v1/repositories", json={"name": "good-ns", "storage_namespace": default})
    assert good.status_code == 201 and good.json()["storage_namespace"] == "local://good-ns"
