"""Unit tests of the resilience pieces: error mapping, backoff, breaker state machine, limiter, counters, slots."""

from __future__ import annotations

import logging
import random
import threading
import time

import pytest
import urllib3
from urllib3 import exceptions as u3

from evoselfcode.clients import errors
from evoselfcode.clients.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from evoselfcode.clients.connections import Connections, Environment
from evoselfcode.clients.errors import (
    BadRequest,
    CircuitOpen,
    ConnectError,
    RateLimited,
    Redactor,
    ServerError,
    Timeout,
    error_for_status,
    parse_retry_after,
    translate_request_exception,
)
from evoselfcode.clients.limits import RateLimiter, TokenBucket
from evoselfcode.clients.retry import RetryPolicy
from evoselfcode.clients.stats import Stats
from evoselfcode.config import RateLimit

URL = "http://model.test/v1/completions"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (500, ServerError, True),
        (502, ServerError, True),
        (503, ServerError, True),
        (408, ServerError, True),
        (429, RateLimited, True),
        (400, BadRequest, False),
        (401, BadRequest, False),
        (403, BadRequest, False),
        (404, BadRequest, False),
        (422, BadRequest, False),
    ],
)
def test_status_maps_to_class_and_retryability(status, cls, retryable):
    err = error_for_status(status, url=URL, body='{"error": "x"}')
    assert type(err) is cls
    assert err.retryable is retryable
    assert URL in str(err)
    if status in (401, 403):
        assert "check api.headers" in str(err)


def test_retry_after_header_seconds_and_date():
    err = error_for_status(429, url=URL, body="", headers={"Retry-After": "3"})
    assert err.retry_after == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None


def test_request_exceptions_translate_by_kind():
    timeout = (1.0, 2.0)

    def translate(exc):
        return translate_request_exception(exc, url=URL, timeout=timeout)

    read = translate(u3.ReadTimeoutError(None, URL, "timed out"))
    assert type(read) is Timeout and "api.timeout.read" in str(read)
    connect = translate(u3.ConnectTimeoutError(None, "timed out"))
    assert type(connect) is Timeout and "api.timeout.connect" in str(connect)
    try:
        raise u3.NewConnectionError(None, "Failed to establish a new connection") from ConnectionRefusedError(
            111, "refused"
        )
    except u3.NewConnectionError as exc:
        refused = translate(exc)
    assert type(refused) is ConnectError and refused.retryable  # a NewConnectionError is no connect timeout
    assert URL in str(refused) and "ConnectionRefusedError" in str(refused)
    reset = translate(u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer")))
    assert type(reset) is ConnectError and "ConnectionResetError" in str(reset)
    assert type(translate(u3.MaxRetryError(None, URL, u3.ReadTimeoutError(None, URL, "x")))) is Timeout
    assert type(translate(u3.ProxyError("Unable to connect to proxy", OSError("x")))) is ConnectError
    assert type(translate(u3.DecodeError("bad gzip"))) is errors.RequestError
    assert not CircuitOpen("x").retryable and errors.ResponseFormatError("x").retryable


def test_a_redirect_is_a_bad_request_that_names_where_it_points():
    err = error_for_status(301, url=URL, body="", headers={"Location": "https://model.test/v1/completions"})
    assert type(err) is BadRequest and not err.retryable
    assert "https://model.test/v1/completions" in str(err) and "api.base_url" in str(err)


def test_redactor_hides_header_values_and_the_words_in_them():
    redact = Redactor(["Bearer sk-very-secret-token"])
    assert redact("got 'Bearer sk-very-secret-token'") == "got '***'"
    assert redact("invalid key sk-very-secret-token") == "invalid key ***"
    assert "user:pw" not in errors.display_url("http://user:pw@host:8000/v1")


def test_backoff_is_full_jitter_and_honours_retry_after():
    policy = RetryPolicy(max_retries=6, base=0.5, max=4.0, max_retry_after=10.0)
    rng = random.Random(0)
    err = ServerError("x")
    for retry in range(6):
        delays = [policy.delay(retry, err, rng) for _ in range(400)]
        cap = min(4.0, 0.5 * 2**retry)
        assert all(0 <= d <= cap for d in delays)
        assert 0.35 * cap < sum(delays) / len(delays) < 0.65 * cap  # uniform over [0, cap], not a fixed step
    assert 3.0 <= policy.delay(0, RateLimited("x", retry_after=3.0), rng) <= 3.5
    assert policy.delay(0, RateLimited("x", retry_after=999.0), rng) <= 10.5


def test_breaker_state_machine_with_fake_clock(caplog):
    caplog.set_level(logging.INFO, logger="evoselfcode.client")
    clock = FakeClock()
    breaker = Breaker("http://model.test", failure_threshold=3, reset_timeout=10.0, clock=clock)
    boom = ConnectError("connection refused", url="http://model.test")
    for _ in range(2):
        breaker.allow()
        breaker.record_failure(boom)
    assert breaker.state == CLOSED
    breaker.allow()
    breaker.record_success()  # a success resets the consecutive count
    for _ in range(3):
        breaker.allow()
        breaker.record_failure(boom)
    assert breaker.state == OPEN and breaker.opens == 1
    with pytest.raises(CircuitOpen, match=r"http://model.test.*ConnectError: connection refused"):
        breaker.allow()

    clock.now += 10.0
    assert breaker.state == HALF_OPEN
    breaker.allow()  # the one probe
    with pytest.raises(CircuitOpen, match="probe"):
        breaker.allow()  # a second caller while the probe is out
    breaker.record_failure(boom)
    assert breaker.state == OPEN and breaker.opens == 2
    with pytest.raises(CircuitOpen):
        breaker.allow()

    clock.now += 10.0
    breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED
    breaker.allow()
    messages = [r.getMessage() for r in caplog.records if r.name == "evoselfcode.client"]
    assert sum("circuit open" in m for m in messages) == 2
    assert sum("circuit closed" in m for m in messages) == 1


def test_fast_errors_overtaking_slow_successes_in_flight_do_not_open_the_breaker():
    breaker = Breaker("http://model.test", failure_threshold=3, reset_timeout=10.0, clock=FakeClock())
    breaker.expect_in_flight(16)
    breaker.expect_in_flight(4)  # a smaller client of the same server lowers nothing
    boom = ServerError("injected 500", url="http://model.test")
    for _ in range(15):  # a burst of 16 in flight: the fast 500s come back before any success
        breaker.record_failure(boom)
    assert breaker.state == CLOSED
    breaker.record_failure(boom)
    assert breaker.state == OPEN


def test_token_bucket_rate_over_a_window_with_fake_clock():
    clock = FakeClock()
    bucket = TokenBucket(rate=1000.0, capacity=1000.0, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(200):
        bucket.acquire(100.0)  # 20,000 tokens; the first 1,000 are the burst
    assert clock.now - start == pytest.approx(19.0, rel=1e-6)


def test_request_rate_limit_measured_over_a_window_from_threads():
    limiter = RateLimiter(RateLimit(requests_per_s=50.0, burst_s=0.02))
    stamps: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(15):
            limiter.acquire(1.0)
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 42 <= rate <= 55


def test_stats_percentiles_and_counters_are_thread_safe():
    stats = Stats()

    def worker(offset: int):
        for i in range(1, 101):
            stats.sent(estimated_tokens=2.0)
            stats.answered(i / 100, prompt_tokens=3, completion_tokens=1)
            if i % 10 == 0:
                stats.retry("ServerError")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = stats.snapshot()
    assert snap["requests"] == snap["responses"] == 400 and snap["prompt_tokens"] == 1200
    assert snap["retries"] == {"ServerError": 40} and snap["retries_total"] == 40
    assert snap["latency_s"]["p50"] == pytest.approx(0.5, abs=0.02)
    assert snap["latency_s"]["p95"] == pytest.approx(0.95, abs=0.02)
    assert snap["latency_s"]["p99"] == pytest.approx(0.99, abs=0.02)


@pytest.mark.parametrize("pool", [None, urllib3.PoolManager()], ids=["own connections", "a urllib3 pool"])
def test_slots_bound_the_holders_across_threads(pool):
    connections = Connections("http://model.test/v1", 3, Environment(), (1.0, 1.0), pool)
    lock = threading.Lock()
    held = peak = 0

    def worker():
        nonlocal held, peak
        for _ in range(20):
            with connections.slot():
                with lock:
                    held += 1
                    peak = max(peak, held)
                time.sleep(0.001)
                with lock:
                    held -= 1

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3 and held == 0
