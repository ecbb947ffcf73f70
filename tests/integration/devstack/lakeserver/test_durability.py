"""Crash safety and concurrent writers."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import lakefs

from pipelines.devstack.lakeserver.blobs import BlobStore

from .conftest import start_server


def test_sigkill_during_commits_loses_nothing_acknowledged(tmp_path) -> None:
    server = start_server(tmp_path / "data")
    repo = lakefs.Repository("crash", client=server.client()).create(storage_namespace="local://crash")
    main = repo.branch("main")
    acknowledged: list[tuple[str, int]] = []  # (commit id, i) the server answered 201 for
    stop = threading.Event()

    def burst() -> None:
        i = 0
        while not stop.is_set():
            try:
                main.object(f"burst/{i:05d}").upload(f"payload {i}".encode() * 50)
                main.object("latest").upload(str(i))
                acknowledged.append((main.commit(f"c{i}", metadata={"i": str(i)}).get_commit().id, i))
            except Exception:
                return  # the server is gone
            i += 1

    writer = threading.Thread(target=burst)
    writer.start()
    while len(acknowledged) < 15:
        time.sleep(0.01)
    server.kill()  # SIGKILL, mid-burst
    stop.set()
    writer.join(30)

    server.start()
    try:
        repo = lakefs.Repository("crash", client=server.client())
        head = repo.branch("main").get_commit()
        # The head is a complete commit: at or after the last acknowledged one, never a partial one.
        log = [c.id for c in repo.branch("main").log()]
        for commit_id, i in acknowledged:
            assert commit_id in log
            ref = repo.commit(commit_id)
            assert ref.get_commit().metadata == {"i": str(i)}
            with ref.object("latest").reader("rb") as r:
                assert r.read() == str(i).encode()
            assert len(list(ref.objects(prefix="burst/"))) == i + 1
        with repo.branch("main").object("latest").reader("rb") as r:
            assert int(r.read()) >= acknowledged[-1][1]
        assert int(head.metadata["i"]) >= acknowledged[-1][1]
    finally:
        server.stop()
    _assert_store_consistent(tmp_path / "data")


def _assert_store_consistent(data_dir) -> None:
    conn = sqlite3.connect(data_dir / "metadata.db")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    blobs = BlobStore(data_dir)
    query = "SELECT blob FROM ranges UNION SELECT blob FROM staging WHERE blob IS NOT NULL"
    referenced = {r[0] for r in conn.execute(query)}
    for digest in referenced:
        assert hashlib.sha256(blobs.path_of(digest).read_bytes()).hexdigest() == digest
    assert list(blobs.tmp_dir.iterdir()) == []  # leftovers removed at start


def test_two_writers_on_different_branches_at_once(lakefs_server, client) -> None:
    repo = lakefs.Repository("two-writers", client=client).create(storage_namespace="local://two-writers")
    for name in ("left", "right"):
        repo.branch(name).create("main")

    def write(branch_name: str) -> list[str]:
        branch = repo.branch(branch_name)
        commits = []
        for round_ in range(5):
            for i in range(10):
                branch.object(f"{branch_name}/{round_}/{i}").upload(f"{branch_name}{round_}{i}")
            commits.append(branch.commit(f"{branch_name} round {round_}").get_commit().id)
        return commits

    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(("left", "right"), pool.map(write, ("left", "right")), strict=True))
    for name, commits in results.items():
        branch = repo.branch(name)
        assert [c.id for c in branch.log(max_amount=5)] == commits[::-1]
        assert {o.path.split("/")[0] for o in branch.objects()} == {name}
        assert len(list(branch.objects())) == 50
    repo.branch("left").merge_into(repo.branch("main"))
    repo.branch("right").merge_into(repo.branch("main"))
    assert len(list(repo.branch("main").objects())) == 100
