import io
import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import tokenize
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from evoselfcode.datagen import dedup
from evoselfcode.datagen.dedup import (
    band_keys,
    exact_duplicates,
    lsh_bands,
    minhash_signatures,
    near_duplicate_positions,
    near_duplicates,
)
from evoselfcode.datagen.utils import process_pool
from evoselfcode.datagen.utils.code_tokens import dedup_tokens
from evoselfcode.datagen.utils.process_pool import map_in_workers, worker_count

VOCAB = [f"name{i}" for i in range(400)] + ["len", "sum", "max", "min", "range", "sorted"]
OPS = ["+", "-", "*", "//", "%", "<<"]


def statement(rng: random.Random, index: int) -> str:
    a, b, c, d = (rng.choice(VOCAB) for _ in range(4))
    return f"    {a} = {b} {rng.choice(OPS)} {c}({d}, {index})"


def function(name: str, lines: list[str]) -> str:
    return "\n".join([f"def {name}(xs, k):", *lines, "    return xs"]) + "\n"


def generated_corpus(seed: int, families: int = 60) -> list[tuple[str, str]]:
    """Families of a base function with close variants (one line changed or added) and far ones (half rewritten)."""
    rng = random.Random(seed)
    items = []
    for family in range(families):
        lines = [statement(rng, i) for i in range(30)]
        variants = [lines]
        for _ in range(rng.randint(0, 3)):
            close = list(lines)
            if rng.random() < 0.5:
                close[rng.randrange(len(close))] = statement(rng, 99)
            else:
                close.insert(rng.randrange(len(close)), statement(rng, 98))
            variants.append(close)
        for _ in range(rng.randint(0, 2)):
            variants.append([statement(rng, i) if i % 2 else line for i, line in enumerate(lines)])
        for number, variant in enumerate(variants):
            items.append((f"f{family:03d}-{number}", function(f"func{family}", variant)))
    rng.shuffle(items)
    return sorted(items)


def shingle_set(code: str, ngram: int) -> set[tuple[str, ...]]:
    tokens = dedup_tokens(code)
    if len(tokens) < ngram:
        return {tuple(tokens)}
    return {tuple(tokens[i : i + ngram]) for i in range(len(tokens) - ngram + 1)}


def exact_jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b)


def brute_force(items, threshold, ngram):
    """The same greedy rule as near_duplicates, checking every kept item with exact Jaccard."""
    sets = {key: shingle_set(code, ngram) for key, code in items}
    kept, dropped = [], {}
    for key, _ in items:
        matches = [other for other in kept if exact_jaccard(sets[key], sets[other]) >= threshold]
        if matches:
            dropped[key] = matches[0]
        else:
            kept.append(key)
    return dropped, sets


@pytest.mark.parametrize(("seed", "threshold", "ngram"), [(1, 0.8, 5), (2, 0.8, 5), (3, 0.5, 3), (4, 0.7, 4)])
def test_lsh_finds_the_same_groups_as_brute_force(seed, threshold, ngram):
    items = generated_corpus(seed)
    expected, sets = brute_force(items, threshold, ngram)
    similarities = [exact_jaccard(sets[a], sets[b]) for (a, _), (b, _) in itertools.combinations(items, 2)]
    # The corpus has pairs on both sides of the threshold, and none in the narrow band just above it
    # where LSH may (rarely, documented) miss a pair.
    assert any(s >= threshold for s in similarities)
    assert any(0.2 < s < threshold for s in similarities)
    assert not any(threshold <= s < threshold + 0.04 for s in similarities)
    assert len(items) > 200
    assert len(expected) > 30
    assert near_duplicates(items, threshold=threshold, num_perm=128, ngram=ngram) == expected


def test_positions_of_near_duplicates_are_those_of_the_dropped_keys():
    items = generated_corpus(5, families=10)
    dropped = near_duplicates(items, threshold=0.8, num_perm=128, ngram=5)
    positions = near_duplicate_positions([code for _, code in items], threshold=0.8, num_perm=128, ngram=5)
    assert len(dropped) >= 5 and [items[i][0] for i in positions] == list(dropped)


def test_close_variants_are_dropped_and_point_to_the_first_copy():
    items = generated_corpus(5, families=10)
    dropped = near_duplicates(items, threshold=0.8, num_perm=128, ngram=5)
    assert dropped
    for dropped_key, kept_key in dropped.items():
        assert kept_key not in dropped
        assert kept_key < dropped_key  # items come sorted, so the kept copy came first
        assert dropped_key.split("-")[0] == kept_key.split("-")[0]


def test_result_depends_on_order_only_through_which_copy_survives():
    a = function("f", [f"    x{i} = y{i} + {i}" for i in range(20)])
    b = a.replace("x3 = y3 + 3", "x3 = y3 + 4")
    assert near_duplicates([("a", a), ("b", b)], threshold=0.8, num_perm=128, ngram=5) == {"b": "a"}
    assert near_duplicates([("b", b), ("a", a)], threshold=0.8, num_perm=128, ngram=5) == {"a": "b"}


def test_comments_and_whitespace_do_not_matter_but_names_do():
    code = "def f(a, b):\n    return a + b\n"
    assert dedup_tokens(code) == dedup_tokens("def f(a,b):  # add\n\n    return a+b")
    assert dedup_tokens(code) != dedup_tokens("def f(x, y):\n    return x + y\n")


def test_tokens_of_broken_code():
    assert dedup_tokens("def f(a:\n    return [a,  # oops\n") == ["def", "f", "(", "a", ":", "return", "[", "a", ","]
    open_docstring = '"""Open docstring\n    return 1\n'
    assert dedup_tokens("def f():\n    " + open_docstring) == ["def", "f", "(", ")", ":", open_docstring]


VARIED = r'''@cache  # decorated
async def g(a: int = 0x1F, *b, c=1_000.5e-3j, **d) -> dict[str, int]:
    """Doc with 'quotes' and # no comment."""
    x = rb'\x00' + Rb"y" + u'z' + """multi
line"""
    y = a ** 2 // 3 >> 1 << 2 if (n := len(b)) else ...  # walrus
    y **= 2; y //= 3; y >>= 1; y <<= 1; y @= m; y ^= 1; y |= 2; y &= 3; y %= 4; y -= .5; y += 1.
    z = [i for i in range(10) if i != 3 and i <= 4 or i >= 5 or i == 6 or not i < 7 > 8]
    return {'k': \
        x}, lambda q: q, d[1:2, ::3], 1e10, 0o17, 0b101, 1 if False else -1
'''


def test_tokens_match_tokenize_on_code_that_tokenizes():
    layout = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    expected = [t.string for t in tokenize.generate_tokens(io.StringIO(VARIED).readline) if t.type not in layout]
    assert dedup_tokens(VARIED) == expected


def test_an_f_string_is_one_token():  # as in tokenize up to 3.11; 3.12 splits it
    assert dedup_tokens("x = f\"{a!r:>{c}}\" + rf'{b}'") == ["x", "=", 'f"{a!r:>{c}}"', "+", "rf'{b}'"]


def test_broken_near_copies_still_match():
    body = "".join(f"    v{i} = w{i} * {i}\n" for i in range(20))
    broken = "def f(x):\n" + body + "    return sum(["
    items = [("a", broken), ("b", broken.replace("v7", "v77"))]
    assert near_duplicates(items, threshold=0.8, num_perm=128, ngram=5) == {"b": "a"}


def test_tiny_and_empty_code():
    items = [("a", ""), ("b", ""), ("c", "x"), ("d", "x"), ("e", "y")]
    assert near_duplicates(items, threshold=0.8, num_perm=64, ngram=5) == {"b": "a", "d": "c"}


def test_lsh_verifies_few_candidates(monkeypatch):
    calls = 0
    real_jaccard = dedup.jaccard

    def counting_jaccard(a, b):
        nonlocal calls
        calls += 1
        return real_jaccard(a, b)

    monkeypatch.setattr(dedup, "jaccard", counting_jaccard)
    rng = random.Random(7)
    items = [(f"{i:05d}", function(f"g{i}", [statement(rng, j) for j in range(12)])) for i in range(2000)]
    assert near_duplicates(items, threshold=0.8, num_perm=128, ngram=5) == {}
    assert calls < len(items)  # all pairs would be ~2,000,000


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.8, 128), (0.9, 128), (0.5, 64), (0.99, 16)])
def test_bands_miss_at_most_one_percent_at_the_threshold(threshold, num_perm):
    bands, rows = lsh_bands(threshold, num_perm)
    assert bands * rows <= num_perm
    assert (1 - threshold**rows) ** bands <= 0.01


def test_duplicate_keys_are_an_error():
    with pytest.raises(ValueError, match="duplicate key 'a'"):
        near_duplicates([("a", "x"), ("a", "y")], threshold=0.8, num_perm=16, ngram=5)
    with pytest.raises(ValueError, match="duplicate key 'a'"):
        exact_duplicates([("a", "x"), ("a", "y")])


def test_exact_duplicates_by_fingerprint():
    items = [
        ("1", "def f(a, b):\n    return a * b\n"),
        ("2", "def f(x, y):\n    # times\n    return x*y\n"),
        ("3", "def f(a, b):\n    return a + b\n"),
        ("4", 'def f(p, q):\n    """Multiply."""\n    return p * q\n'),
        ("5", "def f(a, b):\n    return a + b\n"),
    ]
    assert exact_duplicates(items) == {"2": "1", "4": "1", "5": "3"}


def test_signature_rows_agree_as_often_as_the_jaccard_similarity():
    rng = np.random.default_rng(11)
    pairs, size, common = 2000, 150, 133  # Jaccard 133 / 167 = 0.796
    hashes = []
    for _ in range(pairs):
        pool = rng.choice(2**32, size=2 * size - common, replace=False).astype(np.uint32)
        hashes += [pool[:size], np.concatenate([pool[:common], pool[size:]])]
    signatures = minhash_signatures(np.concatenate(hashes), np.full(2 * pairs, size), num_perm=128)
    a, b = signatures[0::2], signatures[1::2]
    assert abs((a == b).mean() - common / (2 * size - common)) < 0.005
    bands, rows = lsh_bands(0.8, 128)
    same_band = (a[:, : bands * rows] == b[:, : bands * rows]).reshape(pairs, bands, rows).all(axis=2)
    assert same_band.any(axis=1).mean() >= 0.99  # the LSH recall promised at the threshold


def test_band_keys_are_the_same_in_every_process_and_batch():
    codes = [code for _, code in generated_corpus(8, families=5)]
    keys = band_keys(codes, threshold=0.8, num_perm=128, ngram=5)
    assert np.array_equal(keys[3:], band_keys(codes[3:], threshold=0.8, num_perm=128, ngram=5))
    script = (
        "import sys, numpy as np; from evoselfcode.datagen.dedup import band_keys; "
        "codes = sys.stdin.read().split('\\0'); "
        "sys.stdout.write(band_keys(codes, threshold=0.8, num_perm=128, ngram=5).tobytes().hex())"
    )
    for seed in ("0", "1"):
        env = {"PYTHONHASHSEED": seed, "PATH": ""}
        out = subprocess.run([sys.executable, "-c", script], input="\0".join(codes), env=env,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert out == keys.tobytes().hex()


def test_precomputed_keys_give_the_same_result():
    items = generated_corpus(9, families=20)
    keys = band_keys([code for _, code in items], threshold=0.8, num_perm=128, ngram=5)
    expected = near_duplicates(items, threshold=0.8, num_perm=128, ngram=5)
    assert expected
    assert near_duplicates(items, threshold=0.8, num_perm=128, ngram=5, keys=keys) == expected


def test_band_keys_are_32_bit():
    items = generated_corpus(8, families=5)
    bands, _ = lsh_bands(0.8, 128)
    keys = band_keys([code for _, code in items], threshold=0.8, num_perm=128, ngram=5)
    assert keys.dtype == np.uint32
    assert keys.shape == (len(items), bands)
    assert keys.nbytes == 4 * bands * len(items)  # 84 bytes per item at 21 bands, not 168
    read = dedup._read_band_keys([code for _, code in items], 0.8, 128, 5)
    assert read.dtype == np.uint32
    assert np.array_equal(read, keys)
    assert dedup._read_band_keys([], 0.8, 128, 5).dtype == np.uint32
    assert (keys >> 16).any()  # the high bits of the mix, not a narrow low part


def _all_equal(keys):
    return np.zeros_like(keys)


def _sixteen_values(keys):
    return keys & np.uint32(0xF)


@pytest.mark.parametrize("collide", [_all_equal, _sixteen_values])
def test_colliding_band_keys_only_add_candidates_which_are_verified_exactly(monkeypatch, collide):
    items = generated_corpus(1)
    expected, _ = brute_force(items, 0.8, 5)
    assert len(expected) > 30
    calls = 0
    real_jaccard, real_band_keys = dedup.jaccard, dedup.band_keys

    def counting_jaccard(a, b):
        nonlocal calls
        calls += 1
        return real_jaccard(a, b)

    monkeypatch.setattr(dedup, "jaccard", counting_jaccard)
    assert near_duplicates(items, threshold=0.8, num_perm=128, ngram=5) == expected
    calls_with_real_keys, calls = calls, 0
    monkeypatch.setattr(dedup, "band_keys", lambda codes, **kw: collide(real_band_keys(codes, **kw)))
    assert near_duplicates(items, threshold=0.8, num_perm=128, ngram=5) == expected
    assert calls > 2 * calls_with_real_keys  # the collisions did bring more candidates to verify


class LazyCodes:
    """Codes read on demand, like merge-code's records read back from their shards."""

    def __init__(self, items):
        self.items, self.reads = items, 0

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        self.reads += 1
        return self.items[i]


def test_items_are_read_once_and_then_only_the_candidates(monkeypatch):
    monkeypatch.setattr(process_pool, "CHUNK_SIZE", 7)
    items = generated_corpus(10, families=20)
    lazy = LazyCodes([code for _, code in items])
    positions = near_duplicate_positions(lazy, threshold=0.8, num_perm=128, ngram=5)
    dropped = near_duplicates(items, threshold=0.8, num_perm=128, ngram=5)
    assert [items[i][0] for i in positions] == list(dropped)
    assert len(items) < lazy.reads < 2 * len(items) + 1


def _die_on_three(batch: list[int]) -> list[int]:
    if 3 in batch:
        os._exit(1)  # as the OOM killer would end it
    return batch


def test_a_worker_that_dies_fails_the_job_instead_of_hanging_it():
    signal.alarm(60)  # a hang fails the test rather than the whole run
    try:
        with pytest.raises(BrokenProcessPool):
            list(map_in_workers(_die_on_three, [[1], [2], [3], [4]], workers=2))
    finally:
        signal.alarm(0)


def test_a_snakemake_job_forks_no_more_workers_than_its_threads(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    # threads an earlier test left running (a fake server, a library's monitor) would make it work in-process
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert worker_count(100_000) == 8
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # what Snakemake sets for `threads: 3`
    assert worker_count(100_000) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert worker_count(100_000) == 0
    assert worker_count(10) == 0
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert worker_count(100_000) == 0  # a fork would copy locks other threads hold
