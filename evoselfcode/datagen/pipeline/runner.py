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

log = logging.getLogger("evoselfcode.runner")


def derive_seed(base: int, *parts: object) -> int:
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


def run_requests(
    client: CompletionClient, requests: Sequence[Request], *, concurrency: int, every: float = 10.0
) -> list[Outcome]:
    """Every request's outcome, in the order of `requests`; one failure does not stop the others."""
    outcomes = [Outcome(r) for r in requests]
    started, done, failed, last = time.monotonic(), 0, 0, 0.0

    def call(i: int) -> int:
        try:
            outcomes[i].choices = client.complete(requests[i].prompt, **requests[i].params)
        except Exception as exc:  # recorded as a failure record, never lost
            outcomes[i].error = exc
        return i

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(requests)))) as pool:
        for future in as_completed([pool.submit(call, i) for i in range(len(requests))]):
            done += 1
            failed += outcomes[future.result()].error is not None
            now = time.monotonic()
            if now - last >= every or done == len(requests):
                last = now
                rate = done / max(now - started, 1e-9)
                eta = (len(requests) - done) / rate if rate else float("inf")
                log.info(
                    "%d/%d requests done, %d failed, %.1f req/s, eta %.0f s", done, len(requests), failed, rate, eta
                )
    return outcomes
