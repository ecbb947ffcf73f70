"""A local content cache of lakeFS objects, keyed by their checksum: the files a run uploads are kept, so the
next stage of the same run (or a later run) reads them without downloading, and objects that no longer appear
at a ref are pruned. Plain Python over `pipelines.lake`."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pipelines.config import state_dir
from pipelines.lake import Lake


def _cache_dir(lake: Lake) -> Path:
    return state_dir() / "cache" / "lakefs" / lake.repository_id


def _cache_key(checksum: str, size: int | None) -> str:
    return f"{checksum}-{size or 0}.parquet"


def remember(lake: Lake, ref: str, pairs: list[tuple[Path, str]]) -> None:
    """Move uploaded local files into the content cache (keyed by lakeFS checksum) for later stages."""
    cache = _cache_dir(lake)
    cache.mkdir(parents=True, exist_ok=True)
    infos = {}
    for prefix in sorted({path.rsplit("/", 1)[0] + "/" for _, path in pairs}):
        infos.update({o.path: o for o in lake.list_objects(ref, prefix)})
    for local, path in pairs:
        info = infos.get(path)
        if info is not None:
            os.replace(local, cache / _cache_key(info.checksum, info.size_bytes))


def prune_cache(lake: Lake, ref: str, prefixes: list[str], min_age_s: float = 3600.0) -> int:
    """Drop cached files no object under prefixes at ref uses (older than min_age_s: other runs may be
    using theirs). Every run rewrites the model table, so without this the cache grows by one per run."""
    cache = _cache_dir(lake)
    if not cache.exists():
        return 0
    keep = {_cache_key(o.checksum, o.size_bytes) for p in prefixes for o in lake.list_objects(ref, p)}
    now, dropped = time.time(), 0
    for path in cache.iterdir():
        if path.name not in keep and now - path.stat().st_mtime > min_age_s:
            path.unlink(missing_ok=True)
            dropped += 1
    return dropped


def local_copies(lake: Lake, ref: str, prefix: str, suffix: str = ".parquet") -> list[Path]:
    """Local files for every object under prefix at ref: from the content cache, downloading misses."""
    cache = _cache_dir(lake)
    files = []
    for info in lake.list_objects(ref, prefix):
        if not info.path.endswith(suffix):
            continue
        local = cache / _cache_key(info.checksum, info.size_bytes)
        if not local.exists():
            tmp = local.with_suffix(f".{os.getpid()}.part")
            lake.download_file(ref, info.path, tmp)
            os.replace(tmp, local)
        files.append(local)
    return files


def local_copies_of(lake: Lake, ref: str, paths: list[str]) -> list[Path]:
    """Local files for the objects at `paths` (in that order): from the content cache, downloading misses.
    Looks up each object by its path, so a run reads its own batch without listing a whole prefix."""
    cache = _cache_dir(lake)
    cache.mkdir(parents=True, exist_ok=True)
    files = []
    for path in paths:
        with lake._call(f"looking up {path!r} at {ref!r}"):
            info = lake.repository.ref(ref).object(path).stat()
        local = cache / _cache_key(info.checksum, info.size_bytes)
        if not local.exists():
            tmp = local.with_suffix(f".{os.getpid()}.part")
            lake.download_file(ref, path, tmp)
            os.replace(tmp, local)
        files.append(local)
    return files
