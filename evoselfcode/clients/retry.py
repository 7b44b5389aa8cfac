"""When to try a request again, how long to wait first, and the seam a caller uses to hear about the wait."""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from evoselfcode.clients.errors import LLMError, RateLimited
from evoselfcode.config import Api

# Entered around every sleep before a retry, while the request holds no in-flight slot: the runner lends the
# thread's turn to another request meanwhile (runner.Workers.lend_turn). `contextlib.nullcontext` for nobody.
RetryWait = Callable[[], AbstractContextManager[None]]


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    base: float
    max: float
    max_retry_after: float

    @classmethod
    def from_api(cls, api: Api) -> RetryPolicy:
        b = api.backoff
        return cls(api.max_retries, b.base, b.max, b.max_retry_after)

    def delay(self, retry: int, err: LLMError, rng: random.Random) -> float:
        """Full jitter: uniform(0, min(max, base * 2**retry)); a Retry-After is a floor, plus a little jitter."""
        jittered = rng.uniform(0.0, min(self.max, self.base * 2**retry))
        if isinstance(err, RateLimited) and err.retry_after is not None:
            return min(err.retry_after, self.max_retry_after) + rng.uniform(0.0, self.base)
        return jittered
