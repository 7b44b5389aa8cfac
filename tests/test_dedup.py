import itertools
import random

import pytest

from evoselfcode.datagen.filters import dedup
from evoselfcode.datagen.filters.dedup import code_tokens, exact_duplicates, lsh_bands, near_duplicates

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
    tokens = code_tokens(code)
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
    assert code_tokens(code) == code_tokens("def f(a,b):  # add\n\n    return a+b")
    assert code_tokens(code) != code_tokens("def f(x, y):\n    return x + y\n")


def test_tokenizer_falls_back_on_broken_code():
    assert code_tokens("def f(a:\n    return [a,  # oops\n") == ["def", "f", "(", "a", ":", "return", "[", "a", ","]


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
