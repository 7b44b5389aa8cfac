"""The one way a model stage runs: build its requests, read what the answer store has, ask the rest, write.

Names, code, tests and scoring are each a `ModelStage`: how requests are built from the stage's inputs, how
an answer becomes raw records, and how a request that failed after its retries becomes a failure record.
`run_stage` does everything else for all of them (the store, slots, retries, progress, the failure budget).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evoselfcode.clients.base import Choice
from evoselfcode.clients.errors import CircuitOpen
from evoselfcode.config import Config
from evoselfcode.datagen.pipeline.runner import Ask, Request, check_failure_budget, complete, run_requests
from evoselfcode.datagen.pipeline.store import AnswerStore, server_identity
from evoselfcode.datagen.schemas import Failure, RequestTiming
from evoselfcode.datagen.writers import write_jsonl

log = logging.getLogger("evoselfcode")


@dataclass(frozen=True)
class ModelStage:
    """What differs between model stages; `run_stage` does the rest."""

    name: str  # the failure records' stage and the log's word: names, code, tests, score
    requests: Callable[[Sequence[Any], Config], list[Request]]
    records: Callable[[Request, list[Choice]], list[Any]]  # the raw records of one answer
    about: Callable[[Request], dict[str, Any]]  # desc_id, mode, func_name, sample_index: its failure's and timing's
    failed_records: Callable[[Request, Exception], list[Any]] = lambda request, error: []  # raw records anyway
    ask: Ask = complete
    fatal: tuple[type[Exception], ...] = (CircuitOpen,)  # errors that stop the job instead of failing one request


@dataclass
class StageResult:
    records: list[Any] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    timings: list[RequestTiming] = field(default_factory=list)
    requests: int = 0
    from_store: int = 0


def private_store_dir(out: str) -> Path:
    """With `store.enabled: false`: a hidden folder beside a job's output, kept only until the job is done."""
    return Path(out).with_name(f".{Path(out).stem}.answers")


def open_store(cfg: Config, out: str) -> AnswerStore:
    return AnswerStore(cfg.store.dir if cfg.store.enabled else private_store_dir(out))


def drop_private_store(out: str) -> None:
    """Called by the step after a model job, which runs only once that job is recorded as done."""
    shutil.rmtree(private_store_dir(out), ignore_errors=True)


def run_stage(stage: ModelStage, items: Sequence[Any], cfg: Config, client, store: AnswerStore) -> StageResult:
    """Every item's requests answered from the store or the server, as raw records, failures and timings."""
    requests = stage.requests(items, cfg)
    server = server_identity(cfg, client, store) if requests else ""
    outcomes = run_requests(client, requests, concurrency=cfg.io.concurrency, store=store, server=server,
                            ask=stage.ask, fatal=stage.fatal)  # fmt: skip
    result = StageResult(requests=len(requests), from_store=sum(o.resumed for o in outcomes))
    for out in outcomes:
        about = stage.about(out.request)
        if out.error is not None:
            error, message = type(out.error).__name__, str(out.error)
            result.failures.append(Failure(stage=stage.name, **about, error=error, message=message))
            result.records.extend(stage.failed_records(out.request, out.error))
            continue
        result.records.extend(stage.records(out.request, out.choices))
        result.timings.append(out.timing(about["desc_id"], about["mode"], about.get("func_name")))
    log.info("%s: %d requests, %d answered from the answer store, %d asked, %d failed", stage.name,
             result.requests, result.from_store, result.requests - result.from_store, len(result.failures))  # fmt: skip
    return result


def write_stage(cfg: Config, stage: ModelStage, result: StageResult, out: dict[str, str]) -> None:
    """A model job's outputs, failures first: a job stopped by the failure budget leaves them to read."""
    write_jsonl(out["failures"], result.failures)
    check_failure_budget(cfg, result.failures, result.requests, stage.name)
    write_jsonl(out["timing"], result.timings)
    if "raw" in out:  # scoring splits its records itself
        write_jsonl(out["raw"], result.records)
