"""Stage B, validation by execution: the model writes tests for each checked function, which runs them in a sandbox.

`generate-tests` asks for assert-style tests (an LLM step like `generate-code`: journal, retries, failures,
progress); `execute-tests` parses them into single assertions, runs each function with its own in bubblewrap
(`datagen/sandbox.py`) and keeps those that pass `execution.min_passed` assertions and at least
`execution.min_pass_rate` of them, with the assertions they passed.
"""

from __future__ import annotations

import logging
from collections import Counter

from evoselfcode.clients.base import CompletionClient
from evoselfcode.config import Config, Execution
from evoselfcode.datagen.filters.asserts import parse_asserts
from evoselfcode.datagen.pipeline.journal import Journal
from evoselfcode.datagen.pipeline.runner import Request, check_failure_budget, request_seed, run_requests
from evoselfcode.datagen.pipeline.steps import drop_journal, journal_for
from evoselfcode.datagen.prompts import head_of_tests, prompt_for_tests
from evoselfcode.datagen.readers import read_models
from evoselfcode.datagen.sandbox import Job, run_jobs
from evoselfcode.datagen.schemas import CodeRecord, CodeTests, CodeTestsReject, Failure, RequestTiming
from evoselfcode.datagen.writers import write_jsonl

log = logging.getLogger("evoselfcode")

NO_TESTS = "no_tests"  # no assertion that parses, calls the function and can fail
TESTS_FAILED = "tests_failed"
TOO_FEW_TESTS = "too_few_tests"  # every assertion passed, but fewer than execution.min_passed
EXEC_TIMEOUT = "exec_timeout"
EXEC_ERROR_PREFIX = "exec_error:"
TESTS_REQUEST_FAILED = "tests_request_failed"


def _key(r: CodeRecord) -> tuple:
    return (r.meta.desc_id, r.func_name, r.meta.model_extra.get("sample_index", 0))


def requests_for_tests(records: list[CodeRecord], cfg: Config) -> list[Request]:
    t = cfg.tests
    return [
        Request(
            key=_key(r),
            prompt=prompt_for_tests(r.desc, r.func_name, r.code, cfg.codegen, t),
            params=dict(
                max_tokens=t.max_new_tokens,
                temperature=t.temperature,
                top_p=t.top_p,
                n=t.n,
                stop=t.stop,
                seed=request_seed(cfg.meta.seed, *_key(r), "tests"),
            ),
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


def verdict(outcomes: list[str], ex: Execution) -> str | None:
    """None when the function passes enough of its assertions; else the reason, from what most often went wrong."""
    passed = outcomes.count("pass")
    if outcomes and passed >= ex.min_passed and passed / len(outcomes) >= ex.min_pass_rate:
        return None
    if not outcomes:
        return NO_TESTS
    wrong = Counter(TESTS_FAILED if o == "fail" else EXEC_TIMEOUT if o == "timeout" else EXEC_ERROR_PREFIX + o[6:]
                    for o in outcomes if o != "pass")  # fmt: skip
    if not wrong:
        return TOO_FEW_TESTS
    return min(wrong, key=lambda reason: (-wrong[reason], reason))


def execute_tests(
    samples: list[CodeTests], cfg: Config, workers: int
) -> tuple[list[CodeRecord], list[CodeTestsReject]]:
    parsed = [parse_asserts(s.answers, s.record.func_name, cfg.tests.max_asserts) for s in samples]
    results = run_jobs([Job(s.record.code, tuple(tests)) for s, (tests, _) in zip(samples, parsed, strict=True)],
                       cfg.execution, workers)  # fmt: skip
    kept, rejects = [], []
    for s, (tests, dropped), outcomes in zip(samples, parsed, results, strict=True):
        reason = TESTS_REQUEST_FAILED if s.error else verdict(outcomes, cfg.execution)
        r = s.record
        if reason is None:
            counts = {"passed": outcomes.count("pass"), "run": len(outcomes),
                      "outcomes": dict(sorted(Counter(outcomes).items())), "dropped": dict(sorted(dropped.items())),
                      "completion_tokens": s.tokens}  # fmt: skip
            passing = [t for t, o in zip(tests, outcomes, strict=True) if o == "pass"]
            meta = r.meta.model_copy(update={"tests": counts})
            kept.append(r.model_copy(update={"meta": meta, "tests": passing}))
        else:
            rejects.append(CodeTestsReject(desc_id=r.meta.desc_id, func_name=r.func_name, source=r.source,
                                      sample_index=_key(r)[2], code=r.code, tests=tests, outcomes=outcomes,
                                      test_tokens=s.tokens, reason=reason))  # fmt: skip
    return kept, rejects


def generate_tests_step(cfg: Config, client, kept: str, out_raw: str, out_failures: str, out_timing: str) -> None:
    records = read_models(kept, CodeRecord)
    journal = journal_for(out_raw)
    samples, failures, timings = generate_tests(records, cfg, client, journal)
    write_jsonl(out_failures, failures)
    check_failure_budget(cfg, failures, len(records), "tests")
    write_jsonl(out_timing, timings)
    write_jsonl(out_raw, samples)
    journal.close()  # the execute step removes it (see drop_journal)
    log.info("tests for %d functions, %d failed requests", len(records), len(failures))


def execute_tests_step(cfg: Config, raw: str, out_kept: str, out_rejects: str, workers: int) -> None:
    samples = read_models(raw, CodeTests)
    kept, rejects = execute_tests(samples, cfg, workers)
    write_jsonl(out_kept, kept)
    write_jsonl(out_rejects, rejects)
    drop_journal(raw)
    reasons = Counter(r.reason for r in rejects)
    log.info("kept %d of %d functions that passed their tests; rejected: %s", len(kept), len(samples), dict(reasons))
