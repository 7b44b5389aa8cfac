"""Selection of a description's functions from its tests, run in the real sandbox (pipeline/selection.py)."""

import json
import re

from evoselfcode.config import Config, Execution
from evoselfcode.datagen.checks import funnel_stage
from evoselfcode.datagen.checks.execution import NO_EVIDENCE, OUTVOTED
from evoselfcode.datagen.pipeline.selection import execute_tests_step, select, shard_stats
from evoselfcode.datagen.prompts import prompt_for_desc_tests, signature_for
from evoselfcode.datagen.schemas import CodeRecord, CodeReject, DescSelection, DescTests
from evoselfcode.datagen.writers import write_jsonl

FAST = Execution(timeout_s=2.0, cpu_s=4, memory_mb=256)
CFG = Config(execution=FAST)
PER_FUNCTION = CFG.model_copy(update={"tests": CFG.tests.model_copy(update={"selection": "per_function"})})
DESC = "Return the factorial of n."
RIGHT = "def factorial(n):\n    return 1 if n <= 1 else n * factorial(n - 1)\n"
RIGHT_LOOP = "def fact(n):\n    r = 1\n    for i in range(2, n + 1):\n        r *= i\n    return r\n"
OFF = "def factorial(n):\n    return n * (n - 1) if n > 1 else 1\n"  # right up to 3 only
# the model's tests: right, right, wrong (5! is 120), trivial for identity (1! == 1)
TESTS = "assert factorial(3) == 6\nassert factorial(4) == 24\nassert factorial(5) == 100\nassert factorial(1) == 1"


def record(code: str, index: int, desc_id: str = "d1") -> CodeRecord:
    name = re.search(r"def (\w+)", code)[1]
    return CodeRecord(desc=DESC, func_name=name, source="L2R", code=code,
                      meta={"params": {}, "seed": 1, "desc_id": desc_id, "sample_index": index})  # fmt: skip


def duplicate(code: str, index: int, reason: str = "duplicate", desc_id: str = "d1") -> CodeReject:
    name = re.search(r"def (\w+)", code)[1]
    return CodeReject(desc_id=desc_id, desc=DESC, func_name=name, source="L2R", sample_index=index, seed=1,
                      completion=code, code=code, reason=reason)  # fmt: skip


def model_tests(text: str = TESTS, desc_id: str = "d1", error: str | None = None) -> DescTests:
    return DescTests(desc_id=desc_id, desc=DESC, func_name="factorial", signature="def factorial(n):",
                     answers=[text], tokens=40, error=error)  # fmt: skip


def test_the_larger_agreeing_group_wins_with_duplicates_as_votes_and_another_name_bound_to_the_tests():
    wrong_but_agrees_with_its_test = "def factorial(n):\n    return 100 if n == 5 else [1, 1, 2, 6, 24][n]\n"
    kept = [record(OFF, 0), record(wrong_but_agrees_with_its_test, 1), record(RIGHT_LOOP, 2)]
    dups = [duplicate(RIGHT, 3), duplicate(RIGHT, 4, "near_duplicate"), duplicate(OFF, 5, "too_short")]
    chosen, rejects, [stats] = select(kept, dups, [model_tests()], CFG, workers=2)
    # fact (named otherwise, bound to factorial) agrees with its two duplicates of another body: 3 votes
    assert [r.func_name for r in chosen] == ["fact"]
    assert chosen[0].tests == ["assert fact(3) == 6", "assert fact(4) == 24"]  # its name; the wrong one left out
    meta = chosen[0].meta.tests
    assert (meta["group_size"], meta["candidates"], meta["groups"], meta["passed"]) == (3, 5, 3, 2)
    assert meta["evidence"] == "asserts" and meta["wrong"] == 0 and meta["non_discriminating"] == 1
    assert {(r.sample_index, r.reason) for r in rejects} == {(0, OUTVOTED), (1, OUTVOTED)}  # duplicates: no rejects
    assert funnel_stage(OUTVOTED) == funnel_stage(NO_EVIDENCE) == "tested"  # merge-code's funnel knows them
    assert all(len(r.outcomes) == len(r.values) == 4 for r in rejects)
    assert stats.candidates == 5 and stats.duplicates == 2 and stats.winner_size == 3 and stats.kept == 1
    assert stats.non_discriminating == 1 and stats.reason is None


def test_a_right_function_alone_is_kept_against_a_wrong_assertion_when_others_disagree():
    # per function, the wrong assertion costs the right one; by agreement, nobody passes it: it does not count
    wrong_test = "assert factorial(3) == 6\nassert factorial(5) == 100\nassert factorial(6) == 700"
    kept = [record(RIGHT, 0), record(OFF, 1)]
    chosen, rejects, [stats] = select(kept, [], [model_tests(wrong_test)], CFG, workers=1)
    assert [r.meta.sample_index for r in chosen] == [0] and [r.reason for r in rejects] == [OUTVOTED]
    assert stats.wrong == 2 and stats.winner_passed == 1
    chosen, rejects, _ = select(kept, [], [model_tests(wrong_test)], PER_FUNCTION, workers=1)
    assert chosen == [] and {r.reason for r in rejects} == {"tests_failed"}  # 1 of 3 passed: below min_pass_rate


def test_a_function_whose_parameters_do_not_fit_the_calls_fails_them():
    two_args = "def factorial(n, acc):\n    return acc\n"
    chosen, rejects, _ = select([record(RIGHT, 0), record(two_args, 1)], [], [model_tests()], CFG, workers=1)
    assert [r.meta.sample_index for r in chosen] == [0]
    assert rejects[0].outcomes == ["error:TypeError"] * 4 and rejects[0].reason == OUTVOTED


def test_calls_by_the_prompts_keyword_reach_candidates_that_name_the_parameter_otherwise():
    # the prompt ends `assert factorial(n=`; a candidate's own parameter is `k`
    by_keyword = "assert factorial(n=3) == 6\nassert factorial(n=4) == 24\nassert factorial(5) == 120"
    other_name = "def factorial(k):\n    return 1 if k <= 1 else k * factorial(k - 1)\n"
    chosen, _, [stats] = select([record(other_name, 0), record(OFF, 1)], [], [model_tests(by_keyword)], CFG, 1)
    assert [r.meta.sample_index for r in chosen] == [0]
    assert chosen[0].tests == ["assert factorial(3) == 6", "assert factorial(4) == 24", "assert factorial(5) == 120"]
    assert stats.wrong == 0 and stats.winner_passed == 3


def test_hostile_candidates_are_outvoted_and_the_selection_goes_on():
    hostile = [
        "def factorial(n):\n    while True:\n        pass\n",
        "import os, signal\ndef factorial(n):\n    os.kill(1, signal.SIGKILL)\n    return 6\n",
        "def factorial(n):\n    import os\n    return os.environ.get('HOME') or 6\n",
    ]
    kept = [record(code, i) for i, code in enumerate(hostile)] + [record(RIGHT, 3)]
    chosen, rejects, _ = select(kept, [], [model_tests()], CFG, workers=2)
    assert [r.meta.sample_index for r in chosen] == [3]
    outcomes = {r.sample_index: r.outcomes for r in rejects}
    assert outcomes[0] == ["timeout"] * 4 and outcomes[2][0] == "pass"  # no HOME in the sandbox: it returns 6


def test_when_every_expected_value_is_wrong_candidates_agreeing_on_the_values_win():
    all_wrong = "assert factorial(4) == 25\nassert factorial(5) == 100\nassert factorial(3) == 7"
    kept = [record(OFF, 0), record(RIGHT, 1), record(RIGHT_LOOP, 2)]
    chosen, rejects, [stats] = select(kept, [], [model_tests(all_wrong)], CFG, workers=1)
    assert [(r.func_name, r.meta.sample_index) for r in chosen] == [("fact", 2), ("factorial", 1)]
    assert chosen[0].tests == [] and chosen[0].meta.tests["evidence"] == "values"  # no assertion to keep with them
    assert [(r.sample_index, r.reason, r.group_size) for r in rejects] == [(0, OUTVOTED, 1)]
    assert stats.wrong == 3 and stats.winner_size == 2 and stats.winner_score == 0


def test_without_evidence_nothing_is_kept():
    # two functions that disagree, and tests only a trivial function passes as well
    identity_test = "assert factorial(1) == 1"
    kept = [record(RIGHT, 0), record(OFF, 1)]
    chosen, rejects, [stats] = select(kept, [], [model_tests(identity_test)], CFG, workers=1)
    assert chosen == [] and {r.reason for r in rejects} == {NO_EVIDENCE}
    assert stats.non_discriminating == 1 and stats.reason == NO_EVIDENCE


def test_a_single_candidate_is_kept_against_wrong_assertions_by_agreement_but_not_per_function():
    # what a lone function fails, no candidate passes: the tests' mistakes by agreement, its failures per function
    wrong_test = "assert factorial(3) == 6\nassert factorial(5) == 100\nassert factorial(6) == 700"
    chosen, _, [stats] = select([record(RIGHT, 0)], [], [model_tests(wrong_test)], CFG, workers=1)
    assert chosen[0].tests == ["assert factorial(3) == 6"] and stats.evidence == "single" and stats.wrong == 2
    assert chosen[0].meta.tests["passed"] == 1 and chosen[0].meta.tests["run"] == 3
    chosen, rejects, [stats] = select([record(RIGHT, 0)], [], [model_tests(wrong_test)], PER_FUNCTION, workers=1)
    assert chosen == [] and rejects[0].reason == "tests_failed" and stats.reason == "tests_failed"
    zero = "def factorial(n):\n    return 0\n"
    chosen, rejects, _ = select([record(zero, 0)], [], [model_tests(wrong_test)], CFG, workers=1)
    assert chosen == [] and rejects[0].reason == "tests_failed"  # it passes none: below execution.min_passed


def test_a_single_candidate_is_judged_by_its_own_tests():
    chosen, _, [stats] = select([record(RIGHT, 0)], [], [model_tests()], CFG, workers=1)
    assert chosen[0].tests == ["assert factorial(3) == 6", "assert factorial(4) == 24"]  # 1! == 1 tells nothing
    assert stats.evidence == "single" and stats.wrong == 1


def test_a_single_candidate_counts_the_assertions_trivial_functions_pass_but_needs_one_they_fail():
    # 1! == 1 and 2! == 2 pass for a function returning its argument too; 3! == 6 does not; two wrong ones
    asserts = "assert factorial(1) == 1\nassert factorial(2) == 2\nassert factorial(3) == 6\n"
    wrong = "assert factorial(5) == 100\nassert factorial(6) == 700"
    chosen, _, [stats] = select([record(RIGHT, 0)], [], [model_tests(asserts + wrong)], CFG, workers=1)
    assert chosen[0].tests == ["assert factorial(3) == 6"]  # 3 of 5 passed; only the usable one is kept with it
    tests = chosen[0].meta.tests
    assert (tests["passed"], tests["run"], tests["usable_passed"]) == (3, 5, 1) and stats.evidence == "single"
    trivial_only = "assert factorial(1) == 1\nassert factorial(2) == 2\nassert factorial(5) == 100"
    chosen, rejects, [stats] = select([record(RIGHT, 0)], [], [model_tests(trivial_only)], CFG, workers=1)
    assert chosen == [] and rejects[0].reason == NO_EVIDENCE and stats.reason == NO_EVIDENCE
    chosen, _, _ = select([record(RIGHT, 0)], [], [model_tests(trivial_only)], PER_FUNCTION, workers=1)
    assert len(chosen) == 1  # per_function asks for no evidence beyond the pass rate


def test_failed_or_missing_or_empty_tests_reject_every_candidate_with_a_reason():
    kept = [record(RIGHT, 0), record(RIGHT, 0, "d2"), record(RIGHT, 0, "d3")]
    desc_tests = [model_tests(error="Timeout"), model_tests("assert True\nprint(1)", desc_id="d2")]
    chosen, rejects, stats = select(kept, [], desc_tests, CFG, workers=1)
    assert chosen == []
    assert [(r.desc_id, r.reason) for r in rejects] == [("d1", "tests_request_failed"), ("d2", "no_tests"),
                                                        ("d3", "no_tests")]  # fmt: skip
    assert stats[1].dropped == {"cannot_fail": 1, "not_assert": 1}


def test_same_inputs_same_bytes_and_the_shard_stats(tmp_path):
    kept = [record(RIGHT, 0), record(OFF, 1), record(RIGHT_LOOP, 2), record(RIGHT, 0, "d2")]
    paths = {n: tmp_path / f"{n}.jsonl" for n in ("kept", "rejects", "tests")}
    write_jsonl(paths["kept"], reversed(kept))  # the input's order does not matter
    write_jsonl(paths["rejects"], [duplicate(OFF, 3)])
    write_jsonl(paths["tests"], [model_tests(), model_tests(desc_id="d2")])
    outputs = []
    for workers, run in ((1, "a"), (2, "b")):
        outs = [tmp_path / f"{run}-{n}.jsonl" for n in ("kept", "rejects", "stats")]
        execute_tests_step(CFG, kept=paths["kept"], static_rejects=paths["rejects"], tests=paths["tests"], out=outs[0],
                           rejects=outs[1], selection=outs[2], workers=workers)  # fmt: skip
        outputs.append([p.read_bytes() for p in outs])
    assert outputs[0] == outputs[1]
    stats = [json.loads(line) for line in outputs[0][2].decode().splitlines()]
    summary = shard_stats([DescSelection(**s) for s in stats], "agreement")
    assert summary.descriptions == 2 and summary.candidates == 4 and summary.kept == 3
    assert summary.candidates_per_description == {"1": 1, "4": 1} and summary.winner_sizes == {"1": 1, "2": 1}
    assert summary.evidence == {"asserts": 1, "single": 1} and summary.non_discriminating == 2


def test_the_desc_tests_prompt_shows_the_signature_and_the_description_but_no_body():
    candidates = [record("@cache\ndef fact(n: int,\n         base=1) -> int:\n    return base\n", 0),
                  record(RIGHT, 1), record(OFF, 2)]  # fmt: skip
    name, signature = signature_for(candidates)
    assert (name, signature) == ("factorial", "def factorial(n):")
    assert signature_for(candidates[:1]) == ("fact", "def fact(n: int, base=1) -> int:")
    prompt = prompt_for_desc_tests(DESC, name, signature, CFG.codegen, CFG.tests)
    assert prompt.endswith(f'def factorial(n):\n    """{DESC}"""\n    ...\n\n\n# Check that factorial does what the '
                           "task above asks, one assert per line:\nassert factorial(n=")  # fmt: skip
    assert "return" not in prompt
    assert prompt.count(DESC) == 2  # the code prompt's comment, then the docstring
