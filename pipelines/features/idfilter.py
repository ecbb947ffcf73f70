"""The 64-bit event-id hash and the Bloom filter over a batch's ids, both in numpy.

The hash is Flywheel's own, computed from the Arrow string buffers: filters and bucketed indexes stay on the
lake for the life of the model table, so their hash must never change with a library's version. Changing it
means a new HASH_NAME (tests pin its values); batches recorded under another name are checked the slow way
(their whole id index is read), never missed.

The filter answers "may this id be in the batch?" with no false negatives and a false-positive rate of about
1e-5 at BITS_PER_ID bits per id (its size: 3 bytes per id). Probing runs hash by hash over the ids still
possible, so most ids are ruled out after one or two probes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import as_strided

HASH_NAME = "fw64-1"
BITS_PER_ID = 24
HASHES = 16  # ~ BITS_PER_ID * ln 2, the count that minimizes false positives: (1 - e^(-16/24))^16 ~ 1e-5
_SEED = np.uint64(0x9E3779B97F4A7C15)
_SECOND = np.uint64(0xD6E8FEB86659FD93)  # seeds the second hash of the double hashing
_CHUNK = 1 << 17  # ids per pass when setting bits (bounds the positions array)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit reaches every output bit (uint64 arithmetic wraps)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def as_large_string(ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The ids as one large_string array: cast before combining chunks, since pa.string's 32-bit offsets
    overflow once a batch's ids pass 2 GiB together."""
    if isinstance(ids, pa.ChunkedArray):
        if not ids.num_chunks:
            return pa.array([], pa.large_string())
        return ids.cast(pa.large_string()).combine_chunks()
    return ids.cast(pa.large_string())


def id_hashes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """uint64 hash of each id's UTF-8 bytes (a null hashes as the empty string), 8 bytes at a time."""
    arr = pc.fill_null(as_large_string(ids), "")
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.uint64)
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64, count=n + 1, offset=arr.offset * 8)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    padded = np.concatenate([data, np.zeros(8, np.uint8)])
    windows = as_strided(padded, shape=(len(padded) - 7, 8), strides=(1, 1))  # the 8 bytes at each position
    starts, lengths = offsets[:-1], np.diff(offsets)
    h = _mix(lengths.astype(np.uint64) ^ _SEED)
    if lengths.min() == lengths.max():  # ids of one length (uuids, hex digests): words straight from the buffer
        size = int(lengths[0])
        padded_ids = np.zeros((n, math.ceil(size / 8) * 8), np.uint8)
        padded_ids[:, :size] = data[offsets[0] : offsets[0] + n * size].reshape(n, size)
        for values in padded_ids.view("<u8").T:
            h = _mix(h ^ values)
        return h
    longest_first = np.argsort(-lengths, kind="stable")
    neg_sorted = -lengths[longest_first]  # ascending
    for word in range(math.ceil(int(lengths.max()) / 8)):
        rows = longest_first[: np.searchsorted(neg_sorted, -8 * word, side="left")]  # ids longer than 8*word
        values = np.ascontiguousarray(windows[starts[rows] + 8 * word]).view("<u8").ravel()
        left = lengths[rows] - 8 * word
        tail = left < 8  # the id's last word: bytes past its end are not its own
        values[tail] &= (np.uint64(1) << (left[tail].astype(np.uint64) * np.uint64(8))) - np.uint64(1)
        h[rows] = _mix(h[rows] ^ values)
    return h


def _second(h: np.ndarray) -> np.ndarray:
    return _mix(h ^ _SECOND) | np.uint64(1)


@dataclass(frozen=True)
class BloomFilter:
    bits: int  # m, a multiple of 8
    hashes: int  # k
    packed: np.ndarray  # m bits, uint8, little bit order

    @classmethod
    def of(cls, hashes: np.ndarray, bits_per_id: float = BITS_PER_ID, k: int = HASHES) -> BloomFilter:
        m = max(64, math.ceil(len(hashes) * bits_per_id / 8) * 8)
        bits = np.zeros(m, np.bool_)
        mod = np.uint64(m)
        for start in range(0, len(hashes), _CHUNK):
            h1 = hashes[start : start + _CHUNK]
            h2 = _second(h1)
            for i in range(k):
                bits[(h1 + np.uint64(i) * h2) % mod] = True
        return cls(m, k, np.packbits(bits, bitorder="little"))

    def might_contain(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean mask over `hashes`: False where the id is surely not in the filter."""
        alive = np.arange(len(hashes))
        h1, h2 = hashes, _second(hashes)
        mod = np.uint64(self.bits)
        for i in range(self.hashes):  # probe only the ids every earlier probe kept
            pos = (h1[alive] + np.uint64(i) * h2[alive]) % mod
            alive = alive[(self.packed[pos >> np.uint64(3)] >> (pos & np.uint64(7)).astype(np.uint8)) & 1 == 1]
            if alive.size == 0:
                break
        out = np.zeros(len(hashes), np.bool_)
        out[alive] = True
        return out

    def to_bytes(self) -> bytes:
        return self.packed.tobytes()

    @classmethod
    def read(cls, path: Path, bits: int, hashes: int) -> BloomFilter:
        packed = np.fromfile(path, np.uint8)
        if len(packed) * 8 != bits:
            raise ValueError(f"id filter {path} holds {len(packed) * 8} bits, its catalog entry says {bits}")
        return cls(bits, hashes, packed)
