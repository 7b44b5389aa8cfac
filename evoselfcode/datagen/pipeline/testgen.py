"""Stage B, validation by execution: the model writes tests for each checked function, which runs them in a sandbox.

`generate-tests` asks for assert-style tests (an LLM step like `generate-code`: journal, retries, failures,
progress); `execute-tests` runs the stage-B check of its rule (`checks/execution.py`: each function with its
assertions in bubblewrap) and writes the functions that pass with the assertions they passed.
"""

from __future__ import annotations

import logging
from collections import Counter

from evoselfcode.clients.base import CompletionClient
from evoselfcode.config import Config
from evoselfcode.datagen.checks import checks_for
from evoselfcode.datagen.checks.base import run_checks
from evoselfcode.datagen.pipeline.journal import Journal
from evoselfcode.datagen.pipeline.runner import Request, request_seed, run_requests, sampling_params
from evoselfcode.datagen.pipeline.steps import drop_journal, journal_for, write_generated
from evoselfcode.datagen.prompts import head_of_tests, prompt_for_tests
from evoselfcode.datagen.readers import read_models
from evoselfcode.datagen.schemas import CodeRecord, CodeTests, CodeTestsReject, Failure, RequestTiming
from evoselfcode.datagen.writers import write_jsonl

log = logging.getLogger("evoselfcode")


def _key(r: CodeRecord) -> tuple:
    return (r.meta.desc_id, r.func_name, r.meta.model_extra.get("sample_index", 0))


def requests_for_tests(records: list[CodeRecord], cfg: Config) -> list[Request]:
    t = cfg.tests
    return [
        Request(
            key=_key(r),
            prompt=prompt_for_tests(r.desc, r.func_name, r.code, cfg.codegen, t),
            params=sampling_params(t, request_seed(cfg.meta.seed, *_key(r), "tests")),
        )
        for r in records
    ]


def generate_tests(
    records: list[CodeRecord], cfg: Config, client: CompletionClient, journal: Journal | None = None
) -> tuple[list[CodeTests], list[Failure], list[RequestTiming]]:
    samples, failures, timings = [], [], []
    outcomes = run_requests(
        client, requests_for_tests(records, cfg), concurrency=cfg.io.concurrency, journal=journal, model=cfg.api.model
    )
    for record, out in zip(records, outcomes, strict=True):
        if out.error is not None:
            error = type(out.error).__name__
            failures.append(Failure(stage="tests", desc_id=record.meta.desc_id, func_name=record.func_name,
                                    sample_index=_key(record)[2], error=error, message=str(out.error)))  # fmt: skip
            samples.append(CodeTests(record=record, error=error))
            continue
        head = head_of_tests(record.func_name)
        tokens = sum(len(c.tokens) or c.usage.get("completion_tokens") or 0 for c in out.choices)
        samples.append(CodeTests(record=record, answers=[head + c.text for c in out.choices], tokens=tokens))
        timings.append(out.timing(record.meta.desc_id, record.source, record.func_name))
    return samples, failures, timings


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
            rejects.append(CodeTestsReject(desc_id=r.meta.desc_id, desc=r.desc, func_name=r.func_name, source=r.source,
                                           sample_index=_key(r)[2], code=r.code, tests=run.tests,
                                           outcomes=run.outcomes, test_tokens=s.tokens, reason=reason))  # fmt: skip
    return kept, rejects


def generate_tests_step(cfg: Config, client, kept: str, out_raw: str, out_failures: str, out_timing: str) -> None:
    records = read_models(kept, CodeRecord)
    journal = journal_for(out_raw)
    samples, failures, timings = generate_tests(records, cfg, client, journal)
    write_generated(cfg, "tests", len(records), samples, failures, timings, journal, out_raw, out_failures, out_timing)
    log.info("tests for %d functions, %d failed requests", len(records), len(failures))


def execute_tests_step(cfg: Config, raw: str, out_kept: str, out_rejects: str, workers: int) -> None:
    samples = read_models(raw, CodeTests)
    kept, rejects = execute_tests(samples, cfg, workers)
    write_jsonl(out_kept, kept)
    write_jsonl(out_rejects, rejects)
    drop_journal(raw)
    reasons = Counter(r.reason for r in rejects)
    log.info("kept %d of %d functions that passed their tests; rejected: %s", len(kept), len(samples), dict(reasons))
