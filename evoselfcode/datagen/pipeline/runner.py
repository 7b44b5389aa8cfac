"""Running a shard's requests concurrently: results keyed by request, never by completion order."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from evoselfcode.clients.base import Choice, CompletionClient
from evoselfcode.clients.errors import CircuitOpen
from evoselfcode.datagen.pipeline.journal import Journal, request_key

log = logging.getLogger("evoselfcode.runner")


def request_seed(base: int, *parts: object) -> int:
    """A request's seed from `meta.seed` and its identity (description id, mode, index)."""
    digest = hashlib.sha256("\x1f".join(map(str, (base, *parts))).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Request:
    key: tuple
    prompt: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    request: Request
    choices: list[Choice] | None = None
    error: Exception | None = None


class Progress:
    """A log line every `every` seconds: done, failed, rate and time left."""

    def __init__(self, total: int, resumed: int, every: float):
        self.total, self.done, self.failed, self.every = total, resumed, 0, every
        self.started = self.last = time.monotonic()
        self.resumed = resumed
        if resumed:
            log.info("%d of %d requests answered before, from the journal", resumed, total)

    def step(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        now = time.monotonic()
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            rate = (self.done - self.resumed) / max(now - self.started, 1e-9)
            eta = (self.total - self.done) / rate if rate else float("inf")
            log.info("%d/%d requests, %d failed, %.1f req/s, eta %.0f s", self.done, self.total, self.failed, rate, eta)


def run_requests(
    client: CompletionClient,
    requests: Sequence[Request],
    *,
    concurrency: int,
    journal: Journal | None = None,
    model: str = "",
    every: float = 10.0,
) -> list[Outcome]:
    """Every request's outcome, in the order of `requests`; one failure does not stop the others.

    With a journal, requests it answered before are not sent again, and new answers go into it.
    """
    outcomes = [Outcome(r) for r in requests]
    keys = [request_key(r.prompt, r.params, model) for r in requests]
    todo = []
    for i, key in enumerate(keys):
        if journal is not None and (known := journal.get(key)) is not None:
            outcomes[i].choices = known
        else:
            todo.append(i)
    progress = Progress(len(requests), len(requests) - len(todo), every)

    def call(i: int) -> int:
        try:
            outcomes[i].choices = client.complete(requests[i].prompt, **requests[i].params)
        except Exception as exc:  # becomes a failure record, never lost
            outcomes[i].error = exc
        return i

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(todo) or 1))) as pool:
        for future in as_completed([pool.submit(call, i) for i in todo]):
            i = future.result()
            if journal is not None and outcomes[i].choices is not None:
                journal.record(keys[i], outcomes[i].choices)
            progress.step(outcomes[i].error is not None)
    for out in outcomes:
        if isinstance(out.error, CircuitOpen):  # the server is down: fail the job, the journal keeps the answers
            raise out.error
    return outcomes
