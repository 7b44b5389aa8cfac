"""The tests stage: test prompts, parsing the model's asserts, the pass verdict, and execution in the real sandbox."""

import ast
from collections import Counter

import pytest
from fakeserver import FakeServer, Options

from evoselfcode.clients import make_client
from evoselfcode.config import Config, Execution
from evoselfcode.datagen.assertions import parse_asserts
from evoselfcode.datagen.checks.execution import (
    EXEC_TIMEOUT,
    NO_TESTS,
    TESTS_FAILED,
    TOO_FEW_TESTS,
    verdict,
)
from evoselfcode.datagen.pipeline.driver import run_stage
from evoselfcode.datagen.pipeline.store import AnswerStore
from evoselfcode.datagen.pipeline.testgen import TESTS, descriptions_to_test, requests_for_tests
from evoselfcode.datagen.prompts import code_prompt, head_of_tests, parameters
from evoselfcode.datagen.schemas import CodeRecord, CodeSample

CLAMP = 'def clamp(value, low, high):\n    """Clamp value into [low, high]."""\n    return max(low, min(value, high))\n'


def record(code: str = CLAMP, name: str = "clamp", index: int = 0) -> CodeRecord:
    return CodeRecord(desc="Clamp a value into a range.", func_name=name, source="L2R", code=code,
                      meta={"params": {}, "seed": 1, "desc_id": "d1", "sample_index": index})  # fmt: skip


def sample(code: str = CLAMP, name: str = "clamp", desc_id: str = "d1", index: int = 0) -> CodeSample:
    return CodeSample(desc_id=desc_id, desc="Clamp a value into a range.", func_name=name, source="L2R",
                      sample_index=index, seed=1, completion=code, code=code)  # fmt: skip


def test_the_test_prompt_shows_the_description_and_a_signature_but_no_candidate_body():
    cfg = Config()
    (todo,) = descriptions_to_test([sample(), sample(CLAMP.replace("min(", "sorted(["), index=1)])
    (request,) = requests_for_tests([todo], cfg)
    start = code_prompt("Clamp a value into a range.", "clamp", cfg.codegen).removesuffix("def clamp(")
    assert request.prompt.startswith(start + "def clamp(value, low, high):\n")
    assert "return max" not in request.prompt and "sorted" not in request.prompt
    assert request.prompt.endswith("\nassert clamp(value=")


def test_one_test_request_per_description_with_a_candidate_and_the_commonest_name():
    clip = sample(desc_id="d2", name="clip", code=CLAMP.replace("clamp", "clip"))
    todo = descriptions_to_test(
        [clip, sample(desc_id="d1"), sample(desc_id="d2", index=1), sample(desc_id="d2", index=2)]
    )
    assert [(t.desc_id, t.func_name) for t in todo] == [("d1", "clamp"), ("d2", "clamp")]


def test_asserts_are_kept_when_they_parse_call_the_function_and_can_fail():
    text = "\n".join([
        "assert clamp(5, 0, 3) == 3",
        "assert clamp(5, 0, 3) == clamp(5, 0, 3)",  # a call compared with itself
        "assert True",
        "assert 1 + 1 == 2",  # never calls clamp
        "x = clamp(1, 0, 2)",
        "assert clamp(5, 0, 3) == 3",  # again
        "assert clamp(-1, 0, 3) == [",
        "    0][0]",
        "assert clamp(1, 0,",  # cut off by max_new_tokens
    ])  # fmt: skip
    kept, dropped = parse_asserts([text], "clamp", limit=10)
    assert kept == ["assert clamp(5, 0, 3) == 3", "assert clamp(-1, 0, 3) == [0][0]"]
    assert dropped == Counter(cannot_fail=2, no_call=1, not_assert=1, duplicate=1, syntax_error=1)


def test_asserts_beyond_the_limit_are_dropped_and_samples_are_pooled():
    kept, dropped = parse_asserts(["assert f(1) == 1\nassert f(2) == 2", "assert f(2) == 2\nassert f(3) == 3"], "f", 2)
    assert kept == ["assert f(1) == 1", "assert f(2) == 2"]
    assert dropped == Counter(duplicate=1, over_limit=1)


def test_pooled_samples_take_turns_so_one_long_answer_does_not_fill_the_limit():
    # a small model's first answer often runs on with calls of the wrong type; the second is read too
    long = "\n".join(f"assert f({i}) == {i}" for i in range(5))
    kept, dropped = parse_asserts([long, "assert f([1, 2]) == 3\nassert f([]) == 0"], "f", 3)
    assert kept == ["assert f(0) == 0", "assert f([1, 2]) == 3", "assert f(1) == 1"]
    assert dropped == Counter(over_limit=4)


def test_turns_count_a_bad_line_where_it_stands_and_names_bound_by_an_earlier_kept_assertion():
    # a line that does not parse takes its answer's turn; a walrus binds for the assertions run after it
    kept, dropped = parse_asserts(["assert f(1) == 1\nassert f(2", "assert f(3) == 3\nassert f(4) == 4"], "f", 10)
    assert kept == ["assert f(1) == 1", "assert f(3) == 3", "assert f(4) == 4"]
    assert dropped == Counter(syntax_error=1)
    texts = ["assert f(y) == 1\nassert f((x := 2)) == 2", "assert f(x) == 3\nassert f((y := 1)) == 1"]
    kept, dropped = parse_asserts(texts, "f", 10, code="def f(v):\n    return v")
    assert kept == ["assert f((x := 2)) == 2", "assert f((y := 1)) == 1"]
    assert dropped == Counter(undefined_name=2)


def test_asserts_with_a_name_nothing_defines_are_dropped():
    code = "\n".join([
        "import math", "from collections import Counter as C", "LIMIT = 3",
        "def helper(x):", "    global SEEN", "    return x",
        "def f(xs):", "    return xs",
    ])  # fmt: skip
    text = "\n".join([
        "assert f(xs) == expected",  # the parameter's name, and a value the model never wrote down
        "assert f([LIMIT]) == [helper(3)]",
        "assert f(math.pi) == math.pi and C() == {} and (SEEN is None)",
        "assert f(sorted([y for y in range(3)], key=lambda v: -v)) == [2, 1, 0]",
        "assert f((n := 2)) == n",
        "assert f(len('abc')) == 3",
        "assert f(items) == []",
    ])  # fmt: skip
    kept, dropped = parse_asserts([text], "f", limit=10, code=code)
    assert kept == [
        "assert f([LIMIT]) == [helper(3)]",
        "assert f(math.pi) == math.pi and C() == {} and (SEEN is None)",
        "assert f(sorted([y for y in range(3)], key=lambda v: -v)) == [2, 1, 0]",
        "assert f((n := 2)) == n",
        "assert f(len('abc')) == 3",
    ]
    assert dropped == Counter(undefined_name=2)
    # without the code (or with code that star-imports), names are not checked
    assert len(parse_asserts([text], "f", limit=10)[0]) == 7
    assert len(parse_asserts([text], "f", limit=10, code="from math import *\n" + code)[0]) == 7


def test_asserts_that_are_always_true_cannot_fail():
    text = "\n".join([
        "assert (clamp(5, 0, 3) == 3, 'clamps')",  # a tuple: always true (Python warns about it)
        "assert [clamp(5, 0, 3)]",  # a non-empty list
        "assert clamp(5, 0, 3) == 4 or True",
        "assert lambda: clamp(5, 0, 3)",
        "assert (clamp(5, 0, 3) == 3), 'clamps'",  # parentheses around the test only: fine
        "assert clamp(5, 0, 3) or clamp(1, 0, 3)",  # can fail (both 0)
    ])  # fmt: skip
    kept, dropped = parse_asserts([text], "clamp", limit=10)
    assert kept == ["assert clamp(5, 0, 3) == 3, 'clamps'", "assert clamp(5, 0, 3) or clamp(1, 0, 3)"]
    assert dropped == Counter(cannot_fail=4)


def test_an_undefined_name_in_the_message_is_dropped_too():
    # a failing assertion would raise NameError from its message: exec_error:NameError instead of tests_failed
    text = "assert clamp(5, 0, 3) == 3, f'got {result}'\nassert clamp(5, 0, 3) == 3, 'ok'"
    kept, dropped = parse_asserts([text], "clamp", limit=10, code=CLAMP)
    assert kept == ["assert clamp(5, 0, 3) == 3, 'ok'"]
    assert dropped == Counter(undefined_name=1)


@pytest.mark.parametrize("depth", [600, 3000])  # too deep to print again; too deep to parse
def test_an_assertion_too_deep_for_the_parser_is_dropped_not_a_crash(depth):
    text = f"assert clamp({'-' * depth}1, 0, 3) == 0\nassert clamp(5, 0, 3) == 3"
    kept, dropped = parse_asserts([text], "clamp", limit=10, code=CLAMP)
    assert kept == ["assert clamp(5, 0, 3) == 3"]
    assert dropped == Counter(syntax_error=1)


def test_names_bound_by_match_or_an_earlier_kept_assertion_count_and_comprehension_variables_do_not():
    code = "\n".join([
        "SQUARES = [k * k for k in range(3)]",
        "match SQUARES:", "    case [first, *rest]:", "        pass", "    case {'a': 1, **others}:", "        pass",
        "def f(x):", "    return x",
    ])  # fmt: skip
    text = "\n".join([
        "assert f(first) == 0 and f(rest) == [1, 4]",
        "assert f(others) == {}",
        "assert f(k) == 2",  # k lives only inside the comprehension
        "assert (r := f(3)) == 3",
        "assert f(r) == 3",  # bound by the assertion before, in the same namespace
        "assert {**f({})}",  # may be an empty dict: it can fail
    ])  # fmt: skip
    kept, dropped = parse_asserts([text], "f", limit=10, code=code)
    assert kept == [
        "assert f(first) == 0 and f(rest) == [1, 4]",
        "assert f(others) == {}",
        "assert (r := f(3)) == 3",
        "assert f(r) == 3",
        "assert {**f({})}",
    ]
    assert dropped == Counter(undefined_name=1)


@pytest.mark.parametrize(
    ("outcomes", "reason"),
    [
        (["pass", "pass", "fail"], None),
        (["pass", "fail"], None),  # 0.5 is enough
        (["pass", "fail", "fail"], TESTS_FAILED),
        ([], NO_TESTS),
        (["timeout", "timeout", "fail"], EXEC_TIMEOUT),
        (["error:TypeError", "error:TypeError", "pass", "timeout", "fail"], "exec_error:TypeError"),
        (["error:ValueError", "fail"], "exec_error:ValueError"),  # a tie: the first by name
    ],
)
def test_verdict(outcomes, reason):
    assert verdict(outcomes, Execution()) == reason


def test_min_passed_counts_assertions_not_shares():
    assert verdict(["pass"], Execution(min_passed=2, min_pass_rate=0.1)) == TOO_FEW_TESTS
    assert verdict(["pass", "fail"], Execution(min_passed=2, min_pass_rate=0.1)) == TESTS_FAILED
    assert verdict(["pass", "pass", "fail", "fail", "fail"], Execution(min_passed=2, min_pass_rate=0.4)) is None


def test_generation_asks_once_per_description_with_its_own_seed_and_records_failures(tmp_path):
    bad = sample(CLAMP.replace("value, low", "value, low, ignored"), desc_id="d2")
    bad = bad.model_copy(update={"desc": "[[always:400]] Clamp a value."})
    with FakeServer(Options(seed=3)) as srv:
        cfg = Config.model_validate({"api": {"base_url": srv.url, "max_retries": 0}})
        client = make_client(cfg.api, base_url=srv.url, concurrency=4)
        todo = descriptions_to_test([sample(), sample(index=1), bad])
        result = run_stage(TESTS, todo, cfg, client, AnswerStore(tmp_path))
        asked = srv.stats()["requests"]
    tests, failures, timings = result.records, result.failures, result.timings
    assert asked == 2 and result.requests == 2 and result.from_store == 0
    assert [t.error for t in tests] == [None, "BadRequest"]
    assert tests[0].answers[0].startswith("assert clamp(value=") and tests[0].tokens > 0
    ast.parse(tests[0].answers[0].splitlines()[0])  # the head and the continuation make one statement
    assert [(f.stage, f.desc_id, f.func_name) for f in failures] == [("tests", "d2", "clamp")]
    assert [(t.desc_id, t.func_name, t.resumed) for t in timings] == [("d1", "clamp", False)]


def test_the_tests_head_names_the_first_parameter_a_call_can_fill_by_position():
    assert parameters("def f(a, /, b, *rest, c=1, **kw):") == ["a", "b"]
    assert head_of_tests("f", "def f(items, k=2):") == "assert f(items="
    assert head_of_tests("f", "def f(*items):") == head_of_tests("f", "def f(...):") == "assert f("
    assert head_of_tests("f", "def f(a, /, b):") == "assert f("  # `a` cannot be passed by keyword


def test_keyword_calls_become_positional_so_candidates_with_other_parameter_names_take_them():
    texts = [
        "assert f(xs=[1, 2], k=3) == 1\nassert f(k=3, xs=[5]) == 5\nassert f([1, 2], 3) == 1",
        "assert f(xs=[1], y=2) == 0\nassert g(f(xs=[f(xs=[2])])) == 2\nassert f([1], k=2) == 1",
    ]
    kept, dropped = parse_asserts(texts, "f", 10, params=["xs", "k"])
    assert kept == [
        "assert f([1, 2], 3) == 1",
        "assert f([1], y=2) == 0",  # `y`: not a parameter of the signature, as written
        "assert f([5], 3) == 5",
        "assert g(f([f([2])])) == 2",
        "assert f([1], 2) == 1",
    ]
    assert dropped == {"duplicate": 1}  # the third line of the first text, once the first reads by position
    assert parse_asserts(["assert f(k=3) == 1"], "f", 10, params=["xs", "k"])[0] == ["assert f(k=3) == 1"]


def test_only_the_keywords_that_fill_the_next_parameters_in_order_move():
    texts = [
        "assert f(xs=[1], reverse=True) == [1]\nassert f(xs=[1], **opts) == [1]\nassert f(*rows, k=1) == 0\n"
        "assert f(xs=1, xs=2) == 0\nassert f(1, xs=2) == 0"
    ]
    assert parse_asserts(texts, "f", 10, params=["xs", "k"])[0] == [
        "assert f([1], reverse=True) == [1]",  # after the gap, as written
        "assert f([1], **opts) == [1]",
        "assert f(*rows, k=1) == 0",  # where `k` lands is unknown
        "assert f(xs=1, xs=2) == 0",  # an error either way: kept for the candidates to fail
        "assert f(1, xs=2) == 0",
    ]
