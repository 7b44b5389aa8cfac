"""Exact (AST fingerprint) and near (MinHash LSH over token n-grams) duplicate detection.

Both take `(key, code)` pairs in the order the caller wants them judged and return
`{dropped key: key of the kept copy it duplicates}`; the first item of a group always survives. MinHash only
proposes near-duplicate candidates: a pair is dropped only if the exact Jaccard similarity of its shingle sets
reaches `threshold`. Worker processes do not change the result. How it works: docs/architecture.md,
"How code is compared".
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache, partial

import numpy as np

from evoselfcode.datagen.utils import process_pool
from evoselfcode.datagen.utils.code_tokens import dedup_tokens
from evoselfcode.datagen.utils.hashing import ast_fingerprint

MAX_MISS_AT_THRESHOLD = 0.01

# Odd 64-bit multipliers for the rolling n-gram hash (fixed so hashes are stable across runs).
_NGRAM_MULTIPLIERS = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD],
    dtype=np.uint64,
)
_LOW_32 = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)
# Shingles hashed at once by one permutation block: 128 permutations x 4,096 x 8 bytes = 4 MB.
_SHINGLES_PER_BLOCK = 4_096


# Stands for a function's own name in near dedup.
OWN_NAME = "_f"


def without_own_name(code: str, func_name: str) -> str:
    """The code with its function's own name (its def, its recursive calls) as one placeholder, so that near
    dedup compares bodies, as the exact fingerprint does. Whole words only; a string that quotes the name
    changes too, alike in every copy. (str.find, not a regex per name: compiling one per function cost more
    than the rest of near dedup's per-function work.)"""
    parts: list[str] = []
    start, at = 0, code.find(func_name) if func_name else -1
    while at >= 0:
        end = at + len(func_name)
        if not _is_word_char(code, at - 1) and not _is_word_char(code, end):
            parts += [code[start:at], OWN_NAME]
            start = end
        at = code.find(func_name, end)
    return "".join(parts) + code[start:] if parts else code


def _is_word_char(text: str, i: int) -> bool:
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")


def _multiplier(position: int) -> np.uint64:
    base = _NGRAM_MULTIPLIERS[position % len(_NGRAM_MULTIPLIERS)]
    return base + np.uint64(2 * (position // len(_NGRAM_MULTIPLIERS)))


class _TokenIds(dict):
    """Token -> its 64-bit id (blake2b of the text), computed once per distinct token."""

    def __missing__(self, token: str) -> int:
        digest = hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        token_id = self[token] = int.from_bytes(digest, "little")
        return token_id


def _shingles(codes: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, counts): each code's 32-bit token n-gram hashes, in token order, concatenated; counts per code.

    Code shorter than one n-gram is a single shingle of all its tokens (no tokens: one shingle of none).
    """
    if ngram < 1:
        raise ValueError(f"ngram must be at least 1, not {ngram}")
    token_ids = _TokenIds()
    ids = [list(map(token_ids.__getitem__, dedup_tokens(code))) for code in codes]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    tokens = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.uint64, count=int(lengths.sum()))
    tokens = np.concatenate([tokens, np.zeros(ngram, dtype=np.uint64)])  # windows may look past the end
    widths = np.minimum(lengths, ngram)
    counts = lengths - widths + 1
    code_of = np.repeat(np.arange(len(codes)), counts)
    first_shingle = np.cumsum(counts) - counts
    start = (np.cumsum(lengths) - lengths)[code_of] + (np.arange(len(code_of)) - first_shingle[code_of])
    width = widths[code_of].astype(np.uint64)
    short = bool((widths < ngram).any())
    hashes = width.copy()
    for position in range(ngram):
        ids_here = tokens[start + position]
        if short:
            ids_here[width <= position] = 0
        hashes += ids_here * _multiplier(position)
    folded = (hashes >> _32) ^ (hashes & _LOW_32)
    return folded.astype(np.uint32), counts


def shingle_sets(codes: Sequence[str], ngram: int) -> list[np.ndarray]:
    """Each code's sorted, distinct 32-bit token n-gram hashes: the sets whose Jaccard similarity is judged."""
    hashes, counts = _shingles(codes, ngram)
    code_of = np.repeat(np.arange(len(codes), dtype=np.uint64), counts)
    distinct = np.unique((code_of << _32) | hashes)  # sorted by code, then by hash
    ends = np.searchsorted(distinct >> _32, np.arange(len(codes), dtype=np.uint64), side="right")
    values = (distinct & _LOW_32).astype(np.uint32)
    return np.split(values, ends[:-1])


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted, duplicate-free hash arrays."""
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (a.size + b.size - common)


def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows): the most selective banding that misses a pair at `threshold` at most 1% of the time."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if (1 - threshold**rows) ** bands <= MAX_MISS_AT_THRESHOLD:
            return bands, rows
    return num_perm, 1


def _random_words(label: str, count: int) -> np.ndarray:
    """`count` fixed pseudo-random 64-bit words: blake2b of the label and the index."""
    words = [hashlib.blake2b(f"{label} {i}".encode(), digest_size=8).digest() for i in range(count)]
    return np.array([int.from_bytes(w, "little") for w in words], dtype=np.uint64)


@lru_cache(maxsize=8)
def _permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b), each (num_perm, 1): the multipliers and increments of the MinHash permutations."""
    return _random_words("minhash a", num_perm)[:, None], _random_words("minhash b", num_perm)[:, None]


def minhash_signatures(hashes: np.ndarray, counts: np.ndarray, num_perm: int) -> np.ndarray:
    """(items, num_perm) uint32: per item, the high 32 bits of its minimum under each permutation.

    `hashes` holds each item's shingle hashes in turn, `counts[i]` of them for item i (at least one each).
    """
    a, b = _permutations(num_perm)
    values = hashes.astype(np.uint64)
    starts = np.cumsum(counts) - counts
    signatures = np.empty((num_perm, len(counts)), dtype=np.uint64)
    first = 0
    while first < len(counts):
        # items first..last-1, at least one, about _SHINGLES_PER_BLOCK shingles together
        last = max(first + 1, int(np.searchsorted(starts, starts[first] + _SHINGLES_PER_BLOCK, side="right")))
        begin, end = starts[first], starts[last - 1] + counts[last - 1]
        permuted = a * values[begin:end]  # (num_perm, shingles), mod 2^64
        permuted += b
        signatures[:, first:last] = np.minimum.reduceat(permuted, starts[first:last] - begin, axis=1)
        first = last
    return (signatures.T >> _32).astype(np.uint32)


def band_keys(codes: Sequence[str], *, threshold: float, num_perm: int, ngram: int) -> np.ndarray:
    """(len(codes), bands) uint32: each code's LSH band keys; codes with a key in common are near-dup candidates.

    A code's keys depend on it alone, so they can be computed in any batches, in any process. Equal bands
    always give equal keys; different bands rarely do (~2^-32), which only adds a candidate to verify.
    """
    bands, rows = lsh_bands(threshold, num_perm)
    row_multipliers = _random_words("band row", rows) | np.uint64(1)
    keys = np.empty((len(codes), bands), dtype=np.uint32)
    size = process_pool.CHUNK_SIZE
    for first in range(0, len(codes), size):
        batch = codes[first : first + size]
        signatures = minhash_signatures(*_shingles(batch, ngram), num_perm)
        banded = signatures[:, : bands * rows].reshape(len(batch), bands, rows).astype(np.uint64)
        mixed = (banded * row_multipliers).sum(axis=2, dtype=np.uint64)  # mod 2^64
        keys[first : first + len(batch)] = mixed >> _32  # the high half: the well-mixed bits
    return keys


def _shared_keys(keys: np.ndarray) -> np.ndarray:
    """(items, bands) bool: whether another item has the same key in that band."""
    shared = np.zeros(keys.shape, dtype=bool)
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        ordered = keys[order, band]
        same = ordered[1:] == ordered[:-1]
        hit = np.zeros(len(order), dtype=bool)
        hit[1:] = same
        hit[:-1] |= same
        shared[order[hit], band] = True
    return shared


def _check_keys(keys: Iterable[str]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}: every item needs its own key")
        seen.add(key)


def _read_band_keys(codes: Sequence[str], threshold: float, num_perm: int, ngram: int) -> np.ndarray:
    """`band_keys` of the codes, reading them once and holding one chunk of code at a time."""
    bands, _ = lsh_bands(threshold, num_perm)
    keys_of = partial(band_keys, threshold=threshold, num_perm=num_perm, ngram=ngram)
    rows = process_pool.map_in_workers(keys_of, process_pool.chunks(codes), process_pool.worker_count(len(codes)))
    return np.concatenate([np.empty((0, bands), dtype=np.uint32), *rows])


def near_duplicates(
    items: Sequence[tuple[str, str]],
    *,
    threshold: float,
    num_perm: int,
    ngram: int,
    keys: np.ndarray | None = None,
) -> dict[str, str]:
    """`{dropped key: kept key}` for items whose shingle Jaccard with an earlier kept item is >= threshold.

    Items are judged in the given order against the items kept so far; a dropped item points to the
    earliest kept item it matches. `keys`: the items' `band_keys` with the same parameters, if the caller
    has them already.
    """
    _check_keys(key for key, _ in items)
    codes = [code for _, code in items]
    matches = _near_matches(codes, threshold, num_perm, ngram, keys)
    return {items[position][0]: items[kept][0] for position, kept in matches}


def near_duplicate_positions(
    codes: Sequence[str], *, threshold: float, num_perm: int, ngram: int, keys: np.ndarray | None = None
) -> np.ndarray:
    """The positions in `codes` of what `near_duplicates` drops, in order.

    `codes` is read once whole, then the candidates again by index, so it may read each code from a file
    when asked (merge-code: a million records, none held in memory).
    """
    matches = _near_matches(codes, threshold, num_perm, ngram, keys)
    return np.fromiter((position for position, _ in matches), dtype=np.int64)


def _near_matches(
    codes: Sequence[str], threshold: float, num_perm: int, ngram: int, keys: np.ndarray | None
) -> Iterator[tuple[int, int]]:
    """(position, position of the kept code it matches) of each dropped code, in order."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], not {threshold}")
    if keys is None:
        keys = _read_band_keys(codes, threshold, num_perm, ngram)
    elif len(keys) != len(codes):
        raise ValueError(f"{len(keys)} rows of band keys for {len(codes)} items")
    shared = _shared_keys(keys)
    candidates = np.flatnonzero(shared.any(axis=1))
    # Per band, key -> the kept candidates with that key; the shingles of the kept candidates.
    tables: list[dict[int, list[int]]] = [{} for _ in range(keys.shape[1])]
    kept: dict[int, np.ndarray] = {}
    size = process_pool.CHUNK_SIZE
    for first in range(0, len(candidates), size):
        batch = candidates[first : first + size].tolist()
        for position, shingles in zip(batch, shingle_sets([codes[p] for p in batch], ngram), strict=True):
            buckets = [
                (table, band_key)
                for table, band_key, is_shared in zip(
                    tables, keys[position].tolist(), shared[position].tolist(), strict=True
                )
                if is_shared
            ]
            others: set[int] = set()
            for table, band_key in buckets:
                others.update(table.get(band_key, ()))
            matches = [other for other in others if jaccard(shingles, kept[other]) >= threshold]
            if matches:
                yield position, min(matches)
                continue
            kept[position] = shingles.copy()  # a view would keep its whole batch alive
            for table, band_key in buckets:
                table.setdefault(band_key, []).append(position)


def _fingerprints(codes: list[str]) -> list[str]:
    return [ast_fingerprint(code) for code in codes]


def first_copies(fingerprints: Sequence[str] | np.ndarray) -> np.ndarray:
    """For each item in order, whether no earlier item has its fingerprint: the exact-dedup rule.

    The one rule of the shard check (`checks.duplicates`) and of merge-code; the first copy in order stays.
    """
    first = np.zeros(len(fingerprints), dtype=bool)
    first[np.unique(np.asarray(fingerprints), return_index=True)[1]] = True
    return first


def exact_duplicates(items: Sequence[tuple[str, str]], *, fingerprints: Sequence[str] | None = None) -> dict[str, str]:
    """`{dropped key: kept key}` for items whose AST fingerprint equals an earlier item's (`first_copies`).

    `fingerprints`: the items' `ast_fingerprint`s, in order, if the caller has them already.
    """
    _check_keys(key for key, _ in items)
    if fingerprints is None:
        codes = process_pool.chunks(code for _, code in items)
        batches = process_pool.map_in_workers(_fingerprints, codes, process_pool.worker_count(len(items)))
        fingerprints = list(itertools.chain.from_iterable(batches))
    elif len(fingerprints) != len(items):
        raise ValueError(f"{len(fingerprints)} fingerprints for {len(items)} items")
    kept_key: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for (key, _), fingerprint, first in zip(items, fingerprints, first_copies(fingerprints).tolist(), strict=True):
        if first:
            kept_key[fingerprint] = key
        else:
            dropped[key] = kept_key[fingerprint]
    return dropped
