"""`Transport`: JSON over HTTP to one base URL, with every resilience rule applied; clients build on it.

One path for every request: breaker check -> rate limiter -> in-flight slot (`connections.Connections`) ->
HTTP (never retried or redirected by urllib3) -> status/JSON checks -> caller's parser, inside a retry loop
with full-jitter exponential backoff (`retry.RetryPolicy`).
A request waiting to retry (or waiting on the limiter) holds no in-flight slot; the caller hears of a wait
before a retry through the `retry_wait` it passes.
The breaker and the limiter are shared by every client of a process that talks to the same base URL.
The one exception is `side_post`, for a side question (a token count) whose failure must not count against the
server: one try, an in-flight slot, none of the rest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import urllib3

from evoselfcode.clients.breaker import Breaker, forget_shared_breakers, shared_breaker
from evoselfcode.clients.connections import TRANSPORT_ERRORS, Connections, Environment, basic_auth
from evoselfcode.clients.errors import (
    LLMError,
    Redactor,
    RequestError,
    ResponseFormatError,
    ServerError,
    display_url,
    error_for_status,
    translate_request_exception,
)
from evoselfcode.clients.limits import RateLimiter, forget_shared_limiters, shared_limiter
from evoselfcode.clients.retry import RetryPolicy, RetryWait
from evoselfcode.clients.stats import Stats
from evoselfcode.config import Api

log = logging.getLogger("evoselfcode.client")

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], None]
# Turns an error answer into a more specific error (e.g. ScoringUnsupported), or None for the default mapping.
Classifier = Callable[[int, str], LLMError | None]


def reset_shared_state() -> None:
    """Forget every shared breaker and limiter (tests; a new process starts empty anyway)."""
    forget_shared_breakers()
    forget_shared_limiters()


class Transport:
    """JSON over HTTP to one base URL. `pool` may be injected (tests): a `urllib3.PoolManager`, or a
    `ProxyManager` to go through a proxy; by default the environment's proxy decides (`connections`)."""

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
        self._get_headers = dict(headers)
        self._post_headers = {"Content-Type": "application/json", **headers}
        self.connections = Connections(self.base_url, concurrency, env, self.timeout, pool)
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
        self.connections.close()

    def post(
        self,
        route: str,
        body: dict,
        parse: Callable[[Any], T],
        *,
        cost_tokens: float,
        classify: Classifier | None = None,
        retry_wait: RetryWait = contextlib.nullcontext,
    ) -> tuple[T, float]:
        """(parsed answer, latency). `parse(json)` runs inside the retry loop, so a malformed answer is retried
        like a failed one; every sleep before a retry runs inside `retry_wait()`."""
        payload = json.dumps(body).encode()
        return self._with_retries("POST", route, payload, parse, cost_tokens, classify, retry_wait)

    def get(self, route: str, parse: Callable[[Any], T]) -> tuple[T, float]:
        return self._with_retries("GET", route, None, parse, 0.0, None, contextlib.nullcontext)

    def side_post(self, path: str, body: dict, parse: Callable[[Any], T]) -> T:
        """One POST to `path` on the base URL's host, outside the resilience rules (no breaker, rate limit, retry
        or stats): a side question, such as a token count, whose failure must not count against the server."""
        url = urlunsplit(urlsplit(self.base_url)._replace(path=path))
        try:
            with self.connections.slot() as line:
                resp = line.exchange("POST", self.connections.target_of(path), json.dumps(body).encode(),
                                     self._post_headers)  # fmt: skip
        except TRANSPORT_ERRORS as exc:
            raise translate_request_exception(exc, url=url, timeout=self.timeout, redact=self.redact) from exc
        return parse(self._json_of(resp, url))

    def _json_of(self, resp: urllib3.BaseHTTPResponse, url: str, classify: Classifier | None = None) -> Any:
        """The JSON of a 2xx answer; an error status (`classify` may name it) or a body that is not JSON raises."""
        status, raw = resp.status, resp.data
        if status >= 300:
            text = raw.decode("utf-8", "replace")
            special = classify(status, self.redact(text)) if classify else None
            raise special or error_for_status(status, url=url, body=text, headers=resp.headers, redact=self.redact)
        try:
            return json.loads(raw)
        except ValueError as exc:  # UnicodeDecodeError is one
            raise ResponseFormatError(
                f"{display_url(url)} answered {status} with a body that is not JSON "
                f"({self.redact(raw[:80].decode('utf-8', 'replace'))!r}...); check api.base_url and api.route "
                "point at the model server",
                url=url,
            ) from exc

    def _with_retries(self, method, route, payload, parse, cost, classify, retry_wait: RetryWait):
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
                with retry_wait():
                    self._sleep(delay)

    def _send(self, method, target, payload, headers, cost):
        """(response, seconds from sending to the whole answer), holding an in-flight slot meanwhile."""
        with self.connections.slot() as line:
            self.stats.sent(cost)
            started = self._clock()
            resp = line.exchange(method, target, payload, headers)
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
                resp, latency = self._send(method, self.connections.target + route, payload, headers, cost)
            except TRANSPORT_ERRORS as exc:
                raise translate_request_exception(exc, url=url, timeout=self.timeout, redact=self.redact) from exc
            answered = True
            data = self._json_of(resp, url, classify)
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
