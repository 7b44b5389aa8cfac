import subprocess

import pytest

from evoselfcode.config import Config, Dedup, Filters
from evoselfcode.datagen import checks, dedup
from evoselfcode.datagen.checks import base, check_samples, funnel, lint, reason_counts
from evoselfcode.datagen.checks.duplicates import DUPLICATE, NEAR_DUPLICATE
from evoselfcode.datagen.checks.lint import ruff_reason
from evoselfcode.datagen.checks.structure import (
    MISSING_FUNCTION,
    SYNTAX_ERROR,
    TOO_LONG,
    TOO_SHORT,
    TRIVIAL_BODY,
    TRUNCATED,
)
from evoselfcode.datagen.dedup import exact_duplicates, near_duplicates
from evoselfcode.datagen.schemas import CodeSample
from evoselfcode.datagen.utils import process_pool
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


def with_filters(filters: Filters | None = None) -> Config:
    # benchmark matches are tests/test_decontam.py's: these checks run without a benchmark index
    return Config(filters=filters or Filters(), decontamination={"enabled": False})


def reasons_of(*codes: str, filters: Filters | None = None) -> list[str | None]:
    return check_samples([sample(code, index=i) for i, code in enumerate(codes)], with_filters(filters))


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
    data = [sample(GOOD, finish_reason="length"), sample(broken, finish_reason="length")]
    assert check_samples(data, with_filters()) == [TRUNCATED, TRUNCATED]


def test_renamed_copy_is_an_exact_duplicate_of_the_first():
    assert reasons_of(GOOD, RENAMED, GOOD) == [None, DUPLICATE, DUPLICATE]
    assert reasons_of(RENAMED, GOOD) == [None, DUPLICATE]
    assert ast_fingerprint(GOOD) == ast_fingerprint(RENAMED)


RECURSIVE = "def clamp(v, lo, hi):\n    if v < lo:\n        return clamp(lo, lo, hi)\n    return min(v, hi)\n"


def named(code: str, old: str, new: str, index: int) -> CodeSample:
    return sample(code.replace(old, new), func_name=new, index=index)


def test_the_same_body_under_another_name_is_an_exact_duplicate_of_the_first():
    data = [named(GOOD, "clamp", "bound", 0), sample(RENAMED, index=1), named(RENAMED, "clamp", "limit", 2)]
    assert check_samples(data, with_filters()) == [None, DUPLICATE, DUPLICATE]
    # recursive calls follow the name
    data = [sample(RECURSIVE, index=0), named(RECURSIVE, "clamp", "squeeze", 1)]
    assert check_samples(data, with_filters()) == [None, DUPLICATE]
    # a recursive call that is not the function's own name is another function
    other = sample(RECURSIVE.replace("return clamp(", "return squeeze("), func_name="clamp", index=1)
    assert check_samples([sample(RECURSIVE), other], with_filters())[1] != DUPLICATE


def test_a_near_copy_under_another_name_is_a_near_duplicate():
    near = RECURSIVE.replace("min(v, hi)", "min(v, hi) if hi is not None else v").replace("clamp", "limit")
    # With the names as written the two are 0.475 alike (token 5-grams), with the own name left out 0.79.
    assert dedup.jaccard(*dedup.shingle_sets([RECURSIVE, near], 5)) < 0.7
    data = [sample(RECURSIVE, index=0), sample(near, func_name="limit", index=1)]
    assert check_samples(data, with_filters(Filters(dedup=Dedup(exact=False, threshold=0.7)))) == [None, NEAR_DUPLICATE]


def test_near_copy_is_a_near_duplicate():
    assert ast_fingerprint(LONG) != ast_fingerprint(NEAR_COPY)
    assert reasons_of(LONG, NEAR_COPY, GOOD) == [None, NEAR_DUPLICATE, None]


def test_only_passing_samples_take_part_in_dedup():
    undefined = GOOD.replace("return low", "return lower_bound")
    # A rejected first copy does not make the later good copy a duplicate.
    assert check_samples([sample(GOOD, finish_reason="length"), sample(GOOD)], with_filters()) == [TRUNCATED, None]
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


def test_ruff_runs_once_for_all_candidates(monkeypatch):
    calls = []
    real_run = subprocess.run

    def counting_run(*args, **kwargs):
        calls.append(args)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(ruff_module.subprocess, "run", counting_run)
    codes = [GOOD.replace("low", f"low{i}") for i in range(50)] + ["def clamp(:\n"] * 5
    reasons = check_samples([sample(code, index=i) for i, code in enumerate(codes)], with_filters())
    assert len(calls) == 1
    assert reasons.count(SYNTAX_ERROR) == 5


def test_no_ruff_process_when_nothing_passed_the_cheap_checks(monkeypatch):
    monkeypatch.setattr(lint, "ruff_check", lambda *a, **k: pytest.fail("ruff ran"))
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
    reasons += ["contaminated:humaneval", DUPLICATE, DUPLICATE, "exec_error:TypeError", NEAR_DUPLICATE]
    assert funnel(reasons) == {
        "generated": 13,
        "parsed": 11,
        "named": 10,
        "non_trivial": 8,
        "ruff_clean": 7,
        "uncontaminated": 6,
        "unique": 4,
        "near_unique": 3,
        "tested": 2,
        "unique_across_shards": 2,
    }
    assert list(funnel(reasons, across_shards=1).items())[-2:] == [("tested", 2), ("unique_across_shards", 1)]
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
    deep = "def clamp(x):\n    return " + "~" * 1000 + "x\n"
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
        near = own(base).replace("    return ", "    return 1 + ")
        codes.append([own(base), RENAMED, own(base), near, "def clamp(:\n", GOOD + "x = undefined\n"][i % 6])
    return [sample(code, index=i) for i, code in enumerate(codes)]


@pytest.mark.parametrize("workers", [2, 3])
def test_worker_processes_give_the_same_reasons(monkeypatch, workers):
    data = varied_samples(90)
    monkeypatch.setattr(process_pool, "CHUNK_SIZE", 7)
    monkeypatch.setattr(process_pool, "worker_count", lambda items: 0)
    serial = check_samples(data, with_filters())
    assert {DUPLICATE, NEAR_DUPLICATE, SYNTAX_ERROR, "ruff:F821", None} <= set(serial)
    monkeypatch.setattr(process_pool, "worker_count", lambda items: workers)
    assert check_samples(data, with_filters()) == serial


def test_dedup_in_workers_gives_the_same_result(monkeypatch):
    items = [(str(s.sample_index), s.code) for s in varied_samples(60)]
    params = {"threshold": 0.8, "num_perm": 128, "ngram": 5}
    monkeypatch.setattr(process_pool, "CHUNK_SIZE", 7)
    serial = exact_duplicates(items), near_duplicates(items, **params)
    monkeypatch.setattr(process_pool, "PARALLEL_MIN_ITEMS", 0)
    monkeypatch.setattr(process_pool.os, "sched_getaffinity", lambda pid: {0, 1})
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
    # the last is the first under another name: its own name does not make it new
    assert check_samples(data, with_filters()) == [None, "ruff:F821", DUPLICATE, "ruff:F821", DUPLICATE, DUPLICATE]
    assert len(parsed) == 3


class Seen(base.Check):
    """Records the samples it is asked about; drops those whose code contains its word."""

    stage, reasons = "tested", ("failed_test",)
    rule = "execute_tests"

    def __init__(self, word: str) -> None:
        self.word, self.seen = word, []

    @classmethod
    def build(cls, cfg, inputs):
        return cls(inputs["word"])

    def check(self, samples, prepared):
        self.seen.append([s.sample_index for s in samples])
        return ["failed_test" if self.word in s.code else None for s in samples]


def test_each_check_sees_only_the_samples_still_alive():
    later = Seen("seen")
    distinct = "def clamp(xs):\n    seen = set()\n    for x in xs:\n        seen.add(x * 3)\n    return sorted(seen)\n"
    data = [sample(code, index=i) for i, code in enumerate([GOOD, "def clamp(:\n", RENAMED, LONG, distinct])]
    reasons = base.run_checks([*checks.checks_for("filter_code", with_filters()), later], data)
    assert reasons == [None, SYNTAX_ERROR, DUPLICATE, None, "failed_test"]
    assert later.seen == [[0, 3, 4]]


class Batches(base.Check):
    """Prepares each sample's index, recording how many samples each `prepare` call got; drops odd indexes."""

    stage, reasons = "tested", ("odd",)

    def __init__(self, reads_trees: bool) -> None:
        self.reads_trees, self.sizes = reads_trees, []

    def prepare(self, parsed):
        self.sizes.append(len(parsed))
        return [int(p.func_name.removeprefix("f")) for p in parsed]

    def check(self, samples, prepared):
        assert prepared == [s.sample_index for s in samples]  # rows line up with the samples still alive
        return ["odd" if i % 2 else None for i in prepared]


def test_checks_that_read_no_trees_prepare_a_whole_chunk_the_others_a_few_samples(monkeypatch):
    monkeypatch.setattr(process_pool, "CHUNK_SIZE", 25)
    monkeypatch.setattr(process_pool, "worker_count", lambda items: 0)
    data = [sample(f"def f{i}(x):\n    return x + {i}\n", func_name=f"f{i}", index=i) for i in range(60)]
    few, whole = Batches(reads_trees=True), Batches(reads_trees=False)
    assert base.run_checks([few, whole], data) == [None if i % 2 == 0 else "odd" for i in range(60)]
    assert whole.sizes == [25, 25, 10]
    assert max(few.sizes) == base.TREES_AT_ONCE < 25 and sum(few.sizes) == 60


def test_a_check_answering_an_undeclared_reason_is_a_bug():
    class Sloppy(base.SampleCheck):
        stage, reasons = "parsed", ("truncated",)

        def reason(self, sample):
            return "cut_off"

    with pytest.raises(RuntimeError, match="Sloppy answered 'cut_off'"):
        base.run_checks([Sloppy()], [sample(GOOD)])


def test_each_rule_runs_its_slice_and_the_funnel_is_the_whole_list(monkeypatch):
    monkeypatch.setattr(checks, "STAGE_B", (*checks.STAGE_B, Seen))
    filter_code = checks.checks_for("filter_code", with_filters())
    assert not any(isinstance(c, Seen) for c in filter_code)
    (built,) = checks.checks_for("execute_tests", with_filters(), {"word": "lower_bound"})  # PassesTests: never run
    assert built.word == "lower_bound"
    assert checks.funnel_stages()[-2:] == ["tested", "unique_across_shards"]
    assert funnel([None, "failed_test", DUPLICATE]) == {
        "generated": 3, "parsed": 3, "named": 3, "non_trivial": 3, "ruff_clean": 3, "uncontaminated": 3,
        "unique": 2, "near_unique": 2, "tested": 1, "unique_across_shards": 1,
    }  # fmt: skip


def test_switched_off_checks_are_left_out_but_keep_their_funnel_stage():
    cfg = with_filters(Filters(enable_ast=False, enable_ruff=False, dedup=Dedup(exact=False, near=False)))
    assert [type(c).__name__ for c in checks.checks_for("filter_code", cfg)] == ["Truncated", "Length"]
    assert funnel([None]) == dict.fromkeys(checks.funnel_stages(), 1)


def test_checks_of_one_stage_are_neighbours_in_the_list():
    stages = [cls.stage for cls in checks.STAGE_B]
    runs = [stage for i, stage in enumerate(stages) if i == 0 or stages[i - 1] != stage]
    assert len(runs) == len(set(runs)), f"a stage is split by another: {stages}"
    for cls in checks.STAGE_B:
        for reason in cls.reasons:
            assert checks.funnel_stage(reason + "X" if reason.endswith(":") else reason)
