"""Benchmark of the embedded lakeFS server, through the official SDK, side by side with plain file copies.

    .venv/bin/python -m benchmarks.lakefs_bench [--objects 100000] [--mib 64] [--out benchmarks/results]

Measures: branch creation from a commit of 10 objects and of 100,000 objects (zero-copy: the ratio
should be ~1), committing 1,000 uploaded objects (on a small and on a 100,000-object tree, new paths
and then overwrites spread over the whole tree, the worst case for range reuse), and upload
and download throughput of a large object against a plain copy on the same disk.

Setup note: the 100,000 objects are written through the store's bulk path (blobs without a per-file
fsync, one `stage_many`, one commit) before the server starts; everything measured goes through HTTP
and the `lakefs` SDK. Writes `lakefs.json` and `lakefs.md` under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path

import lakefs

from pipelines.devstack.lakeserver import process
from pipelines.devstack.lakeserver.store import Store
from pipelines.devstack.lakeserver.trees import Entry

REPO = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def populate(data_dir: Path, objects: int) -> dict:
    """Direct (non-HTTP) setup: a `small` branch with 10 objects and a `large` one with `objects`."""
    store = Store(data_dir)
    store.create_repository(REPO, f"local://{REPO}", "main")
    started = time.perf_counter()
    for branch, count in (("small", 10), ("large", objects)):
        store.create_branch(REPO, branch, "main")
        entries = []
        for i in range(count):
            digest, md5, size = store.blobs.put(f"{branch} object {i}\n".encode(), durable=False)
            entries.append(
                Entry(f"data/part-{i:07d}.json", digest, size, int(time.time()), "application/json", "{}", md5)
            )
        store.stage_many(REPO, branch, entries)
        store.commit(REPO, branch, f"{count} objects", {})
    os.sync()  # the bulk path skipped per-file fsyncs; make it all durable once
    return {"objects": objects, "seconds": time.perf_counter() - started}


def summarize(samples: list[float]) -> dict:
    samples = sorted(samples)
    return {
        "median_ms": statistics.median(samples),
        "p95_ms": samples[min(len(samples) - 1, int(len(samples) * 0.95))],
        "repeats": len(samples),
    }


def bench_branches(repo: lakefs.Repository, repeats: int) -> dict:
    """Alternates the two sources, so drift in machine load (shared CPUs) hits both alike."""
    samples: dict[str, list[float]] = {"small": [], "large": []}
    for i in range(repeats):
        for source in ("small", "large"):
            t0 = time.perf_counter()
            repo.branch(f"b-{source}-{i}").create(source)
            samples[source].append((time.perf_counter() - t0) * 1000)
    out = {"from_10_objects": summarize(samples["small"]), "from_large_tree": summarize(samples["large"])}
    out["ratio_large_over_10"] = out["from_large_tree"]["median_ms"] / out["from_10_objects"]["median_ms"]
    return out


def bench_commit(repo: lakefs.Repository, source: str, count: int) -> dict:
    branch = repo.branch(f"commit-{source}").create(source)
    t0 = time.perf_counter()
    for i in range(count):
        branch.object(f"new/{i:05d}.json").upload(f'{{"i": {i}}}'.encode())
    upload_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    branch.commit(f"{count} objects")
    commit_ms = (time.perf_counter() - t0) * 1000
    return {"objects": count, "upload_s": upload_s, "uploads_per_s": count / upload_s, "commit_ms": commit_ms}


def bench_commit_scattered(repo: lakefs.Repository, source: str, objects: int, count: int) -> dict:
    """Worst case for range reuse: overwrite `count` existing objects spread evenly over the tree."""
    branch = repo.branch(f"scattered-{source}").create(source)
    step = max(objects // count, 1)
    for i in range(0, min(objects, count * step), step):
        branch.object(f"data/part-{i:07d}.json").upload(f'{{"rewritten": {i}}}'.encode())
    t0 = time.perf_counter()
    branch.commit(f"{count} scattered changes")
    return {"objects": count, "commit_ms": (time.perf_counter() - t0) * 1000}


def bench_throughput(repo: lakefs.Repository, work: Path, mib: int, repeats: int) -> dict:
    source = work / "payload.bin"
    with open(source, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1024 * 1024))
    size = source.stat().st_size
    main = repo.branch("main")
    rows = {"sdk_upload": [], "sdk_download": [], "copy_write": [], "copy_read": []}
    for i in range(repeats):
        t0 = time.perf_counter()
        with open(source, "rb") as f, main.object(f"big/{i}.bin").writer("wb") as w:
            shutil.copyfileobj(f, w, 8 * 1024 * 1024)
        rows["sdk_upload"].append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        with main.object(f"big/{i}.bin").reader("rb") as r:
            data = r.read()
        rows["sdk_download"].append(time.perf_counter() - t0)
        assert len(data) == size

        target = work / f"copy-{i}.bin"
        t0 = time.perf_counter()
        with open(source, "rb") as fin, open(target, "wb") as fout:
            shutil.copyfileobj(fin, fout, 8 * 1024 * 1024)
            fout.flush()
            os.fsync(fout.fileno())  # the server fsyncs every object: compare like with like
        rows["copy_write"].append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        with open(target, "rb") as f:
            assert len(f.read()) == size
        rows["copy_read"].append(time.perf_counter() - t0)
    mb = size / 1e6
    return {
        "object_mib": mib,
        "repeats": repeats,
        **{f"{k}_mb_per_s": mb / statistics.median(v) for k, v in rows.items()},
    }


def write_markdown(result: dict, path: Path) -> None:
    b, t = result["branch_creation"], result["throughput"]
    c_small, c_large = result["commit"]["on_10_objects"], result["commit"]["on_large_tree"]
    n = f"{result['setup']['objects']:,}"
    lines = [
        "# Embedded lakeFS server benchmark",
        "",
        f"{result['when']} on {result['machine']}. Everything measured goes through HTTP and the official "
        f"`lakefs` SDK; the {n}-object tree was set up through the store's bulk path "
        f"({result['setup']['seconds']:.1f} s, not measured below).",
        "",
        "| measurement | value |",
        "| --- | --- |",
        f"| branch creation from a 10-object commit (median / p95) | {b['from_10_objects']['median_ms']:.2f} ms / "
        f"{b['from_10_objects']['p95_ms']:.2f} ms |",
        f"| branch creation from a {n}-object commit (median / p95) | "
        f"{b['from_large_tree']['median_ms']:.2f} ms / {b['from_large_tree']['p95_ms']:.2f} ms |",
        f"| ratio {n} / 10 objects (goal <= 2) | {b['ratio_large_over_10']:.2f} |",
        f"| upload 1,000 small objects (SDK, one by one) | {c_small['upload_s']:.2f} s "
        f"({c_small['uploads_per_s']:.0f} objects/s) |",
        f"| commit of 1,000 uploaded objects on a 10-object tree | {c_small['commit_ms']:.1f} ms |",
        f"| commit of 1,000 uploaded objects on a {n}-object tree | {c_large['commit_ms']:.1f} ms |",
        f"| commit of 1,000 overwrites spread evenly over the {n}-object tree (worst case) | "
        f"{result['commit']['scattered_on_large_tree']['commit_ms']:.1f} ms |",
        f"| upload {t['object_mib']} MiB: SDK vs plain copy + fsync | {t['sdk_upload_mb_per_s']:.0f} MB/s vs "
        f"{t['copy_write_mb_per_s']:.0f} MB/s |",
        f"| download {t['object_mib']} MiB: SDK vs plain read | {t['sdk_download_mb_per_s']:.0f} MB/s vs "
        f"{t['copy_read_mb_per_s']:.0f} MB/s |",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="lakefs-bench-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        print(f"setting up {args.objects} objects (bulk path) ...", flush=True)
        setup = populate(data_dir, args.objects)
        port = free_port()
        proc = process.start(data_dir, port, log_path=work / "server.log")
        try:
            endpoint = process.endpoint_url("127.0.0.1", port)
            process.wait_healthy(endpoint, 60, proc, work / "server.log")
            key, secret = process.read_credentials(data_dir)
            repo = lakefs.Repository(REPO, client=lakefs.Client(host=endpoint, username=key, password=secret))
            print("branch creation ...", flush=True)
            branches = bench_branches(repo, args.repeats)
            print("commit of 1,000 objects ...", flush=True)
            commit = {
                "on_10_objects": bench_commit(repo, "small", 1000),
                "on_large_tree": bench_commit(repo, "large", 1000),
                "scattered_on_large_tree": bench_commit_scattered(repo, "large", args.objects, 1000),
            }
            print("throughput ...", flush=True)
            throughput = bench_throughput(repo, work, args.mib, 5)
        finally:
            process.stop(proc)

    result = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs shared with other work (load average "
        f"{os.getloadavg()[0]:.1f}), Python {platform.python_version()}",
        "setup": {**setup, "path": "direct store bulk path (not HTTP), one os.sync() at the end"},
        "branch_creation": branches,
        "commit": commit,
        "throughput": throughput,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lakefs.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, args.out / "lakefs.md")
    print((args.out / "lakefs.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
