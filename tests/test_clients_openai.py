"""The OpenAI client against the fault-injecting fake server: statuses, retries, fan-out, scoring, breaker."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import urllib3
from fakeserver import FakeServer, Faults, Options, token_logprob, tokenize

from evoselfcode.clients import make_client, make_scorer
from evoselfcode.clients.base import SEED_STRIDE, Choice
from evoselfcode.clients.connections import Environment
from evoselfcode.clients.errors import (
    BadRequest,
    CircuitOpen,
    ConnectError,
    RateLimited,
    ResponseFormatError,
    ScoringUnsupported,
    ServerError,
    Timeout,
)
from evoselfcode.clients.openai import OpenAIClient
from evoselfcode.config import Api, ConfigError, deep_merge
from evoselfcode.datagen.pipeline.store import AnswerStore

NAME_ARGS = {"max_tokens": 16, "temperature": 0.4, "top_p": 0.9, "stop": ["(", " ", "\n"]}
CODE_ARGS = {"max_tokens": 64, "temperature": 0.8, "top_p": 0.95}


def fast_api(**overrides) -> Api:
    base = {
        "model": "fake-coder",
        "max_retries": 4,
        "backoff": {"base": 0.01, "max": 0.05},
        "timeout": {"connect": 1.0, "read": 0.3},
        "circuit_breaker": {"failure_threshold": 8, "reset_timeout": 1.0},
    }
    return Api.model_validate(deep_merge(base, overrides))


@pytest.fixture
def server(request):
    options = getattr(request, "param", None) or Options(faults=Faults(retry_after=0.2, stall_s=0.6))
    with FakeServer(options) as srv:
        yield srv


def client_for(srv: FakeServer, concurrency: int = 4, **overrides):
    return make_client(fast_api(**overrides), base_url=srv.url, concurrency=concurrency)


def test_completion_fields_and_determinism(server):
    client = client_for(server)
    first = client.complete("def ", n=3, seed=42, logprobs=1, **NAME_ARGS)
    again = client.complete("def ", n=3, seed=42, logprobs=1, **NAME_ARGS)
    assert [c.text for c in first] == [c.text for c in again]
    assert all(c.text.isidentifier() and c.finish_reason == "stop" for c in first)
    assert all(len(c.tokens) == len(c.token_logprobs) >= 1 for c in first)
    assert sum(c.usage["completion_tokens"] for c in first) == 3
    assert server.stats()["requests"] == 2  # n honoured: one request each
    assert client.stats()["latency_s"]["count"] == 2


def test_half_a_character_in_an_answer_becomes_a_replacement_character(server, tmp_path):
    # JSON may escape a lone surrogate ("\\ud800"): the answer store and the writers could not encode it, and the seeded
    # rerun got the same answer, so the job failed on every resume
    text = "def f():\n    return '\ud800' + '\U0001f600'\n"
    prompt = f"[[code:{base64.b64encode(text.encode('utf-8', 'surrogatepass')).decode()}]]\ndef f"
    (choice,) = client_for(server).complete(prompt, max_tokens=64, temperature=0.0, top_p=1.0, n=1, seed=1)
    assert choice.text == "def f():\n    return '\ufffd' + '\U0001f600'\n"  # a whole pair stays as it was
    AnswerStore(tmp_path).put("key", [choice])
    assert AnswerStore(tmp_path).get("key")[0].text == choice.text


def test_a_choice_counts_its_tokens_else_takes_the_usage_count():
    assert Choice("ab", tokens=("a", "b"), usage={"completion_tokens": 5}).completion_tokens == 2
    assert Choice("ab", usage={"completion_tokens": 5}).completion_tokens == 5
    assert Choice("ab", usage={"prompt_tokens": 3}).completion_tokens is None
    assert Choice("").completion_tokens is None


@pytest.mark.parametrize(
    ("status", "cls", "attempts"),
    [(500, ServerError, 5), (503, ServerError, 5), (429, RateLimited, 5), (400, BadRequest, 1), (404, BadRequest, 1),
     (422, BadRequest, 1), (401, BadRequest, 1), (403, BadRequest, 1)],
)  # fmt: skip
def test_every_status_class(server, status, cls, attempts):
    client = client_for(server)
    with pytest.raises(cls) as info:
        client.complete(f"[[always:{status}]] def ", seed=1, **NAME_ARGS)
    assert server.url in str(info.value)
    assert server.stats()["requests"] == attempts
    assert client.stats()["failures"] == {cls.__name__: 1}
    if status in (401, 403):
        assert "check api.headers" in str(info.value)


def test_every_sleep_before_a_retry_runs_inside_the_callers_retry_wait(server):
    client, held, waits = client_for(server, concurrency=1), [], []  # one slot

    @contextlib.contextmanager
    def retry_wait():
        waits.append(server.stats()["requests"])
        other = threading.Thread(target=take_the_slot, daemon=True)
        other.start()
        other.join(5)
        assert not other.is_alive()  # the request holds no slot while it waits: another one gets it
        yield

    def take_the_slot():
        with client.transport.connections.slot():
            pass

    assert client.complete("[[fail:3:500]] def ", seed=1, retry_wait=retry_wait, **NAME_ARGS)
    assert waits == [1, 2, 3] and server.stats()["requests"] == 4
    client.complete("def ", seed=2, retry_wait=lambda: held.append(1), **NAME_ARGS)  # no retry: never called
    assert held == []


def test_transient_faults_are_retried_until_success(server, caplog):
    caplog.set_level(logging.INFO, logger="evoselfcode.client")
    client = client_for(server)
    for kind in ("500", "429", "reset", "stall", "badjson"):
        [choice] = client.complete(f"[[fail:2:{kind}]] def ", seed=1, **NAME_ARGS)
        assert choice.text
    retries = client.stats()["retries"]
    assert retries == {"ServerError": 2, "RateLimited": 2, "ConnectError": 2, "Timeout": 2, "ResponseFormatError": 2}
    assert sum("retry" in r.getMessage() for r in caplog.records) == 10
    assert server.stats()["max_successes_per_body"] == 1


def test_permanent_reset_stall_and_bad_json_raise_their_class(server):
    client = client_for(server, max_retries=1)
    for kind, cls in (("reset", ConnectError), ("stall", Timeout), ("badjson", ResponseFormatError)):
        with pytest.raises(cls) as info:
            client.complete(f"[[always:{kind}]] def ", seed=1, **NAME_ARGS)
        assert server.url in str(info.value)
    with pytest.raises(Timeout, match="api.timeout.read"):
        client.complete("[[slow:0.5]] def ", seed=1, **NAME_ARGS)  # answers, but after the 0.3 s read timeout


@pytest.mark.parametrize("server", [Options(faults=Faults(retry_after=1.0))], indirect=True)
def test_retry_after_is_honoured_and_waiting_holds_no_slot(server):
    client = client_for(server, concurrency=1)
    done: dict[str, float] = {}
    start = time.monotonic()

    def limited():
        client.complete("[[fail:1:429]] def ", seed=1, **NAME_ARGS)
        done["limited"] = time.monotonic() - start

    waiter = threading.Thread(target=limited)
    waiter.start()
    time.sleep(0.2)  # the 429 has been answered; the waiter now sleeps out Retry-After
    client.complete("def ", seed=2, **NAME_ARGS)  # the only slot must be free meanwhile
    done["other"] = time.monotonic() - start
    waiter.join()
    assert done["other"] < 0.6
    assert 1.0 <= done["limited"] < 1.6


@pytest.mark.parametrize("server", [Options(single_choice=True)], indirect=True)
def test_single_choice_server_fans_out_with_derived_seeds(server):
    client = client_for(server)
    choices = client.complete("def ", n=4, seed=7, **NAME_ARGS)
    assert len(choices) == 4
    assert server.stats()["requests"] == 4 and server.stats()["max_successes_per_body"] == 1
    assert [c.text for c in client.complete("def ", n=4, seed=7, **NAME_ARGS)] == [c.text for c in choices]
    seeds = sorted(json.loads(body)["seed"] for body in server.received)
    assert seeds == [7 + SEED_STRIDE * i for i in range(4)]


@pytest.mark.parametrize("server", [Options(usage_of_one=True)], indirect=True)
def test_each_choice_has_its_own_token_count_when_the_server_counts_one(server):
    choices = client_for(server).complete("def ", n=3, seed=5, **CODE_ARGS)
    assert [c.completion_tokens for c in choices] == [len(tokenize(c.text)) for c in choices]
    assert server.tokenized == 3


@pytest.mark.parametrize("server", [Options(usage_of_one=True, tokenize="missing")], indirect=True)
def test_a_server_that_cannot_tokenize_keeps_its_answer_and_warns_once(server, caplog):
    client = client_for(server)
    first = client.complete("def ", n=3, seed=5, **CODE_ARGS)
    client.complete("def ", n=3, seed=6, **CODE_ARGS)
    assert len(first) == 3 and sum(c.completion_tokens for c in first) == len(tokenize(first[-1].text))
    assert sum("undercounted" in r.getMessage() for r in caplog.records) == 1
    assert server.tokenized == 1  # after the first refusal it is not asked again


@pytest.mark.parametrize("server", [Options(usage_of_one=True, tokenize="error")], indirect=True)
def test_failing_token_counts_neither_fail_a_request_nor_open_the_breaker(server):
    client = client_for(server, circuit_breaker={"enabled": True, "failure_threshold": 2})
    for seed in range(4):  # 12 failed counts, each tried once: the answers stand
        assert len(client.complete("def ", n=3, seed=seed, **CODE_ARGS)) == 3
    assert server.tokenized == 12 and server.stats()["requests"] == 4


@pytest.mark.parametrize("server", [Options(usage_of_one=True)], indirect=True)
def test_token_counts_find_tokenize_at_the_root_when_the_base_url_ends_in_v1(server):
    client = make_client(fast_api(route="/completions"), base_url=server.url + "/v1", concurrency=2)
    choices = client.complete("def ", n=2, seed=5, **CODE_ARGS)
    assert [c.completion_tokens for c in choices] == [len(tokenize(c.text)) for c in choices]


@pytest.mark.parametrize("server", [Options(faults=Faults(short=1.0))], indirect=True)
def test_short_choice_lists_are_completed(server):
    client = client_for(server)
    assert len(client.complete("def ", n=5, seed=3, **NAME_ARGS)) == 5
    # the fault halves every list: asked 5 got 2, asked 3 got 1, asked 2 got 1, asked 1 got 1
    asked = sorted(json.loads(body)["n"] for body in server.received)
    assert asked == [1, 2, 3, 5]


def test_scoring_keeps_only_tokens_of_the_text(server):
    scorer = make_scorer(fast_api(), base_url=server.url, concurrency=2)
    prompt, text = "def f(x):\n    ", "return x + 1\n"
    got = scorer.token_logprobs(text, prompt=prompt)
    full = tokenize(prompt + text)
    prompt_len = len(tokenize(prompt))
    expected = [token_logprob(full[i - 1] if i else "", full[i]) for i in range(prompt_len, len(full))]
    assert got == expected
    assert scorer.perplexity(text, prompt=prompt) > 1.0
    assert scorer.token_logprobs("", prompt=prompt) == []


@pytest.mark.parametrize("server", [Options(logprobs="missing"), Options(logprobs="error")], indirect=True)
def test_scoring_unsupported_is_raised_once_and_clearly(server):
    scorer = make_scorer(fast_api(), base_url=server.url, concurrency=2)
    with pytest.raises(ScoringUnsupported, match="set scoring.enabled: false"):
        scorer.token_logprobs("return 1\n", prompt="def f():\n    ")
    assert server.stats()["requests"] == 1  # not retried
    with pytest.raises(ScoringUnsupported):
        scorer.token_logprobs("return 2\n")
    assert server.stats()["requests"] == 1  # remembered: no second request


SECRET = "sk-test-9f8e7d6c5b4a"


@pytest.mark.parametrize(
    "server", [Options(required_headers={"Authorization": f"Bearer {SECRET}-other"})], indirect=True
)
def test_header_env_expansion_and_secret_never_leaks(server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    headers = {"headers": {"Authorization": "Bearer ${FAKE_API_KEY}"}}
    monkeypatch.delenv("FAKE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="FAKE_API_KEY"):
        client_for(server, **headers)
    monkeypatch.setenv("FAKE_API_KEY", SECRET)
    client = client_for(server, **headers)
    with pytest.raises(BadRequest) as info:
        client.complete("def ", seed=1, **NAME_ARGS)  # the server echoes the wrong key it got
    assert "check api.headers" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in caplog.text

    monkeypatch.setenv("FAKE_API_KEY", f"{SECRET}-other")
    assert client_for(server, **headers).complete("def ", seed=1, **NAME_ARGS)


def test_down_server_opens_the_breaker_and_names_url_and_last_error(caplog):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}"
    api = fast_api(max_retries=10, circuit_breaker={"failure_threshold": 3, "reset_timeout": 30.0})
    client = make_client(api, base_url=url, concurrency=2)
    with pytest.raises(CircuitOpen) as info:
        client.complete("def ", seed=1, **NAME_ARGS)
    message = str(info.value)
    assert url in message and "ConnectError" in message and "refused" in message.lower()
    assert client.stats()["requests"] == 3
    assert "circuit open" in caplog.text
    with pytest.raises(CircuitOpen):  # and it fails fast for everyone else in the process
        make_client(api, base_url=url, concurrency=2).complete("def ", seed=2, **NAME_ARGS)


def test_the_run_of_failures_that_opens_the_breaker_is_at_least_the_requests_in_flight():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    api = fast_api(max_retries=10, circuit_breaker={"failure_threshold": 3, "reset_timeout": 30.0})
    client = make_client(api, base_url=url, concurrency=6)
    with pytest.raises(CircuitOpen, match="6 consecutive failures"):
        client.complete("def ", seed=1, **NAME_ARGS)
    assert client.stats()["requests"] == 6


DONE_WHEN = Options(
    seed=11,
    faults=Faults(server_error=0.10, rate_limited=0.05, reset=0.02, stall=0.01, retry_after=0.2, stall_s=1.0),
)


@pytest.mark.parametrize("server", [DONE_WHEN], indirect=True)
def test_two_thousand_completions_through_faults(server):
    client = client_for(server, concurrency=16, max_retries=10, timeout={"read": 0.5})
    jobs = 2000

    def one(i: int):
        return client.complete(f"# task {i}\ndef ", seed=i, **NAME_ARGS)

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(one, range(jobs)))
    assert all(len(r) == 1 and r[0].text for r in results)
    served, stats = server.stats(), client.stats()
    faults = sum(served["faults"].values())
    # a timeout the server did not inject (a loaded machine) may have been answered after all: the only
    # duplicates allowed; on an idle machine there are none
    unforced_timeouts = stats["retries"].get("Timeout", 0) - served["faults"].get("stall", 0)
    assert unforced_timeouts >= 0
    assert served["bodies"] == jobs and served["successes"] - jobs <= unforced_timeouts
    assert served["max_successes_per_body"] <= 1 + unforced_timeouts
    assert stats["requests"] == served["requests"] == served["successes"] + faults
    assert stats["retries_total"] == faults + unforced_timeouts
    assert set(stats["retries"]) == {"ServerError", "RateLimited", "ConnectError", "Timeout"}
    assert stats["failures_total"] == 0


BASIC = "Basic " + base64.b64encode(b"alice:s3cret-pass").decode()


@pytest.mark.parametrize("server", [Options(required_headers={"Authorization": BASIC})], indirect=True)
def test_credentials_from_netrc_or_the_url_and_the_config_header_wins(server, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret-pass\n")
    monkeypatch.setenv("NETRC", str(netrc))
    assert client_for(server).complete("def ", seed=1, **NAME_ARGS)
    with pytest.raises(BadRequest) as info:  # a configured Authorization header is sent instead of .netrc's
        client_for(server, headers={"Authorization": "Bearer other-token"}).complete("def ", seed=1, **NAME_ARGS)
    assert "other-token" not in str(info.value)

    monkeypatch.delenv("NETRC")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    with_user = server.url.replace("http://", "http://alice:s3cret-pass@")
    client = make_client(fast_api(), base_url=with_user, concurrency=2)
    assert client.complete("def ", seed=1, **NAME_ARGS)
    with pytest.raises(BadRequest) as info:
        client.complete("[[always:404]] def ", seed=1, **NAME_ARGS)
    assert "s3cret-pass" not in str(info.value) and "***@127.0.0.1" in str(info.value)


def test_proxy_and_ca_bundle_come_from_the_environment_once(monkeypatch, tmp_path):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://user:pw@proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal.test")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    assert Environment.read("http://model.test:8000").proxy == "http://user:pw@proxy.test:3128"
    assert Environment.read("http://gpu.internal.test:8000").proxy is None
    assert Environment.read("https://model.test").ca_certs == str(tmp_path / "ca.pem")

    client = make_client(fast_api(), base_url="http://model.test:8000/v1", concurrency=2)
    assert isinstance(client.transport.connections.pool, urllib3.ProxyManager)
    assert client.transport.connections.pool.proxy_headers == {
        "Proxy-Authorization": "Basic " + base64.b64encode(b"user:pw").decode()
    }
    assert client.transport.connections.target == "http://model.test:8000/v1"  # absolute-form, as a proxy needs
    direct = make_client(fast_api(), base_url="http://localhost:8000/v1", concurrency=2)
    assert direct.transport.connections.pool is None and direct.transport.connections.target == "/v1"


def test_an_injected_pool_carries_the_requests(server):
    pool = urllib3.PoolManager(maxsize=2, block=True, retries=False)
    client = OpenAIClient(fast_api(), base_url=server.url, concurrency=2, pool=pool)
    assert client.complete("def ", seed=1, **NAME_ARGS)
    assert client.transport.connections.pool is pool and len(pool.pools) == 1
    client.close()
    assert len(pool.pools) == 0


def test_the_native_servers_log_probs_are_read_like_the_legacy_ones():
    from evoselfcode.clients.openai import parse_choices

    entry = {"id": 1, "token": " x", "bytes": [32, 120], "logprob": -0.5, "top_logprobs": []}
    native = {"choices": [{"text": " x y", "index": 0, "finish_reason": "stop",
                           "logprobs": {"content": [entry, {**entry, "token": " y", "logprob": -1.25}]}}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 2}}  # fmt: skip
    legacy_lp = {"tokens": [" x", " y"], "token_logprobs": [-0.5, -1.25]}
    legacy = {**native, "choices": [{**native["choices"][0], "logprobs": legacy_lp}]}
    (a,), (b,) = parse_choices(native, url="u"), parse_choices(legacy, url="u")
    assert a.tokens == b.tokens == (" x", " y") and a.token_logprobs == b.token_logprobs == (-0.5, -1.25)
    assert a.usage == {"prompt_tokens": 3, "completion_tokens": 2}
