"""Names, ref expressions, byte ranges, Basic auth headers, and blob addresses."""

from __future__ import annotations

import base64

import pytest

from pipelines.devstack.lakeserver import names
from pipelines.devstack.lakeserver.auth import Credentials, parse_basic
from pipelines.devstack.lakeserver.blobs import BlobStore
from pipelines.devstack.lakeserver.errors import BadRequest, RangeNotSatisfiable
from pipelines.devstack.lakeserver.refs import parse
from pipelines.devstack.lakeserver.store import prefix_end
from pipelines.devstack.lakeserver.wire import parse_range
from pipelines.lake import LakeError, LakeURI, run_branch_name


@pytest.mark.parametrize("bad", ["", "a", "UPPER", "-start", "has_underscore", "x" * 64, "../etc"])
def test_bad_repository_names(bad: str) -> None:
    with pytest.raises(BadRequest):
        names.repository(bad)


@pytest.mark.parametrize("bad", ["", "a/b", "..", "sp ace", "main~1", "x^", "-x"])
def test_bad_branch_names(bad: str) -> None:
    with pytest.raises(BadRequest):
        names.branch(bad)


def test_good_names_and_paths() -> None:
    assert names.repository("flywheel") == "flywheel"
    assert names.branch("ingest-0f3c_run") == "ingest-0f3c_run"
    assert names.tag("v1.2.3") == "v1.2.3"
    assert names.path("../../etc/passwd") == "../../etc/passwd"  # just a key: never a file path
    for bad in ("", "a\x00b", "x" * 2000):
        with pytest.raises(BadRequest):
            names.path(bad)


def test_ref_expressions() -> None:
    assert parse("main") == ("main", (), False)
    assert parse("main~2^") == ("main", (("~", 2), ("^", 1)), False)
    assert parse("main^2") == ("main", (("^", 2),), False)
    assert parse("dev@") == ("dev", (), True)
    with pytest.raises(BadRequest):
        parse("~1")


def test_byte_ranges() -> None:
    assert parse_range("bytes=0-", 10) == (0, 9)
    assert parse_range("bytes=2-4", 10) == (2, 4)
    assert parse_range("bytes=5-100", 10) == (5, 9)
    assert parse_range("bytes=-3", 10) == (7, 9)
    for bad in ("bytes=10-", "items=0-1", "bytes=0-1,3-4", "bytes=a-b"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(bad, 10)


def test_basic_auth_parsing_and_matching() -> None:
    header = "Basic " + base64.b64encode(b"key:sec:ret").decode()
    assert parse_basic(header) == ("key", "sec:ret")
    assert parse_basic("Bearer x") is None
    assert parse_basic("Basic !!!") is None
    creds = Credentials("key", "sec:ret")
    assert creds.matches("key", "sec:ret") and not creds.matches("key", "sec") and not creds.matches("k", "sec:ret")


def test_blob_addresses_stay_inside_the_store(tmp_path) -> None:
    store = BlobStore(tmp_path)
    digest, md5, size = store.put(b"hello")
    assert store.path_of(digest).read_bytes() == b"hello" and size == 5
    assert md5 == "5d41402abc4b2a76b9719d911017c592"
    assert store.put(b"hello")[0] == digest  # deduplicated
    for bad in ("../" * 10 + "etc/passwd", "A" * 64, digest[:-1]):
        with pytest.raises(ValueError):
            store.path_of(bad)


def test_lake_uris_and_run_branches() -> None:
    uri = LakeURI.parse("lakefs://flywheel/abc123/features/x/part-0.parquet")
    assert uri == LakeURI("flywheel", "abc123", "features/x/part-0.parquet")
    assert str(uri) == "lakefs://flywheel/abc123/features/x/part-0.parquet"
    with pytest.raises(LakeError):
        LakeURI.parse("s3://bucket/key")
    assert run_branch_name("0f3c-77/ab") == "ingest-0f3c-77-ab"


def test_a_damaged_credentials_file_is_one_sentence(tmp_path, monkeypatch) -> None:
    from pipelines.devstack.lakeserver.auth import load_or_create
    from pipelines.devstack.lakeserver.process import read_credentials
    from pipelines.errors import StackError

    monkeypatch.delenv("LAKEFS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("LAKEFS_SECRET_ACCESS_KEY", raising=False)
    (tmp_path / "credentials.json").write_text('{"access_key_id": "AKIAJ')
    for read in (load_or_create, read_credentials):
        with pytest.raises(StackError, match=r"credentials file .* is damaged .*delete it"):
            read(tmp_path)


def test_prefix_end_bounds_exactly_the_strings_with_the_prefix() -> None:
    top = chr(0x10FFFF)
    assert prefix_end("") is None
    assert prefix_end("ab") == "ac"
    assert prefix_end(f"ab{top}{top}") == "ac"
    assert prefix_end(top * 3) is None  # nothing sorts after it: no upper bound
    for prefix in ("ab", f"ab{top}", f"a{top}b"):
        end = prefix_end(prefix)
        assert end is not None and prefix + top * 4 < end and prefix < end
        assert not end.startswith(prefix)


def test_ancestor_numbers_are_bounded() -> None:
    assert parse("main~999999999") == ("main", (("~", 999999999),), False)
    with pytest.raises(BadRequest, match="too large"):
        parse("main~" + "9" * 5000)
