"""h(seed, key): the hash that orders a head query's pairs in balance, vectorized over Arrow keys.

Keys are already hashes (pipeline.match.pair_key: 32 hex digits of sha1(url TAB text)), so h needs
no cryptographic hash, only a seeded 64-bit mix of the key's 128 bits: the two halves are read as
big-endian uint64 (hi, lo) and mixed with splitmix64's finalizer in wrapping uint64 arithmetic,

    h = fmix(fmix(hi ^ fmix(seed + GOLDEN)) ^ lo)

which numpy computes for a whole block at once and which is the same on every machine and version.
A key that is not 32 lowercase hex digits (only hand-made test keys are) is first reduced to 128 bits
by blake2b, one key at a time in Python: correct for any string, just slower. `claim_hash` is the
scalar twin in plain Python ints, used by the reference `balance.claim`; the two must agree bit for
bit (tests/pipeline/test_claimhash.py holds a fixed table of values).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NAME = "splitmix64-128/v1"  # recorded in balance's inputs: a finished selected/ made by another h is redone
MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
M1, M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
HEX_KEY = "^[0-9a-f]{32}$"
KEY_CHARS = 32


def _fmix(z: int) -> int:
    z = ((z ^ (z >> 30)) * M1) & MASK
    z = ((z ^ (z >> 27)) * M2) & MASK
    return z ^ (z >> 31)


def _fmix_array(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(M1)  # uint64 arrays wrap silently, as the mix wants
    z = (z ^ (z >> np.uint64(27))) * np.uint64(M2)
    return z ^ (z >> np.uint64(31))


def _key_bits(key: str) -> tuple[int, int]:
    if len(key) == KEY_CHARS and all(c in "0123456789abcdef" for c in key):
        bits = int(key, 16)
    else:
        bits = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=16).digest(), "big")
    return bits >> 64, bits & MASK


def claim_hash(seed: int, key: str) -> int:
    """h(seed, key) of one key, in plain Python (the seed is taken modulo 2**64)."""
    hi, lo = _key_bits(key)
    return _fmix(_fmix(hi ^ _fmix((seed + GOLDEN) & MASK)) ^ lo)


def claim_hashes(seed: int, keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """h(seed, key) of every key, as uint64; equal to claim_hash key by key."""
    keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    if len(keys) == 0:
        return np.zeros(0, np.uint64)
    if keys.null_count:
        raise ValueError("claim_hashes: a key is null (matched/ keys never are)")
    hex_key = pc.match_substring_regex(keys, HEX_KEY).to_numpy(zero_copy_only=False).astype(bool)
    hi = np.empty(len(keys), np.uint64)
    lo = np.empty(len(keys), np.uint64)
    if hex_key.all():
        hi[:], lo[:] = _hex_bits(keys)
    else:
        hi[hex_key], lo[hex_key] = _hex_bits(keys.filter(pa.array(hex_key)))
        others = [_key_bits(k) for k in keys.filter(pa.array(~hex_key)).to_pylist()]
        hi[~hex_key] = [b[0] for b in others]
        lo[~hex_key] = [b[1] for b in others]
    seed_mix = np.uint64(_fmix((seed + GOLDEN) & MASK))
    return _fmix_array(_fmix_array(hi ^ seed_mix) ^ lo)


def _hex_bits(keys: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo) of keys that are all 32 hex digits, read straight from the Arrow character buffer."""
    n = len(keys)
    if n == 0:
        return np.empty(0, np.uint64), np.empty(0, np.uint64)
    width = np.int64 if keys.type == pa.large_string() else np.int32
    offsets = np.frombuffer(
        keys.buffers()[1], width, count=n + 1, offset=keys.offset * np.dtype(width).itemsize
    )
    chars = np.frombuffer(keys.buffers()[2], np.uint8)[offsets[0] : offsets[0] + KEY_CHARS * n]
    chars = chars.reshape(n, KEY_CHARS)  # every key is exactly 32 ASCII bytes: contiguous
    nibbles = chars - np.where(chars >= ord("a"), ord("a") - 10, ord("0")).astype(np.uint8)
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]  # [n, 16] bytes, as sha1 wrote them
    words = np.ascontiguousarray(packed).view(">u8").astype(np.uint64)  # [n, 2]: hi, lo
    return words[:, 0], words[:, 1]
