"""Content-addressed object files: objects/<aa>/<bb>/<sha256>, written to a temp file, fsync'd, renamed.

A file appears under its final name only once complete and durable, so a crash leaves at most an
orphan temp file (removed at start) or an unreferenced blob (harmless, deduplicated on reuse).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_HEX = frozenset("0123456789abcdef")
_PARALLEL_HASH_MIN = 256 * 1024
_HASHERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="md5")


class BlobWriter:
    """Accumulates one upload in a temp file while hashing it (sha256 for the address, md5 for the ETag)."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self.tmp_path = store.tmp_dir / uuid.uuid4().hex
        self._file = open(self.tmp_path, "wb")  # noqa: SIM115 - closed in finish/abort
        self._sha = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, chunk: bytes) -> None:
        if len(chunk) >= _PARALLEL_HASH_MIN:
            # md5 in a helper thread while this one does sha256 and the write (hashlib releases the GIL)
            md5_done = _HASHERS.submit(self._md5.update, chunk)
            self._sha.update(chunk)
            self._file.write(chunk)
            md5_done.result()
        else:
            self._file.write(chunk)
            self._sha.update(chunk)
            self._md5.update(chunk)
        self.size += len(chunk)

    def finish(self, durable: bool = True) -> tuple[str, str, int]:
        """Make the blob durable under its content address; returns (sha256, md5, size)."""
        if durable:
            self._file.flush()
            os.fsync(self._file.fileno())
        self._file.close()
        digest = self._sha.hexdigest()
        final = self._store.path_of(digest)
        if final.exists():
            self.tmp_path.unlink()
        else:
            new_dirs = [d for d in (final.parent.parent, final.parent) if not d.exists()]
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp_path, final)
            if durable:  # the new name, and any new directory on its way, must survive a power loss
                for directory in (final.parent, *(d.parent for d in reversed(new_dirs))):
                    _fsync_dir(directory)
        return digest, self._md5.hexdigest(), self.size

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp_path.unlink()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects_dir = root / "objects"
        self.tmp_dir = root / "tmp"
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp_dir.iterdir():  # uploads cut short by a crash
            leftover.unlink(missing_ok=True)

    def path_of(self, digest: str) -> Path:
        # The digest is ours (computed here), but check anyway: nothing may address outside objects/.
        if len(digest) != 64 or not _HEX.issuperset(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.objects_dir / digest[:2] / digest[2:4] / digest

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put(self, data: bytes, durable: bool = True) -> tuple[str, str, int]:
        w = self.writer()
        try:
            w.write(data)
            return w.finish(durable)
        except BaseException:
            w.abort()
            raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
