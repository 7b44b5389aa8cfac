"""Retries, circuit breaking, rate limiting and counters around every HTTP call a client makes.

`Transport` is the single path to the server: breaker check -> rate limiter -> in-flight slot -> HTTP ->
status/JSON checks -> caller's parser, inside a retry loop with full-jitter exponential backoff.
A request waiting to retry (or waiting on the limiter) holds no in-flight slot.
The breaker and the limiter are shared by every client of a process that talks to the same base URL.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

from evoselfcode.clients.errors import (
    CircuitOpen,
    LLMError,
    RateLimited,
    Redactor,
    RequestError,
    ResponseFormatError,
    ServerError,
    display_url,
    error_for_status,
    translate_request_exception,
)
from evoselfcode.config import Api, CircuitBreaker, RateLimit

log = logging.getLogger("evoselfcode.client")

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], None]
# Turns an error answer into a more specific error (e.g. ScoringUnsupported), or None for the default mapping.
Classifier = Callable[[int, str], LLMError | None]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def estimate_tokens(prompt: str, max_tokens: int, n: int = 1) -> float:
    """What a request may cost the server: prompt chars/4 plus every token it may generate."""
    return len(prompt) / 4 + max(max_tokens, 0) * max(n, 1)


class Breaker:
    """Closed -> open after `failure_threshold` consecutive failures -> half-open after `reset_timeout`,
    where exactly one probe request goes through: success closes, failure reopens."""

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


_shared_lock = threading.Lock()
_breakers: dict[tuple, Breaker] = {}
_limiters: dict[tuple, RateLimiter] = {}


def shared_breaker(base_url: str, settings: CircuitBreaker, *, clock: Clock = time.monotonic) -> Breaker:
    key = (base_url, settings.failure_threshold, settings.reset_timeout)
    with _shared_lock:
        if key not in _breakers:
            _breakers[key] = Breaker(base_url, settings.failure_threshold, settings.reset_timeout, clock=clock)
        return _breakers[key]


def shared_limiter(base_url: str, settings: RateLimit) -> RateLimiter:
    key = (base_url, settings.requests_per_s, settings.tokens_per_s, settings.burst_s)
    with _shared_lock:
        if key not in _limiters:
            _limiters[key] = RateLimiter(settings)
        return _limiters[key]


def reset_shared_state() -> None:
    """Forget every shared breaker and limiter (tests; a new process starts empty anyway)."""
    with _shared_lock:
        _breakers.clear()
        _limiters.clear()


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


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Stats:
    """Thread-safe counters for one client; `snapshot()` is what metrics files and logs show."""

    def __init__(self, latency_window: int = 20000):
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._retries: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._latencies: deque[float] = deque(maxlen=latency_window)

    def add(self, **counts: float) -> None:
        with self._lock:
            self._counts.update(counts)

    def retry(self, cause: str) -> None:
        with self._lock:
            self._retries[cause] += 1

    def failure(self, cause: str) -> None:
        with self._lock:
            self._failures[cause] += 1

    def latency(self, seconds: float) -> None:
        with self._lock:
            self._latencies.append(seconds)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            ordered = sorted(self._latencies)
            out: dict[str, Any] = {
                k: self._counts.get(k, 0)
                for k in ("requests", "responses", "prompt_tokens", "completion_tokens", "estimated_tokens")
            }
            out["estimated_tokens"] = round(out["estimated_tokens"])
            out["retries"] = dict(self._retries)
            out["retries_total"] = sum(self._retries.values())
            out["failures"] = dict(self._failures)
            out["failures_total"] = sum(self._failures.values())
            out["latency_s"] = {
                "count": len(ordered),
                "p50": _percentile(ordered, 0.50),
                "p95": _percentile(ordered, 0.95),
                "p99": _percentile(ordered, 0.99),
            }
        return out


def make_session(concurrency: int, headers: dict[str, str], base_url: str | None = None) -> requests.Session:
    session = requests.Session()
    # max_retries=0: urllib3 must never resend a POST behind our back; retries are ours and counted
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=concurrency, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(headers)
    if base_url:
        freeze_environment(session, base_url)
    return session


def freeze_environment(session: requests.Session, base_url: str) -> None:
    """Read proxies, CA bundle and .netrc for `base_url` from the environment once, not on every request.

    With `trust_env` requests scans os.environ and stats ~/.netrc per request: 0.2-0.5 ms of CPU each,
    as much as the rest of the HTTP call. A session talks to one base URL, so one look-up gives the same answer.
    """
    settings = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    session.cert = settings["cert"]
    if session.auth is None:
        session.auth = requests.utils.get_netrc_auth(base_url)
    session.trust_env = False


class Transport:
    """JSON over HTTP to one base URL, with every resilience rule applied; clients build on it."""

    def __init__(
        self,
        api: Api,
        base_url: str,
        *,
        concurrency: int,
        session: requests.Session | None = None,
        breaker: Breaker | None = None,
        limiter: RateLimiter | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        rng: random.Random | None = None,
    ):
        headers = api.resolved_headers()
        self.base_url = base_url.rstrip("/")
        self.redact = Redactor(headers.values())
        self.timeout = (api.timeout.connect, api.timeout.read)
        self.session = session or make_session(concurrency, headers, self.base_url)
        if session is not None:
            self.session.headers.update(headers)
        self.policy = RetryPolicy.from_api(api)
        if breaker is None and api.circuit_breaker.enabled:
            breaker = shared_breaker(self.base_url, api.circuit_breaker)
        self.breaker = breaker
        self.limiter = limiter or shared_limiter(self.base_url, api.rate_limit)
        self.stats = Stats()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()

    def close(self) -> None:
        self.session.close()

    def post(
        self,
        route: str,
        body: dict,
        parse: Callable[[Any], T],
        *,
        cost_tokens: float,
        classify: Classifier | None = None,
    ) -> tuple[T, float]:
        """`parse(json)` runs inside the retry loop, so a malformed answer is retried like a failed one."""
        return self._with_retries("POST", route, body, parse, cost_tokens, classify)

    def get(self, route: str, parse: Callable[[Any], T]) -> tuple[T, float]:
        return self._with_retries("GET", route, None, parse, 0.0, None)

    def _with_retries(self, method, route, body, parse, cost, classify):
        url = self.base_url + route
        retry = 0
        while True:
            try:
                return self._attempt(method, url, body, parse, cost, classify)
            except LLMError as err:
                cause = type(err).__name__
                if not err.retryable or retry >= self.policy.max_retries:
                    self.stats.failure(cause)
                    raise
                delay = self.policy.delay(retry, err, self._rng)
                retry += 1
                self.stats.retry(cause)
                log.info("retry %d/%d in %.2fs after %s: %s", retry, self.policy.max_retries, delay, cause, err)
                self._sleep(delay)

    def _attempt(self, method, url, body, parse, cost, classify):
        if self.breaker:
            self.breaker.allow()
        outcome: LLMError | None = None
        answered = False
        try:
            self.limiter.acquire(cost)
            with self._slots:
                self.stats.add(requests=1, estimated_tokens=cost)
                started = self._clock()
                try:
                    resp = self.session.request(method, url, json=body, timeout=self.timeout)
                except requests.RequestException as exc:
                    raise translate_request_exception(exc, url=url, timeout=self.timeout, redact=self.redact) from exc
                latency = self._clock() - started
            answered = True
            text = resp.text
            if resp.status_code >= 400:
                special = classify(resp.status_code, self.redact(text)) if classify else None
                raise special or error_for_status(
                    resp.status_code, url=url, body=text, headers=resp.headers, redact=self.redact
                )
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise ResponseFormatError(
                    f"{display_url(url)} answered {resp.status_code} with a body that is not JSON "
                    f"({self.redact(text[:80])!r}...); check api.base_url and api.route point at the model server",
                    url=url,
                ) from exc
            result = parse(data)
            usage = data.get("usage") if isinstance(data, dict) else None
            if isinstance(usage, dict):
                self.stats.add(
                    prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0),
                )
            self.stats.add(responses=1)
            self.stats.latency(latency)
            return result, latency
        except LLMError as err:
            outcome = err
            raise
        finally:
            if self.breaker:
                if isinstance(outcome, RequestError | ServerError) or (outcome is None and not answered):
                    self.breaker.record_failure(outcome or RequestError("request aborted", url=url))
                else:
                    # any other answer, even an error status, shows the server is alive
                    self.breaker.record_success()
