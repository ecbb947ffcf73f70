"""Every route's answers (successes and errors) validate against lakeFS's own swagger.yml."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

SWAGGER = Path(__file__).resolve().parents[5] / "shared" / "lakefs" / "swagger.yml"


@pytest.fixture(scope="module")
def spec() -> OpenAPI:
    if not SWAGGER.exists():
        pytest.fail(f"the lakeFS contract is missing: {SWAGGER}")
    return OpenAPI.from_file_path(str(SWAGGER))


class Checked:
    """An HTTP client that validates each response against the OpenAPI contract."""

    def __init__(self, endpoint: str, auth: tuple[str, str] | None, spec: OpenAPI) -> None:
        self.endpoint = endpoint
        self.http = httpx.Client(base_url=endpoint, auth=auth, timeout=30)
        self.spec = spec

    def __call__(self, method: str, path: str, expect: int, **kwargs) -> httpx.Response:
        resp = self.http.request(method, "/api/v1" + path, **kwargs)
        assert resp.status_code == expect, (method, path, resp.status_code, resp.text)
        request = MockRequest(
            self.endpoint,
            method,
            "/api/v1" + path,
            args=kwargs.get("params"),
            headers=dict(resp.request.headers),
            data=kwargs.get("content") or b"",  # only responses are validated here
            content_type=resp.request.headers.get("content-type", "application/json"),
        )
        content_type = resp.headers.get("content-type", "").split(";")[0]
        body = b"" if method == "HEAD" else resp.content
        headers = dict(resp.headers)
        if resp.status_code == 206:
            # swagger.yml's pattern for Content-Range ('bytes=a-b') contradicts RFC 9110, what lakeFS
            # sends and what the SDK parses ('bytes a-b/size'); the server follows the RFC.
            assert re.fullmatch(r"bytes \d+-\d+/\d+", headers.pop("content-range"))
        self.spec.validate_response(request, MockResponse(body, resp.status_code, headers, content_type))
        return resp


@pytest.fixture
def api(lakefs_server, spec) -> Checked:
    return Checked(lakefs_server.endpoint, lakefs_server.credentials, spec)


def test_every_route_answers_per_contract(api: Checked) -> None:
    repo = f"c-{uuid.uuid4().hex[:10]}"
    r = f"/repositories/{repo}"
    api("GET", "/healthcheck", 204)
    api("GET", "/config", 200)
    api("GET", "/config/version", 200)
    api("GET", "/config/storage", 200)
    api("GET", "/setup_lakefs", 200)
    api("GET", "/user", 200)
    api("POST", "/repositories", 201, json={"name": repo, "storage_namespace": f"local://{repo}"})
    api("POST", "/repositories", 409, json={"name": repo, "storage_namespace": f"local://{repo}"})
    api("POST", "/repositories", 400, json={"name": "Bad_Repo", "storage_namespace": "local://x"})
    api("GET", "/repositories", 200, params={"prefix": repo, "amount": 10})
    api("GET", r, 200)
    api("GET", "/repositories/no-such-repo", 404)
    api("GET", f"{r}/metadata", 200)

    obj = {"path": "dir/a.txt"}
    api("POST", f"{r}/branches/main/objects", 201, params=obj, content=b"hello", headers={"X-Lakefs-Meta-K": "v"})
    api(
        "POST",
        f"{r}/branches/main/objects",
        201,
        params={"path": "dir/form.bin"},
        files={"content": ("form.bin", b"multipart body", "application/x-test")},
    )
    api("POST", f"{r}/branches/main/objects", 412, params=obj, content=b"x", headers={"If-None-Match": "*"})
    api("POST", f"{r}/branches/nope/objects", 404, params=obj, content=b"x")
    api("GET", f"{r}/branches/main/diff", 200)
    commit = api("POST", f"{r}/branches/main/commits", 201, json={"message": "one", "metadata": {"a": "b"}}).json()
    api("POST", f"{r}/branches/main/commits", 400, json={"message": "empty"})
    api("GET", f"{r}/commits/{commit['id']}", 200)
    api("GET", f"{r}/commits/{'0' * 64}", 404)
    api("GET", f"{r}/refs/main/commits", 200, params={"amount": 1})

    api("POST", f"{r}/branches", 201, json={"name": "dev", "source": "main"})
    api("POST", f"{r}/branches", 409, json={"name": "dev", "source": "main"})
    api("POST", f"{r}/branches", 400, json={"name": "bad/name", "source": "main"})
    api("GET", f"{r}/branches", 200)
    api("GET", f"{r}/branches/dev", 200)
    api("GET", f"{r}/branches/nope", 404)
    api("POST", f"{r}/branches/dev/objects", 201, params={"path": "dir/b.txt"}, content=b"dev")
    api("PUT", f"{r}/branches/dev", 204, json={"type": "object", "path": "dir/b.txt"})
    api("POST", f"{r}/branches/dev/objects", 201, params={"path": "dir/b.txt"}, content=b"dev")
    api("POST", f"{r}/branches/dev/objects/delete", 200, json={"paths": ["dir/form.bin"]})
    api("POST", f"{r}/branches/dev/commits", 201, json={"message": "dev"})
    copy = {"src_path": "dir/a.txt"}
    api("POST", f"{r}/branches/dev/objects/copy", 201, params={"dest_path": "dir/c.txt"}, json=copy)
    api("POST", f"{r}/branches/dev/objects/copy", 404, params={"dest_path": "x"}, json={"src_path": "missing"})
    api("POST", f"{r}/branches/dev/commits", 201, json={"message": "copy"})
    api("POST", f"{r}/branches", 201, json={"name": "pick", "source": "main"})
    api("POST", f"{r}/branches/pick/cherry-pick", 201, json={"ref": "dev"})

    api("GET", f"{r}/refs/main/diff/dev", 200, params={"type": "two_dot"})
    api("GET", f"{r}/refs/main/objects/ls", 200, params={"delimiter": "/"})
    api("GET", f"{r}/refs/main/objects/stat", 200, params=obj)
    api("GET", f"{r}/refs/main/objects/stat", 404, params={"path": "missing"})
    api("GET", f"{r}/refs/main/objects", 200, params=obj)
    api("GET", f"{r}/refs/main/objects", 206, params=obj, headers={"Range": "bytes=1-2"})
    api("GET", f"{r}/refs/main/objects", 416, params=obj, headers={"Range": "bytes=100-"})
    api("GET", f"{r}/refs/main/objects", 404, params={"path": "missing"})
    api("HEAD", f"{r}/refs/main/objects", 200, params=obj)
    api("HEAD", f"{r}/refs/main/objects", 404, params={"path": "missing"})

    api("POST", f"{r}/tags", 201, json={"id": "v1", "ref": "main"})
    api("POST", f"{r}/tags", 409, json={"id": "v1", "ref": "main"})
    api("GET", f"{r}/tags", 200)
    api("GET", f"{r}/tags/v1", 200)
    api("DELETE", f"{r}/tags/v1", 204)
    api("GET", f"{r}/tags/v1", 404)

    api("POST", f"{r}/branches/main/objects", 201, params={"path": "dir/b.txt"}, content=b"main")
    api("POST", f"{r}/branches/main/commits", 201, json={"message": "main"})
    api("POST", f"{r}/refs/dev/merge/main", 409, json={})
    api("POST", f"{r}/refs/dev/merge/main", 200, json={"strategy": "source-wins"})
    head = api("GET", f"{r}/branches/main", 200).json()["commit_id"]
    api("POST", f"{r}/branches/main/revert", 204, json={"ref": head, "parent_number": 1})
    api("DELETE", f"{r}/branches/main/objects", 204, params=obj)
    api("DELETE", f"{r}/branches/main/objects", 404, params={"path": "missing"})
    api("DELETE", f"{r}/branches/dev", 204)
    api("DELETE", r, 204)
    api("GET", r, 404)


def test_unauthenticated_calls_get_401_per_contract(lakefs_server, spec) -> None:
    key, _ = lakefs_server.credentials
    for auth in (None, (key, "wrong-secret"), ("wrong-key", "x")):
        api = Checked(lakefs_server.endpoint, auth, spec)
        api("GET", "/repositories", 401)
        api("GET", "/config", 401)
        api("POST", "/repositories", 401, json={"name": "sneaky", "storage_namespace": "local://s"})
        api("GET", "/healthcheck", 204)  # open, as in lakeFS
