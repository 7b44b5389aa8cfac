"""The circuit breaker: after a run of failures, stop sending to a server for a while, then probe it once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from evoselfcode.clients.errors import CircuitOpen, LLMError, display_url
from evoselfcode.config import CircuitBreaker

log = logging.getLogger("evoselfcode.client")

Clock = Callable[[], float]
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class Breaker:
    """Closed -> open after `failure_threshold` consecutive failures -> half-open after `reset_timeout`,
    where exactly one probe request goes through: success closes, failure reopens.

    The run that opens it is never shorter than the requests in flight (`expect_in_flight`): errors answered
    at once overtake the slow successes sent with them, so with 64 in flight and 12% fast 500s, the first
    burst alone would often be 8 failures "in a row" from a server that answers 88% of requests.
    """

    def __init__(self, base_url: str, failure_threshold: int, reset_timeout: float, *, clock: Clock = time.monotonic):
        self.base_url = base_url
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._last_error: LLMError | None = None
        self.opens = 0

    def expect_in_flight(self, requests: int) -> None:
        """A client of this breaker keeps up to `requests` in flight."""
        with self._lock:
            self.failure_threshold = max(self.failure_threshold, requests)

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == OPEN and self._clock() - self._opened_at >= self.reset_timeout:
                return HALF_OPEN
            return self._state

    def allow(self) -> None:
        """Return if a request may go out now; raise `CircuitOpen` otherwise."""
        with self._lock:
            if self._state == OPEN:
                waited = self._clock() - self._opened_at
                if waited < self.reset_timeout:
                    raise self._refusal(f"not sending requests for another {self.reset_timeout - waited:.1f}s")
                self._state, self._probing = HALF_OPEN, False
            if self._state == HALF_OPEN:
                if self._probing:
                    raise self._refusal("a probe request is checking whether it is back")
                self._probing = True

    def record_success(self) -> None:
        with self._lock:
            was = self._state
            self._state, self._failures, self._probing = CLOSED, 0, False
        if was != CLOSED:
            log.info("circuit closed for %s: the server answered again", display_url(self.base_url))

    def record_failure(self, err: LLMError) -> None:
        with self._lock:
            self._failures += 1
            self._last_error = err
            trips = self._state == HALF_OPEN or (self._state == CLOSED and self._failures >= self.failure_threshold)
            if trips:
                self._state, self._opened_at, self._probing = OPEN, self._clock(), False
                self.opens += 1
        if trips:
            log.warning(
                "circuit open for %s after %d consecutive failures (last: %s: %s); pausing requests for %.1fs",
                display_url(self.base_url),
                self._failures,
                type(err).__name__,
                err,
                self.reset_timeout,
            )

    def _refusal(self, detail: str) -> CircuitOpen:
        last = f"{type(self._last_error).__name__}: {self._last_error}" if self._last_error else "unknown"
        return CircuitOpen(
            f"circuit open for {display_url(self.base_url)}: {self._failures} consecutive failures, last error: "
            f"{last}; {detail}. Check that the server is up (evoselfcode probe), then rerun",
            url=self.base_url,
        )


_lock = threading.Lock()
_shared: dict[tuple, Breaker] = {}


def shared_breaker(base_url: str, settings: CircuitBreaker) -> Breaker:
    """One breaker per base URL and settings in a process: every client of a server sees it fail."""
    key = (base_url, settings.failure_threshold, settings.reset_timeout)
    with _lock:
        if key not in _shared:
            _shared[key] = Breaker(base_url, settings.failure_threshold, settings.reset_timeout)
        return _shared[key]


def forget_shared_breakers() -> None:
    with _lock:
        _shared.clear()
