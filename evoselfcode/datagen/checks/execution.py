"""The last stage-B check: each function runs with the assertions parsed from the model's tests, in bubblewrap.

A function passes when at least `execution.min_passed` of its assertions pass and at least
`execution.min_pass_rate` of them. The rule `execute_tests` runs it (`pipeline/testgen.py`); the
check keeps, per sample, the assertions it ran and their outcomes, which the step writes out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evoselfcode.config import Config, Execution, Tests
from evoselfcode.datagen.checks.base import Check, Prepared
from evoselfcode.datagen.filters.asserts import parse_asserts
from evoselfcode.datagen.sandbox import Job, run_jobs
from evoselfcode.datagen.schemas import CodeTests

NO_TESTS = "no_tests"  # no assertion that parses, calls the function and can fail
TOO_FEW_TESTS = "too_few_tests"  # every assertion passed, but fewer than execution.min_passed
TESTS_FAILED = "tests_failed"
EXEC_TIMEOUT = "exec_timeout"
EXEC_ERROR = "exec_error:"  # + the exception type, e.g. exec_error:TypeError
TESTS_REQUEST_FAILED = "tests_request_failed"
# by agreement (pipeline/selection.py): another group of the description's candidates won; no group may win
OUTVOTED, NO_EVIDENCE = "outvoted", "no_evidence"


def verdict(outcomes: list[str], ex: Execution) -> str | None:
    """None when the function passes enough of its assertions; else the reason, from what most often went wrong."""
    passed = outcomes.count("pass")
    if outcomes and passed >= ex.min_passed and passed / len(outcomes) >= ex.min_pass_rate:
        return None
    if not outcomes:
        return NO_TESTS
    wrong = Counter(TESTS_FAILED if o == "fail" else EXEC_TIMEOUT if o == "timeout" else EXEC_ERROR + o[6:]
                    for o in outcomes if o != "pass")  # fmt: skip
    if not wrong:
        return TOO_FEW_TESTS
    return min(wrong, key=lambda reason: (-wrong[reason], reason))  # the commonest; a tie by name


@dataclass(frozen=True)
class TestRun:
    tests: list[str]  # the assertions that were run
    dropped: dict[str, int]  # assertions of the answers left out, per reason (filters/asserts.py)
    outcomes: list[str]  # per assertion: pass, fail, error:<Type>, timeout


class PassesTests(Check):
    """Runs each function with its model-written assertions in the sandbox; too few passing drops it."""

    stage, rule = "tested", "execute_tests"
    # the rule's reasons, those of tests.selection: agreement as well: the funnel's stage `tested` holds them all
    reasons = (NO_TESTS, TOO_FEW_TESTS, TESTS_FAILED, EXEC_TIMEOUT, EXEC_ERROR, TESTS_REQUEST_FAILED, OUTVOTED,
               NO_EVIDENCE)  # fmt: skip

    def __init__(self, tests: Tests, execution: Execution, workers: int = 1) -> None:
        self.tests, self.execution, self.workers = tests, execution, workers
        self.runs: list[TestRun] = []  # of the samples of the last `check`, in order

    @classmethod
    def build(cls, cfg: Config, inputs: Mapping[str, str]) -> Check | None:
        return cls(cfg.tests, cfg.execution) if cfg.tests.enabled else None

    def check(self, samples: Sequence[CodeTests], prepared: Prepared) -> list[str | None]:
        parsed = [parse_asserts(s.answers, s.func_name, self.tests.max_asserts, s.code) for s in samples]
        jobs = [Job(s.code, tuple(tests)) for s, (tests, _) in zip(samples, parsed, strict=True)]
        results = run_jobs(jobs, self.execution, self.workers)
        self.runs = [TestRun(tests, dict(sorted(dropped.items())), outcomes)
                     for (tests, dropped), outcomes in zip(parsed, results, strict=True)]  # fmt: skip
        return [TESTS_REQUEST_FAILED if s.error else verdict(run.outcomes, self.execution)
                for s, run in zip(samples, self.runs, strict=True)]  # fmt: skip
