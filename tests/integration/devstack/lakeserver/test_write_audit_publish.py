"""Write-audit-publish through pipelines.lake (the helper the Dagster resource exposes)."""

from __future__ import annotations

import pytest

from pipelines.lake import Lake, LakeConflictError, LakeNotFoundError, LakeURI


def test_publish_merges_into_main_and_deletes_the_branch(lake: Lake) -> None:
    main_before = lake.resolve("main")
    wap = lake.wap("run-42").open()
    assert wap.branch == "ingest-run-42"
    wap.write_json("_flywheel/offsets/events.json", {"0": 10})
    wap.write_bytes("raw/events/part-0.parquet", b"PAR1")
    commit_id = wap.commit("ingest run 42", {"rows": "10"})
    assert lake.resolve("main") == main_before  # nothing reaches main before publish
    assert lake.commit_info(commit_id).metadata == {"flywheel.run_id": "run-42", "rows": "10"}

    uri = wap.uri("raw/events/part-0.parquet")
    assert LakeURI.parse(uri) == LakeURI(lake.repository_id, commit_id, "raw/events/part-0.parquet")
    assert lake.read_uri(uri) == b"PAR1"

    published = wap.publish()
    assert lake.resolve("main") == published
    assert lake.read_json("main", "_flywheel/offsets/events.json") == {"0": 10}
    assert not lake.branch_exists("ingest-run-42")
    assert lake.list_paths("main", "raw/") == ["raw/events/part-0.parquet"]


def test_failed_audit_keeps_the_branch_and_main_untouched(lake: Lake) -> None:
    main_before = lake.resolve("main")
    with pytest.raises(RuntimeError, match="audit failed"), lake.wap("run-bad").open() as wap:
        wap.write_json("features/x/part-0.json", {"bad": True})
        wap.commit("bad data")
        raise RuntimeError("audit failed")
    assert lake.resolve("main") == main_before
    assert lake.branch_exists("ingest-run-bad")  # kept for debugging
    assert lake.read_json("ingest-run-bad", "features/x/part-0.json") == {"bad": True}
    assert not lake.exists("main", "features/x/part-0.json")


def test_publish_from_another_process_by_run_id_and_read_at_commit(lake: Lake) -> None:
    wap = lake.wap("run-7").open()
    wap.write_json("a.json", {"v": 1})
    first = wap.commit("v1")
    lake.wap("run-7").publish()  # e.g. a later Dagster step, knowing only the run id
    follow = lake.wap("run-8").open()
    follow.write_json("a.json", {"v": 2})
    follow.commit("v2")
    follow.publish()
    assert lake.read_json(first, "a.json") == {"v": 1}  # the immutable commit still reads v1
    assert lake.read_json("main", "a.json") == {"v": 2}


def test_conflicting_publish_leaves_main_and_branch(lake: Lake) -> None:
    a, b = lake.wap("a").open(), lake.wap("b").open()
    for wap, value in ((a, 1), (b, 2)):
        wap.write_json("same.json", {"v": value})
        wap.commit(f"v{value}")
    a.publish()
    main_now = lake.resolve("main")
    with pytest.raises(LakeConflictError, match="conflict"):
        b.publish()
    assert lake.resolve("main") == main_now and lake.branch_exists(b.branch)


def test_a_branch_can_start_at_a_pinned_commit(lake: Lake) -> None:
    first = lake.wap("pin-1").open()
    first.write_json("a.json", {"v": 1})
    pinned = first.commit("v1")
    first.publish()
    later = lake.wap("pin-2").open()
    later.write_json("a.json", {"v": 2})
    later.commit("v2")
    later.publish()
    run = lake.wap("pin-3").open(source=pinned)  # ingestion starts at the main commit whose offsets it read
    assert lake.read_json(run.branch, "a.json") == {"v": 1}
    assert (
        run.commit("note", {"k": "v"}, allow_empty=True)
        and lake.commit_info(run.branch).metadata["flywheel.run_id"] == "pin-3"
    )


def test_retry_reopens_a_fresh_branch(lake: Lake) -> None:
    first = lake.wap("retry").open()
    first.write_json("partial.json", {})
    first.commit("attempt 1")
    again = lake.wap("retry").open()  # same run id: the leftover attempt is dropped
    assert lake.list_paths(again.branch) == []


def test_publish_again_after_a_merge_that_kept_its_branch(lake: Lake) -> None:
    """An earlier publish merged, then died before deleting the branch: publishing again finishes the job."""
    wap = lake.wap("run-77").open()
    wap.write_json("_flywheel/offsets/events.json", {"0": 77})
    wap.commit("ingest run 77")
    merged = lake.merge(wap.branch, "main", "publish run 77")  # the first attempt got this far
    assert wap.already_merged()
    assert wap.publish() == merged == lake.resolve("main")  # no second merge commit
    assert not lake.branch_exists(wap.branch)


def test_publish_that_fails_for_another_reason_says_so(lake: Lake) -> None:
    wap = lake.wap("run-78").open()
    wap.write_json("_flywheel/offsets/events.json", {"0": 78})
    wap.commit("ingest run 78")
    assert not wap.already_merged()
    with pytest.raises(LakeNotFoundError, match="merging 'ingest-run-78' into 'no-such-branch'"):
        lake.wap("run-78", into="no-such-branch").publish()
    assert lake.branch_exists(wap.branch)  # kept: nothing was published
