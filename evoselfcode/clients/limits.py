"""Rate limits (`api.rate_limit`): token buckets for requests/s and tokens/s, shared per server in a process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from evoselfcode.config import RateLimit

Clock = Callable[[], float]
Sleep = Callable[[float], None]


def estimate_tokens(prompt: str, max_tokens: int, n: int = 1) -> float:
    """What a request may cost the server: prompt chars/4 plus every token it may generate."""
    return len(prompt) / 4 + max(max_tokens, 0) * max(n, 1)


class TokenBucket:
    """Reservation-style bucket: a caller takes its amount at once (going negative) and sleeps off the debt,
    so the long-run rate is exact and callers are served in arrival order."""

    def __init__(self, rate: float, capacity: float, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep):
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._level = capacity
        self._stamp = clock()

    def acquire(self, amount: float = 1.0) -> float:
        with self._lock:
            now = self._clock()
            self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
            self._stamp = now
            self._level -= amount
            wait = -self._level / self.rate if self._level < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


class RateLimiter:
    """Every configured bucket; `acquire` waits until a request of `tokens` may go out."""

    def __init__(self, limits: RateLimit, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep):
        self._buckets: list[tuple[TokenBucket, bool]] = []
        if limits.requests_per_s:
            rate = limits.requests_per_s
            self._buckets.append((TokenBucket(rate, max(1.0, rate * limits.burst_s), clock=clock, sleep=sleep), False))
        if limits.tokens_per_s:
            rate = limits.tokens_per_s
            self._buckets.append((TokenBucket(rate, rate * limits.burst_s, clock=clock, sleep=sleep), True))

    def acquire(self, tokens: float) -> float:
        return sum(bucket.acquire(tokens if by_tokens else 1.0) for bucket, by_tokens in self._buckets)


_lock = threading.Lock()
_shared: dict[tuple, RateLimiter] = {}


def shared_limiter(base_url: str, settings: RateLimit) -> RateLimiter:
    """One limiter per base URL and settings in a process: the limit holds across all clients of a server."""
    key = (base_url, settings.requests_per_s, settings.tokens_per_s, settings.burst_s)
    with _lock:
        if key not in _shared:
            _shared[key] = RateLimiter(settings)
        return _shared[key]


def forget_shared_limiters() -> None:
    with _lock:
        _shared.clear()
