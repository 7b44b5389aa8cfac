"""Exact (AST fingerprint) and near (MinHash LSH over token n-grams) duplicate detection.

Both take `(key, code)` pairs in the order the caller wants them judged and return
`{dropped key: key of the kept copy it duplicates}`; the first item of a group always survives.

Near duplicates: each code becomes the set of its token `ngram`-shingles (Python tokens, names kept,
comments and whitespace dropped). MinHash LSH proposes candidate pairs in linear time; each candidate
is then verified with the EXACT Jaccard similarity of the two shingle sets, so no pair below
`threshold` is ever dropped. The LSH bands are chosen for recall: a pair exactly at the threshold
is missed with probability at most 1%, a pair further above it far less often.
"""

from __future__ import annotations

import hashlib
import io
import re
import tokenize
from collections.abc import Iterable, Sequence

import numpy as np

from evoselfcode.datagen.utils.hashing import ast_fingerprint

MAX_MISS_AT_THRESHOLD = 0.01

_LAYOUT_TOKENS = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
    tokenize.ENCODING,
}
_COMMENT = re.compile(r"#[^\r\n]*")
_ROUGH_TOKEN = re.compile(r"[A-Za-z_]\w*|\d[\w.]*|\S")
# Odd 64-bit multipliers for the rolling n-gram hash (fixed so hashes are stable across runs).
_NGRAM_MULTIPLIERS = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD],
    dtype=np.uint64,
)


def code_tokens(code: str) -> list[str]:
    """Python tokens without comments and layout; a rough regex split when `tokenize` gives up."""
    try:
        return [t.string for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type not in _LAYOUT_TOKENS]
    except (tokenize.TokenError, SyntaxError):
        return _ROUGH_TOKEN.findall(_COMMENT.sub("", code))


def _multiplier(position: int) -> np.uint64:
    base = _NGRAM_MULTIPLIERS[position % len(_NGRAM_MULTIPLIERS)]
    return base + np.uint64(2 * (position // len(_NGRAM_MULTIPLIERS)))


class Shingler:
    """Turns code into its sorted array of 32-bit token n-gram hashes; caches token hashes."""

    def __init__(self, ngram: int) -> None:
        if ngram < 1:
            raise ValueError(f"ngram must be at least 1, not {ngram}")
        self.ngram = ngram
        self._token_ids: dict[str, int] = {}

    def _token_id(self, token: str) -> int:
        token_id = self._token_ids.get(token)
        if token_id is None:
            digest = hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            token_id = self._token_ids[token] = int.from_bytes(digest, "little")
        return token_id

    def __call__(self, code: str) -> np.ndarray:
        ids = np.array([self._token_id(t) for t in code_tokens(code)], dtype=np.uint64)
        # Code shorter than one n-gram is a single shingle of all its tokens.
        width = min(self.ngram, len(ids))
        count = len(ids) - width + 1
        hashes = np.full(count, np.uint64(width), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for position in range(width):
                hashes = hashes + ids[position : position + count] * _multiplier(position)
            folded = (hashes >> np.uint64(32)) ^ (hashes & np.uint64(0xFFFFFFFF))
        return np.unique(folded.astype(np.uint32))


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


def _check_keys(keys: Iterable[str]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}: every item needs its own key")
        seen.add(key)


def near_duplicates(items: Sequence[tuple[str, str]], *, threshold: float, num_perm: int, ngram: int) -> dict[str, str]:
    """`{dropped key: kept key}` for items whose shingle Jaccard with an earlier kept item is >= threshold.

    Items are judged in the given order against the items kept so far; a dropped item points to the
    earliest kept item it matches.
    """
    # here, not at the top: datasketch imports scipy (~0.5-1.5 s), which every step importing this module paid
    from datasketch import MinHash

    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], not {threshold}")
    _check_keys(key for key, _ in items)
    shingles_of = Shingler(ngram)
    bands, rows = lsh_bands(threshold, num_perm)
    # Per band, bucket hash -> the kept items in it (an order, or a list of them when several); datasketch's
    # MinHashLSH kept a bytes key and a set per bucket: ~6.7 KB per kept item, this ~2 KB. A hash collision
    # only adds a candidate, which the exact Jaccard check then rejects.
    tables: list[dict[int, int | list[int]]] = [{} for _ in range(bands)]
    # One set of permutations for every MinHash: building them is the slow part of MinHash().
    permutations = MinHash(num_perm=num_perm).permutations
    kept: dict[int, tuple[str, np.ndarray]] = {}
    dropped: dict[str, str] = {}
    for order, (key, code) in enumerate(items):
        shingles = shingles_of(code)
        signature = MinHash(num_perm=num_perm, hashfunc=int, permutations=permutations, scheme="affine32")
        signature.update_batch(shingles)
        values = signature.hashvalues
        buckets = [hash(values[band * rows : (band + 1) * rows].tobytes()) for band in range(bands)]
        candidates: set[int] = set()
        for table, bucket in zip(tables, buckets, strict=True):
            hit = table.get(bucket)
            if isinstance(hit, int):
                candidates.add(hit)
            elif hit is not None:
                candidates.update(hit)
        matches = [c for c in candidates if jaccard(shingles, kept[c][1]) >= threshold]
        if matches:
            dropped[key] = kept[min(matches)][0]
            continue
        kept[order] = (key, shingles)
        for table, bucket in zip(tables, buckets, strict=True):
            hit = table.get(bucket)
            if hit is None:
                table[bucket] = order
            elif isinstance(hit, int):
                table[bucket] = [hit, order]
            else:
                hit.append(order)
    return dropped


def exact_duplicates(items: Sequence[tuple[str, str]], *, fingerprints: Sequence[str] | None = None) -> dict[str, str]:
    """`{dropped key: kept key}` for items whose AST fingerprint equals an earlier item's.

    `fingerprints`: the items' `ast_fingerprint`s, in order, if the caller has them already.
    """
    _check_keys(key for key, _ in items)
    if fingerprints is None:
        fingerprints = [ast_fingerprint(code) for _, code in items]
    elif len(fingerprints) != len(items):
        raise ValueError(f"{len(fingerprints)} fingerprints for {len(items)} items")
    first_with: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for (key, _), fingerprint in zip(items, fingerprints, strict=True):
        if fingerprint in first_with:
            dropped[key] = first_with[fingerprint]
        else:
            first_with[fingerprint] = key
    return dropped
