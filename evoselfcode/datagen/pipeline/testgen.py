"""Stage B, validation by execution: the model writes tests for each checked function, which runs them in a sandbox.

`generate-tests` asks for assert-style tests (a model stage like `generate-code`, run by `driver.py`);
`execute-tests` runs the stage-B check of its rule (`checks/execution.py`: each function with its assertions
in bubblewrap) and writes the functions that pass with the assertions they passed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from evoselfcode.clients.base import Choice
from evoselfcode.config import Config
from evoselfcode.datagen.checks import checks_for
from evoselfcode.datagen.checks.base import run_checks
from evoselfcode.datagen.pipeline.driver import ModelStage, drop_private_store, open_store, run_stage, write_stage
from evoselfcode.datagen.pipeline.runner import Request, request_seed, sampling_params
from evoselfcode.datagen.prompts import head_of_tests, prompt_for_tests
from evoselfcode.datagen.readers import read_models
from evoselfcode.datagen.schemas import CodeRecord, CodeTests, CodeTestsReject
from evoselfcode.datagen.writers import write_jsonl

log = logging.getLogger("evoselfcode")


def _key(r: CodeRecord) -> tuple:
    return (r.meta.desc_id, r.func_name, r.meta.model_extra.get("sample_index", 0))


def requests_for_tests(records: Sequence[CodeRecord], cfg: Config) -> list[Request]:
    t = cfg.tests
    return [
        Request(
            key=_key(r),
            prompt=prompt_for_tests(r.desc, r.func_name, r.code, cfg.codegen, t),
            params=sampling_params(t, request_seed(cfg.meta.seed, *_key(r), "tests")),
            item=r,
        )
        for r in records
    ]


def _tests(request: Request, choices: list[Choice]) -> list[CodeTests]:
    record: CodeRecord = request.item
    head = head_of_tests(record.func_name)
    tokens = sum(len(c.tokens) or c.usage.get("completion_tokens") or 0 for c in choices)
    return [CodeTests(record=record, answers=[head + c.text for c in choices], tokens=tokens)]


def _about(request: Request) -> dict:
    r: CodeRecord = request.item
    return {"desc_id": r.meta.desc_id, "mode": r.source, "func_name": r.func_name, "sample_index": _key(r)[2]}


TESTS = ModelStage(
    name="tests",
    requests=requests_for_tests,
    records=_tests,
    about=_about,
    failed_records=lambda r, exc: [CodeTests(record=r.item, error=type(exc).__name__)],  # execution rejects it
)


def execute_tests(
    samples: list[CodeTests], cfg: Config, workers: int
) -> tuple[list[CodeRecord], list[CodeTestsReject]]:
    """The functions that pass their tests (the check `PassesTests`), with them; the others with their reason."""
    (check,) = checks_for("execute_tests", cfg)
    check.workers = workers
    reasons = run_checks([check], samples)
    kept, rejects = [], []
    for s, run, reason in zip(samples, check.runs, reasons, strict=True):
        r = s.record
        if reason is None:
            counts = {"passed": run.outcomes.count("pass"), "run": len(run.outcomes),
                      "outcomes": dict(sorted(Counter(run.outcomes).items())), "dropped": run.dropped,
                      "completion_tokens": s.tokens}  # fmt: skip
            passing = [t for t, o in zip(run.tests, run.outcomes, strict=True) if o == "pass"]
            kept.append(r.model_copy(update={"meta": r.meta.model_copy(update={"tests": counts}), "tests": passing}))
        else:
            rejects.append(CodeTestsReject(desc_id=r.meta.desc_id, func_name=r.func_name, source=r.source,
                                           sample_index=_key(r)[2], code=r.code, tests=run.tests,
                                           outcomes=run.outcomes, test_tokens=s.tokens, reason=reason))  # fmt: skip
    return kept, rejects


def generate_tests_step(cfg: Config, client, kept: str, out_raw: str, out_failures: str, out_timing: str) -> None:
    records = read_models(kept, CodeRecord)
    result = run_stage(TESTS, records, cfg, client, open_store(cfg, out_raw))
    write_stage(cfg, TESTS, result, {"raw": out_raw, "failures": out_failures, "timing": out_timing})
    log.info("tests for %d functions, %d failed requests", len(records), len(result.failures))


def execute_tests_step(cfg: Config, raw: str, out_kept: str, out_rejects: str, workers: int) -> None:
    samples = read_models(raw, CodeTests)
    kept, rejects = execute_tests(samples, cfg, workers)
    write_jsonl(out_kept, kept)
    write_jsonl(out_rejects, rejects)
    drop_private_store(raw)
    reasons = Counter(r.reason for r in rejects)
    log.info("kept %d of %d functions that passed their tests; rejected: %s", len(kept), len(samples), dict(reasons))
