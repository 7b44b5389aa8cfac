"""Retries, circuit breaking, rate limiting and counters around every HTTP call a client makes.

`Transport` is the single path to the server: breaker check -> rate limiter -> in-flight slot (one of
`concurrency` keep-alive urllib3 connections; through a proxy, urllib3's pool) -> HTTP (never retried or
redirected by urllib3) -> status/JSON checks -> caller's parser, inside a retry loop with full-jitter
exponential backoff.
A request waiting to retry (or waiting on the limiter) holds no in-flight slot.
The breaker and the limiter are shared by every client of a process that talks to the same base URL.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import netrc
import os
import queue
import random
import ssl
import threading
import time
import urllib.request
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import urllib3
import urllib3.connection
from urllib3.util.ssl_match_hostname import CertificateError

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


_retry_wait = threading.local()


def on_retry_wait(hook: contextlib.AbstractContextManager | None) -> None:
    """In the calling thread, every sleep before a retry runs inside `hook` (the runner lends the thread's turn)."""
    _retry_wait.hook = hook


@contextlib.contextmanager
def waiting_to_retry() -> Iterator[None]:
    """Around a wait that holds no in-flight slot: the calling thread's `on_retry_wait` hook, if any."""
    with getattr(_retry_wait, "hook", None) or contextlib.nullcontext():
        yield


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

    def sent(self, estimated_tokens: float) -> None:
        with self._lock:
            self._counts["requests"] += 1
            self._counts["estimated_tokens"] += estimated_tokens

    def answered(self, latency: float, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            counts = self._counts
            counts["responses"] += 1
            counts["prompt_tokens"] += prompt_tokens
            counts["completion_tokens"] += completion_tokens
            self._latencies.append(latency)

    def retry(self, cause: str) -> None:
        with self._lock:
            self._retries[cause] += 1

    def failure(self, cause: str) -> None:
        with self._lock:
            self._failures[cause] += 1

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


class Slots:
    """At most `n` holders at once (the in-flight slots when urllib3's pool sends: proxies, injected pools).
    A queue of `n` tokens: its wait is in C, ~2 us a request where `threading.Semaphore`'s Condition costs ~25 us
    with many threads waiting."""

    def __init__(self, n: int):
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(n):
            self._tokens.put(None)

    def __enter__(self) -> None:
        self._tokens.get()

    def __exit__(self, *exc: object) -> None:
        self._tokens.put(None)


class Connections:
    """`n` keep-alive connections to one origin; holding one is holding an in-flight slot.

    urllib3's connections (TLS, connect timeouts, its exceptions) without urllib3's pool, whose per-request
    bookkeeping (Timeout copies, a queue of Python-level Conditions, URL parsing) cost ~0.1 of ~0.5 ms per
    request at 64 threads (bench/README.md).
    """

    def __init__(self, base_url: str, n: int, env: Environment, timeout: tuple[float, float]):
        parts = urlsplit(base_url)
        https = parts.scheme == "https"
        cls = urllib3.connection.HTTPSConnection if https else urllib3.connection.HTTPConnection
        options = {"ca_certs": env.ca_certs, "ca_cert_dir": env.ca_cert_dir} if https else {}
        port = parts.port or (443 if https else 80)
        self._connect, self._read = timeout
        self._free: queue.SimpleQueue[urllib3.connection.HTTPConnection] = queue.SimpleQueue()
        for _ in range(n):
            self._free.put(cls(parts.hostname or "", port, timeout=self._connect, **options))

    @contextlib.contextmanager
    def slot(self) -> Iterator[urllib3.connection.HTTPConnection]:
        conn = self._free.get()
        try:
            yield conn
        except BaseException:
            conn.close()  # a failed exchange leaves the connection in an unknown state: the next one reconnects
            raise
        finally:
            self._free.put(conn)

    def exchange(self, conn: urllib3.connection.HTTPConnection, method: str, target: str, body, headers):
        """One request and its whole answer on `conn`, which is open and reusable afterwards unless it failed."""
        if conn.sock is not None and not conn.is_connected:
            conn.close()  # the server closed it while it was idle
        if conn.sock is None:
            conn.timeout = self._connect
            try:
                conn.connect()
            except (ssl.SSLError, CertificateError) as exc:
                raise urllib3.exceptions.SSLError(exc) from exc
        conn.timeout = self._read
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it may have answered before closing
                conn.request(method, target, body=body, headers=headers)
            return conn.getresponse()
        except http.client.HTTPException as exc:  # e.g. not HTTP at all: what urllib3's pool raised for it
            raise urllib3.exceptions.ProtocolError("Connection aborted.", exc) from exc

    def close(self) -> None:
        """Close the idle connections (a request still running keeps its own)."""
        idle = []
        while True:
            try:
                idle.append(self._free.get_nowait())
            except queue.Empty:
                break
        for conn in idle:
            conn.close()
            self._free.put(conn)


# Everything urllib3 may raise for a request that got no usable answer; errors.translate_request_exception maps them.
_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
# `retries=False` as an object: urllib3 would build this from the bool on every request
_NO_RETRIES = urllib3.Retry(total=False, redirect=False)
_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


@dataclass(frozen=True)
class Environment:
    """What the environment says about reaching one base URL, read once per Transport, not per request."""

    proxy: str | None = None
    ca_certs: str | None = None
    ca_cert_dir: str | None = None
    netrc_auth: tuple[str, str] | None = None

    @classmethod
    def read(cls, base_url: str) -> Environment:
        """Proxy (HTTP_PROXY/HTTPS_PROXY/ALL_PROXY unless NO_PROXY matches), CA bundle (REQUESTS_CA_BUNDLE,
        CURL_CA_BUNDLE, SSL_CERT_FILE, else certifi's if installed, else the system's) and ~/.netrc (or $NETRC)."""
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        proxies = urllib.request.getproxies()
        proxy = proxies.get(parts.scheme) or proxies.get("all")
        if proxy and urllib.request.proxy_bypass(parts.netloc.rsplit("@", 1)[-1]):
            proxy = None
        ca_certs = ca_cert_dir = None
        if parts.scheme == "https":
            bundle = next(filter(None, map(os.environ.get, _CA_BUNDLE_VARIABLES)), None) or _certifi_bundle()
            if bundle and os.path.isdir(bundle):
                ca_cert_dir = bundle
            else:
                ca_certs = bundle
        return cls(proxy, ca_certs, ca_cert_dir, _netrc_auth(host))


def _certifi_bundle() -> str | None:
    try:
        import certifi  # the bundle requests used; without it urllib3 falls back to the system's
    except ImportError:
        return None
    return certifi.where()


def _netrc_auth(host: str) -> tuple[str, str] | None:
    candidates = [os.environ["NETRC"]] if os.environ.get("NETRC") else ["~/.netrc", "~/_netrc"]
    for name in candidates:
        path = Path(name).expanduser()
        if not path.is_file():
            continue
        try:
            found = netrc.netrc(path).authenticators(host)
        except (OSError, netrc.NetrcParseError):
            return None
        if found:
            login, account, password = found
            return (login or account or "", password or "")
        return None
    return None


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def make_pool(base_url: str, concurrency: int, env: Environment | None = None) -> urllib3.PoolManager:
    """Connections to `base_url`: at most `concurrency`, kept alive; urllib3 retries and redirects nothing
    (retries are ours and counted; a POST must never be resent behind our back)."""
    env = env or Environment.read(base_url)
    options: dict[str, Any] = {"num_pools": 2, "maxsize": concurrency, "block": True, "retries": _NO_RETRIES}
    if env.ca_certs or env.ca_cert_dir:
        options.update(ca_certs=env.ca_certs, ca_cert_dir=env.ca_cert_dir)
    if not env.proxy:
        return urllib3.PoolManager(**options)
    proxy = urlsplit(env.proxy if "://" in env.proxy else "http://" + env.proxy)
    if proxy.scheme.startswith("socks"):
        from urllib3.contrib.socks import SOCKSProxyManager  # needs PySocks, as requests did

        return SOCKSProxyManager(proxy.geturl(), **options)
    headers = None
    if proxy.username:
        headers = {"Proxy-Authorization": basic_auth(unquote(proxy.username), unquote(proxy.password or ""))}
        proxy = proxy._replace(netloc=proxy.netloc.rsplit("@", 1)[1])
    return urllib3.ProxyManager(urlunsplit(proxy), proxy_headers=headers, **options)


class Transport:
    """JSON over HTTP to one base URL, with every resilience rule applied; clients build on it.

    `pool` may be injected (tests): a `urllib3.PoolManager`, or a `ProxyManager` to go through a proxy.
    """

    def __init__(
        self,
        api: Api,
        base_url: str,
        *,
        concurrency: int,
        pool: urllib3.PoolManager | None = None,
        breaker: Breaker | None = None,
        limiter: RateLimiter | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        rng: random.Random | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        env = Environment.read(self.base_url)
        headers = api.resolved_headers()
        if not any(k.lower() == "authorization" for k in headers):
            # the config's header wins, then user:password in api.base_url, then ~/.netrc
            if parts.username:
                headers["Authorization"] = basic_auth(unquote(parts.username), unquote(parts.password or ""))
            elif env.netrc_auth:
                headers["Authorization"] = basic_auth(*env.netrc_auth)
        self.redact = Redactor(headers.values())
        self.timeout = (api.timeout.connect, api.timeout.read)
        self._timeout = urllib3.Timeout(connect=api.timeout.connect, read=api.timeout.read)
        self._get_headers = dict(headers)
        self._post_headers = {"Content-Type": "application/json", **headers}
        origin = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))
        self._target = quote(parts.path, safe="/%:@!$&'()*+,;=~")  # a request line is ASCII
        self.pool: urllib3.PoolManager | None = None
        self._connections: Connections | None = None
        if pool is None and not env.proxy:
            self._connections = Connections(origin, concurrency, env, self.timeout)
        else:
            self.pool = pool or make_pool(self.base_url, concurrency, env)
            self._slots = Slots(concurrency)  # the direct path's slots are its connections
            if isinstance(self.pool, urllib3.ProxyManager):
                self._urlopen = self.pool.urlopen  # the proxy manager needs the absolute URL
                self._target = origin
            else:
                # the one connection pool for this host, once: PoolManager.urlopen would look it up per request
                self._urlopen = self.pool.connection_from_url(origin).urlopen
        self.policy = RetryPolicy.from_api(api)
        if breaker is None and api.circuit_breaker.enabled:
            breaker = shared_breaker(self.base_url, api.circuit_breaker)
            breaker.expect_in_flight(concurrency)
        self.breaker = breaker
        self.limiter = limiter or shared_limiter(self.base_url, api.rate_limit)
        self.stats = Stats()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()

    def close(self) -> None:
        if self._connections is not None:
            self._connections.close()
        if self.pool is not None:
            self.pool.clear()

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
        return self._with_retries("POST", route, json.dumps(body).encode(), parse, cost_tokens, classify)

    def get(self, route: str, parse: Callable[[Any], T]) -> tuple[T, float]:
        return self._with_retries("GET", route, None, parse, 0.0, None)

    def _with_retries(self, method, route, payload, parse, cost, classify):
        url = self.base_url + route
        retry = 0
        while True:
            try:
                return self._attempt(method, route, url, payload, parse, cost, classify)
            except LLMError as err:
                cause = type(err).__name__
                if not err.retryable or retry >= self.policy.max_retries:
                    self.stats.failure(cause)
                    raise
                delay = self.policy.delay(retry, err, self._rng)
                retry += 1
                self.stats.retry(cause)
                log.info("retry %d/%d in %.2fs after %s: %s", retry, self.policy.max_retries, delay, cause, err)
                with waiting_to_retry():
                    self._sleep(delay)

    def _send(self, method, target, payload, headers, cost):
        """(response, seconds from sending to the whole answer), holding an in-flight slot meanwhile."""
        if self._connections is not None:
            with self._connections.slot() as conn:
                self.stats.sent(cost)
                started = self._clock()
                resp = self._connections.exchange(conn, method, target, payload, headers)
                return resp, self._clock() - started
        with self._slots:
            self.stats.sent(cost)
            started = self._clock()
            options = {"retries": _NO_RETRIES, "redirect": False, "timeout": self._timeout}
            resp = self._urlopen(method, target, body=payload, headers=headers, **options)
            return resp, self._clock() - started

    def _attempt(self, method, route, url, payload, parse, cost, classify):
        if self.breaker:
            self.breaker.allow()
        outcome: LLMError | None = None
        answered = False
        try:
            self.limiter.acquire(cost)
            headers = self._post_headers if payload is not None else self._get_headers
            try:
                resp, latency = self._send(method, self._target + route, payload, headers, cost)
            except _TRANSPORT_ERRORS as exc:
                raise translate_request_exception(exc, url=url, timeout=self.timeout, redact=self.redact) from exc
            answered = True
            status, raw = resp.status, resp.data
            if status >= 300:
                text = raw.decode("utf-8", "replace")
                special = classify(status, self.redact(text)) if classify else None
                raise special or error_for_status(status, url=url, body=text, headers=resp.headers, redact=self.redact)
            try:
                data = json.loads(raw)
            except ValueError as exc:  # UnicodeDecodeError is one
                raise ResponseFormatError(
                    f"{display_url(url)} answered {status} with a body that is not JSON "
                    f"({self.redact(raw[:80].decode('utf-8', 'replace'))!r}...); check api.base_url and api.route "
                    "point at the model server",
                    url=url,
                ) from exc
            result = parse(data)
            usage = data.get("usage") if isinstance(data, dict) else None
            if isinstance(usage, dict):
                prompt_tokens = int(usage.get("prompt_tokens") or 0)
                completion_tokens = int(usage.get("completion_tokens") or 0)
            else:
                prompt_tokens = completion_tokens = 0
            self.stats.answered(latency, prompt_tokens, completion_tokens)
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
