import subprocess

import pytest

from evoselfcode.config import Dedup, Filters
from evoselfcode.datagen.filters import code as checks
from evoselfcode.datagen.filters import dedup
from evoselfcode.datagen.filters.code import (
    DUPLICATE,
    MISSING_FUNCTION,
    NEAR_DUPLICATE,
    SYNTAX_ERROR,
    TOO_LONG,
    TOO_SHORT,
    TRIVIAL_BODY,
    TRUNCATED,
    check_sample,
    check_samples,
    funnel,
    reason_counts,
    ruff_reason,
)
from evoselfcode.datagen.filters.dedup import exact_duplicates, near_duplicates
from evoselfcode.datagen.schemas import CodeSample
from evoselfcode.datagen.utils import ruff as ruff_module
from evoselfcode.datagen.utils.ast_tools import extract_function, parse
from evoselfcode.datagen.utils.hashing import ast_fingerprint

GOOD = '''def clamp(value, low, high):
    """Clamp value into [low, high]."""
    if value < low:
        return low
    return min(value, high)
'''
RENAMED = """def clamp(x, lo, hi):
    # same function, other names
    if x < lo:
        return lo
    return min(x, hi)
"""
LONG_BODY = "".join(f"    total = total + values[{i}] * weights[{i}]\n" for i in range(24))
LONG = f"def clamp(values, weights):\n    total = 0\n{LONG_BODY}    return total\n"
NESTED_ONLY = "def outer():\n    def clamp(v, lo, hi):\n        return min(max(v, lo), hi)\n    return clamp\n"
NEAR_COPY = LONG.replace("    return total\n", "    total = abs(total)\n    return total\n")


def sample(code: str, func_name: str = "clamp", finish_reason: str | None = "stop", index: int = 0) -> CodeSample:
    return CodeSample(
        desc_id="d1",
        desc="Clamp a value.",
        func_name=func_name,
        source="L2R",
        sample_index=index,
        seed=42,
        completion=code.partition("(")[2],
        code=code,
        finish_reason=finish_reason,
    )


def reasons_of(*codes: str, filters: Filters | None = None) -> list[str | None]:
    return check_samples([sample(code, index=i) for i, code in enumerate(codes)], filters or Filters())


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (GOOD, None),
        ("def clamp(value, low, high):\n    return min(max(value, low),\n", SYNTAX_ERROR),
        (GOOD.replace("def clamp", "def squeeze"), MISSING_FUNCTION),
        (NESTED_ONLY, MISSING_FUNCTION),
        ('def clamp(value, low, high):\n    """Clamp value into the closed range."""\n    ...\n', TRIVIAL_BODY),
        ("def clamp(value, low, high):\n    raise NotImplementedError('clamp is left as an exercise')\n", TRIVIAL_BODY),
        ("def clamp(v, a, b):\n    return v\n", TOO_SHORT),
        (GOOD + "".join(f"# filler line {i}\n" for i in range(600)), TOO_LONG),
        (GOOD.replace("return low", "return lower_bound"), "ruff:F821"),
        (GOOD.replace("if value < low:", "if value is 'low':"), "ruff:F632"),
        (GOOD.replace("return low", "break"), "ruff:F701"),
    ],
)
def test_each_reason(code, reason):
    assert reasons_of(code) == [reason]


def test_truncated_comes_first():
    broken = "def clamp(value, low, high):\n    return min(max(value,"
    assert check_samples([sample(GOOD, finish_reason="length"), sample(broken, finish_reason="length")], Filters()) == [
        TRUNCATED,
        TRUNCATED,
    ]


def test_renamed_copy_is_an_exact_duplicate_of_the_first():
    assert reasons_of(GOOD, RENAMED, GOOD) == [None, DUPLICATE, DUPLICATE]
    assert reasons_of(RENAMED, GOOD) == [None, DUPLICATE]
    assert ast_fingerprint(GOOD) == ast_fingerprint(RENAMED)


def test_near_copy_is_a_near_duplicate():
    assert ast_fingerprint(LONG) != ast_fingerprint(NEAR_COPY)
    assert reasons_of(LONG, NEAR_COPY, GOOD) == [None, NEAR_DUPLICATE, None]


def test_only_passing_samples_take_part_in_dedup():
    undefined = GOOD.replace("return low", "return lower_bound")
    # A rejected first copy does not make the later good copy a duplicate.
    assert check_samples([sample(GOOD, finish_reason="length"), sample(GOOD)], Filters()) == [TRUNCATED, None]
    assert reasons_of(undefined, undefined, GOOD) == ["ruff:F821", "ruff:F821", None]


def test_switches_in_filters():
    undefined = GOOD.replace("return low", "return lower_bound")
    no_ruff = Filters(enable_ruff=False)
    assert reasons_of(undefined, filters=no_ruff) == [None]
    no_dedup = Filters(dedup=Dedup(exact=False, near=False))
    assert reasons_of(GOOD, RENAMED, LONG, NEAR_COPY, filters=no_dedup) == [None] * 4
    near_only = Filters(dedup=Dedup(exact=False))
    assert reasons_of(LONG, LONG, filters=near_only) == [None, NEAR_DUPLICATE]
    # Without the AST checks ruff still reports the parse failure, as the same reason id.
    no_ast = Filters(enable_ast=False)
    assert reasons_of("def clamp(value, low, high):\n    return min(max(value, low),\n", filters=no_ast) == [
        SYNTAX_ERROR
    ]
    assert reasons_of(GOOD.replace("def clamp", "def squeeze"), filters=no_ast) == [None]


def test_length_limits_come_from_filters():
    assert reasons_of(GOOD, filters=Filters(min_code_len=len(GOOD) + 1)) == [TOO_SHORT]
    assert reasons_of(GOOD, filters=Filters(max_code_len=len(GOOD) - 1)) == [TOO_LONG]
    assert reasons_of(GOOD, filters=Filters(min_code_len=len(GOOD), max_code_len=len(GOOD))) == [None]


def test_check_sample_is_keep_and_reason():
    assert check_sample(sample(GOOD), Filters()) == (True, None)
    assert check_sample(sample(GOOD, finish_reason="length"), Filters()) == (False, TRUNCATED)


def test_ruff_runs_once_for_all_candidates(monkeypatch):
    calls = []
    real_run = subprocess.run

    def counting_run(*args, **kwargs):
        calls.append(args)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(ruff_module.subprocess, "run", counting_run)
    codes = [GOOD.replace("low", f"low{i}") for i in range(50)] + ["def clamp(:\n"] * 5
    reasons = check_samples([sample(code, index=i) for i, code in enumerate(codes)], Filters())
    assert len(calls) == 1
    assert reasons.count(SYNTAX_ERROR) == 5


def test_no_ruff_process_when_nothing_passed_the_cheap_checks(monkeypatch):
    monkeypatch.setattr(checks, "ruff_check", lambda *a, **k: pytest.fail("ruff ran"))
    assert reasons_of("def clamp(:\n", "x = 1\n") == [SYNTAX_ERROR, MISSING_FUNCTION]


def test_extracted_continuations_pass_through():
    continuation = "value, low, high):\n    return max(low, min(value, high))\n\nprint(clamp(5, 0, 3))\nclamp("
    code, trimmed = extract_function("def clamp(" + continuation, "clamp")
    assert trimmed
    assert reasons_of(code) == [None]


def test_hostile_code_is_checked_but_never_run(tmp_path):
    marker = tmp_path / "ran"
    hostile = [
        f"import os\n\ndef clamp(v, lo, hi):\n    os.system('touch {marker}; rm -rf /')\n    return v\n",
        f"def clamp(v, lo, hi):\n    open({str(marker)!r}, 'w').write('pwned')\n    return v\n\nclamp(1, 2, 3)\n",
        "import os\n\ndef clamp(v, lo, hi):\n    while True:\n        os.fork()\n",
        "def clamp(v, lo, hi):\n    while True:\n        pass\n",
        f"@__import__('pathlib').Path({str(marker)!r}).touch\ndef clamp(v, lo, hi):\n    return v\n",
    ]
    for source in hostile:
        extract_function(source, "clamp")
        ast_fingerprint(source)
    assert reasons_of(*hostile, filters=Filters(min_code_len=0)) == [None, None, None, None, None]
    assert not marker.exists()


def test_ruff_reason_ids():
    assert ruff_reason("F821") == "ruff:F821"
    assert ruff_reason(ruff_module.SYNTAX_ERROR) == SYNTAX_ERROR


def test_funnel_counts_each_stage():
    reasons = [None, None, TRUNCATED, SYNTAX_ERROR, MISSING_FUNCTION, TOO_SHORT, TRIVIAL_BODY, "ruff:F821"]
    reasons += ["contaminated:humaneval", DUPLICATE, DUPLICATE, NEAR_DUPLICATE]
    assert funnel(reasons) == {
        "generated": 12,
        "parsed": 10,
        "named": 9,
        "non_trivial": 7,
        "ruff_clean": 6,
        "uncontaminated": 5,
        "unique": 3,
        "near_unique": 2,
    }
    assert reason_counts(reasons)[DUPLICATE] == 2
    assert list(reason_counts(reasons))[0] == DUPLICATE


def test_funnel_rejects_unknown_reasons():
    with pytest.raises(ValueError, match="weak_name"):
        funnel(["weak_name"])


def test_each_sample_is_parsed_once(monkeypatch):
    import ast

    parsed = []
    real_parse = ast.parse

    def counting_parse(source, *args, **kwargs):
        parsed.append(source)
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counting_parse)
    codes = [GOOD, RENAMED, LONG, NEAR_COPY, "def clamp(:\n"]
    assert reasons_of(*codes) == [None, DUPLICATE, None, NEAR_DUPLICATE, SYNTAX_ERROR]
    assert sorted(parsed) == sorted(codes)


def test_fingerprint_of_the_shared_tree_is_the_fingerprint_of_the_code():
    for code in [GOOD, RENAMED, LONG, NESTED_ONLY]:
        assert ast_fingerprint(code, parse(code)) == ast_fingerprint(code)


def test_code_nested_deeper_than_the_fingerprint_walk_is_judged_not_crashed():
    deep = "def clamp(x):\n    return " + "-" * 1000 + "x\n"
    assert parse(deep) is not None  # the parser takes it; a recursive walk of its tree does not
    first, again = reasons_of(deep, deep)
    assert first is None and again == DUPLICATE


def varied_samples(count: int) -> list[CodeSample]:
    """Distinct functions with exact copies, renamed copies, near copies, broken and undefined-name ones."""

    def own(i: int) -> str:
        return LONG.replace("total", f"total{i % 17}").replace("[", f"[{i} + ").replace("weights", f"w{i % 5}")

    codes = []
    for i in range(count):
        base = i - i % 6
        near = own(base).replace("    return ", "    checked = 1\n    return ")
        codes.append([own(base), RENAMED, own(base), near, "def clamp(:\n", GOOD + "x = undefined\n"][i % 6])
    return [sample(code, index=i) for i, code in enumerate(codes)]


@pytest.mark.parametrize("workers", [2, 3])
def test_worker_processes_give_the_same_reasons(monkeypatch, workers):
    data = varied_samples(90)
    monkeypatch.setattr(dedup, "CHUNK_SIZE", 7)
    monkeypatch.setattr(checks, "worker_count", lambda items: 0)
    serial = check_samples(data, Filters())
    assert {DUPLICATE, NEAR_DUPLICATE, SYNTAX_ERROR, "ruff:F821", None} <= set(serial)
    monkeypatch.setattr(checks, "worker_count", lambda items: workers)
    assert check_samples(data, Filters()) == serial


def test_dedup_in_workers_gives_the_same_result(monkeypatch):
    items = [(str(s.sample_index), s.code) for s in varied_samples(60)]
    params = {"threshold": 0.8, "num_perm": 128, "ngram": 5}
    monkeypatch.setattr(dedup, "CHUNK_SIZE", 7)
    serial = exact_duplicates(items), near_duplicates(items, **params)
    monkeypatch.setattr(dedup, "PARALLEL_MIN_ITEMS", 0)
    monkeypatch.setattr(dedup.os, "sched_getaffinity", lambda pid: {0, 1})
    assert (exact_duplicates(items), near_duplicates(items, **params)) == serial
    assert serial[0] and serial[1]


def test_identical_samples_are_inspected_once_and_judged_alike(monkeypatch):
    import ast

    parsed = []
    real_parse = ast.parse
    monkeypatch.setattr(ast, "parse", lambda source, *a, **k: parsed.append(source) or real_parse(source, *a, **k))
    undefined = GOOD.replace("return low", "return lower_bound")
    data = [sample(code, index=i) for i, code in enumerate([GOOD, undefined, GOOD, undefined, GOOD])]
    data.append(sample(GOOD.replace("def clamp", "def squeeze"), func_name="squeeze"))
    assert check_samples(data, Filters()) == [None, "ruff:F821", DUPLICATE, "ruff:F821", DUPLICATE, NEAR_DUPLICATE]
    assert len(parsed) == 3
