"""The last stage of stage B: the reasons a candidate is not chosen after running the description's tests.

`verdict` judges one function on its assertions (a lone candidate, or `tests.selection: per_function`): it passes
with at least `execution.min_passed` of them and at least `execution.min_pass_rate` of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from evoselfcode.config import Config, Execution
from evoselfcode.datagen.checks.base import Check

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


class PassesTests(Check):
    """The funnel's `tested` stage and its reasons; `pipeline/selection.py` decides it, per description.

    A description's candidates are judged together (every candidate against every test), which a check of one
    shard's samples in a row cannot do, so this check is declared for the funnel and never run by `run_checks`.
    """

    stage, rule = "tested", "execute_tests"
    reasons = (NO_TESTS, TOO_FEW_TESTS, TESTS_FAILED, EXEC_TIMEOUT, EXEC_ERROR, TESTS_REQUEST_FAILED, OUTVOTED,
               NO_EVIDENCE)  # fmt: skip

    @classmethod
    def build(cls, cfg: Config, inputs: Mapping[str, str]) -> Check | None:
        return None
