"""Versioning behaviour through the official lakeFS SDK against the embedded server."""

from __future__ import annotations

import lakefs
import pytest
from lakefs.exceptions import (
    BadRequestException,
    ConflictException,
    NotFoundException,
    ObjectExistsException,
    ObjectNotFoundException,
)


def read(ref: lakefs.Reference, path: str) -> bytes:
    with ref.object(path).reader("rb") as r:
        return r.read()


def test_repository_starts_with_default_branch_and_initial_commit(repo: lakefs.Repository) -> None:
    props = repo.properties
    assert props.default_branch == "main"
    assert props.storage_namespace == f"local://{repo.id}"
    assert [c.message for c in repo.branch("main").log()] == ["Repository created"]
    assert repo.id in [r.id for r in lakefs.repositories(client=repo._client, prefix=repo.id)]


def test_creating_an_existing_repository_conflicts(repo: lakefs.Repository) -> None:
    with pytest.raises(ConflictException):
        lakefs.Repository(repo.id, client=repo._client).create(storage_namespace="local://x")
    # exist_ok is the SDK's idempotent path (it reads the repository back)
    lakefs.Repository(repo.id, client=repo._client).create(storage_namespace="local://x", exist_ok=True)


def test_branch_isolation_commit_and_read_at_commit(repo: lakefs.Repository) -> None:
    main = repo.branch("main")
    main.object("data/a.csv").upload(b"v1")
    first = main.commit("v1", metadata={"run": "1"}).get_commit()
    assert first.metadata == {"run": "1"}
    assert len(first.id) == 64 and int(first.id, 16) >= 0

    dev = repo.branch("dev").create(main)
    dev.object("data/a.csv").upload(b"dev")
    dev.object("data/b.csv").upload(b"new")
    assert read(main, "data/a.csv") == b"v1"  # the branch's changes are invisible on main
    assert not main.object("data/b.csv").exists()
    dev.commit("dev work")

    main.object("data/a.csv").upload(b"v2")
    main.commit("v2")
    assert read(repo.commit(first.id), "data/a.csv") == b"v1"  # immutable after later commits
    assert read(main, "data/a.csv") == b"v2"
    assert read(dev, "data/a.csv") == b"dev"


def test_uncommitted_changes_reset_and_delete(repo: lakefs.Repository) -> None:
    main = repo.branch("main")
    main.object("keep").upload(b"k")
    main.object("gone").upload(b"g")
    main.commit("base")
    main.object("new").upload(b"n")
    main.object("keep").upload(b"changed")
    main.object("gone").delete()
    changes = {c.path: c.type for c in main.uncommitted()}
    assert changes == {"new": "added", "keep": "changed", "gone": "removed"}
    main.reset_changes(path_type="object", path="keep")
    assert {c.path for c in main.uncommitted()} == {"new", "gone"}
    main.reset_changes()
    assert list(main.uncommitted()) == []
    assert read(main, "gone") == b"g"
    main.delete_objects(["keep", "gone", "never-existed"])
    assert not main.object("keep").exists()
    with pytest.raises(NotFoundException):
        main.object("keep").delete()


def test_object_stat_metadata_content_type_and_ranges(repo: lakefs.Repository) -> None:
    main = repo.branch("main")
    main.object("m.json").upload(b"0123456789", content_type="application/json", metadata={"owner": "ml"})
    stat = main.object("m.json").stat()
    assert (stat.size_bytes, stat.content_type, stat.metadata) == (10, "application/json", {"owner": "ml"})
    assert stat.checksum == "781e5e245d69b566979b86e28d23f2c7"  # md5, as lakeFS's ETag
    with main.object("m.json").reader("rb") as r:
        r.seek(4)
        assert r.read(3) == b"456"
        assert r.read() == b"789"
    with pytest.raises(ObjectExistsException):
        main.object("m.json").upload(b"x", mode="xb")  # exclusive create: If-None-Match: *
    with pytest.raises(ObjectNotFoundException):
        read(main, "missing")


def test_diff_between_refs(repo: lakefs.Repository) -> None:
    main = repo.branch("main")
    for name in ("a", "b", "c"):
        main.object(f"t/{name}").upload(name.encode())
    main.commit("base")
    dev = repo.branch("dev").create(main)
    dev.object("t/a").upload(b"changed")
    dev.object("t/b").delete()
    dev.object("t/d").upload(b"added")
    dev.object("u/x").upload(b"elsewhere")
    dev.commit("changes")
    changes = {(d.path, d.type) for d in main.diff(dev)}
    assert changes == {("t/a", "changed"), ("t/b", "removed"), ("t/d", "added"), ("u/x", "added")}
    assert {d.path for d in main.diff(dev, prefix="t/")} == {"t/a", "t/b", "t/d"}
    assert [(d.path, d.path_type) for d in main.diff(dev, delimiter="/")] == [
        ("t/", "common_prefix"),
        ("u/", "common_prefix"),
    ]
    assert list(main.diff(main)) == []


def test_merge_three_way_and_fast_forward(repo: lakefs.Repository) -> None:
    main = repo.branch("main")
    main.object("shared").upload(b"base")
    main.commit("base")
    feature = repo.branch("feature").create(main)
    feature.object("f").upload(b"feature")
    feature_head = feature.commit("feature work").get_commit().id

    # main has not moved: fast-forward to the feature commit
    assert feature.merge_into(main) == feature_head
    assert main.get_commit().id == feature_head

    # both moved on different paths: a merge commit with two parents
    feature.object("f2").upload(b"more")
    feature.commit("more feature")
    main.object("m").upload(b"main")
    main.commit("main work")
    merged = feature.merge_into(main, message="merge feature", metadata={"why": "test"})
    commit = repo.commit(merged).get_commit()
    assert len(commit.parents) == 2 and commit.message == "merge feature" and commit.metadata == {"why": "test"}
    assert {o.path for o in main.objects()} == {"shared", "f", "f2", "m"}

    with pytest.raises(BadRequestException):  # nothing new to merge
        feature.merge_into(main)


def test_merge_conflict_and_strategies(repo: lakefs.Repository) -> None:
    main = repo.branch("main")
    main.object("x").upload(b"base")
    main.commit("base")
    left = repo.branch("left").create(main)
    left.object("x").upload(b"left")
    left.commit("left")
    main.object("x").upload(b"main")
    main.commit("main")
    before = main.get_commit().id

    with pytest.raises(ConflictException):
        left.merge_into(main)
    assert main.get_commit().id == before  # a failed merge changes nothing

    repo.branch("keep-dest").create(main)
    left.merge_into(repo.branch("keep-dest"), strategy="dest-wins")
    assert read(repo.branch("keep-dest"), "x") == b"main"
    left.merge_into(main, strategy="source-wins")
    assert read(main, "x") == b"left"


def test_tags(repo: lakefs.Repository) -> None:
    main = repo.branch("main")
    main.object("a").upload(b"1")
    commit_id = main.commit("one").get_commit().id
    tag = repo.tag("v1.0").create(main)
    assert tag.get_commit().id == commit_id
    main.object("a").upload(b"2")
    main.commit("two")
    assert read(repo.ref("v1.0"), "a") == b"1"
    with pytest.raises(ConflictException):
        repo.tag("v1.0").create(main)
    assert [t.id for t in repo.tags()] == ["v1.0"]
    repo.tag("v1.0").delete()
    with pytest.raises(NotFoundException):
        repo.tag("v1.0").get_commit()


def test_log_pagination_and_ref_expressions(repo: lakefs.Repository) -> None:
    main = repo.branch("main")
    for i in range(5):
        main.object("counter").upload(str(i))
        main.commit(f"c{i}")
    messages = [c.message for c in main.log()]
    assert messages == ["c4", "c3", "c2", "c1", "c0", "Repository created"]
    page = repo._client.sdk_client.refs_api.log_commits(repo.id, "main", amount=2)
    assert page.pagination.has_more and len(page.results) == 2
    nxt = repo._client.sdk_client.refs_api.log_commits(repo.id, "main", amount=2, after=page.pagination.next_offset)
    assert [c.message for c in nxt.results] == ["c2", "c1"]
    assert [c.message for c in main.log(max_amount=3)] == ["c4", "c3", "c2"]
    assert repo.ref("main~2").get_commit().message == "c2"
    assert repo.ref("main^").get_commit().message == "c3"
    head = main.get_commit().id
    assert repo.ref(head[:12]).get_commit().id == head  # a unique commit id prefix


def test_listing_pagination_past_1000_and_delimiter(repo: lakefs.Repository) -> None:
    main = repo.branch("main")
    # uploads through the SDK, half committed and half staged, so listing merges both layers
    paths = [f"many/{i:05d}" for i in range(1105)]
    for i, path in enumerate(paths):
        main.object(path).upload(b"x")
        if i == 600:
            main.commit("first half")
    main.object("top.txt").upload(b"t")
    main.object("other/deep/file").upload(b"d")

    assert [o.path for o in main.objects(prefix="many/")] == paths  # the SDK follows next_offset
    page = repo._client.sdk_client.objects_api.list_objects(repo.id, "main", prefix="many/", amount=1000)
    assert len(page.results) == 1000 and page.pagination.has_more
    assert [(o.path, type(o).__name__) for o in main.objects(delimiter="/")] == [
        ("many/", "CommonPrefix"),
        ("other/", "CommonPrefix"),
        ("top.txt", "ObjectInfo"),
    ]
    assert [o.path for o in main.objects(prefix="other/", delimiter="/")] == ["other/deep/"]
    listed = repo._client.sdk_client.objects_api.list_objects(repo.id, "main", delimiter="/", amount=1)
    rest = repo._client.sdk_client.objects_api.list_objects(
        repo.id, "main", delimiter="/", amount=5, after=listed.pagination.next_offset
    )
    assert [o.path for o in rest.results] == ["other/", "top.txt"]


def test_revert_and_hard_reset(repo: lakefs.Repository) -> None:
    main = repo.branch("main")
    main.object("a").upload(b"1")
    main.commit("one")
    main.object("a").upload(b"2")
    main.object("b").upload(b"new")
    bad = main.commit("two").get_commit().id
    main.revert(bad)
    assert read(main, "a") == b"1" and not main.object("b").exists()
    repo._client.sdk_client.experimental_api.hard_reset_branch(repo.id, "main", ref=bad)
    assert main.get_commit().id == bad


def test_not_found_and_bad_names(repo: lakefs.Repository, client: lakefs.Client) -> None:
    with pytest.raises(NotFoundException):
        lakefs.Repository("no-such-repo", client=client).properties  # noqa: B018
    with pytest.raises(NotFoundException):
        repo.branch("nope").get_commit()
    with pytest.raises(NotFoundException):
        repo.branch("other").create("no-such-ref")
    with pytest.raises(BadRequestException):
        repo.branch("bad name!").create("main")
    with pytest.raises(ConflictException):
        repo.branch("main").create("main")
    with pytest.raises(BadRequestException):
        repo.branch("main").commit("nothing staged")
    with pytest.raises(BadRequestException):  # the default branch stays
        repo.branch("main").delete()
    repo.branch("temp").create("main").delete()
    assert [b.id for b in repo.branches()] == ["main"]


def test_cherry_pick_and_copy(repo: lakefs.Repository) -> None:
    main = repo.branch("main")
    main.object("base").upload(b"b")
    main.commit("base")
    hotfix = repo.branch("hotfix").create(main)
    hotfix.object("fix").upload(b"patched")
    fix_commit = hotfix.commit("the fix", metadata={"ticket": "42"}).get_commit()
    hotfix.object("unrelated").upload(b"not picked")
    hotfix.commit("later")

    picked = main.cherry_pick(fix_commit)
    assert (picked.message, picked.metadata) == ("the fix", {"ticket": "42"})
    assert read(main, "fix") == b"patched" and not main.object("unrelated").exists()

    main.object("base").copy("hotfix", "copied/base")  # same content, no data rewritten
    assert read(hotfix, "copied/base") == b"b"
    assert hotfix.object("copied/base").stat().checksum == main.object("base").stat().checksum
