"""The shard runner and its request journal, with an in-memory client."""

import threading
import time

import pytest

from evoselfcode.clients.base import Choice, CompletionClient
from evoselfcode.clients.errors import CircuitOpen, ServerError
from evoselfcode.datagen.pipeline.journal import Journal, request_key
from evoselfcode.datagen.pipeline.runner import Request, request_seed, run_requests


class ScriptedClient(CompletionClient):
    """Answers `text:<prompt>`; prompts in `fail` raise; later prompts answer sooner, to scramble order."""

    def __init__(self, fail=(), error=ServerError):
        self.fail, self.error, self.calls = set(fail), error, []
        self.lock = threading.Lock()

    def complete(self, prompt, *, max_tokens, temperature, top_p, n=1, stop=None, logprobs=None, seed=None, extra=None):
        with self.lock:
            self.calls.append(prompt)
        time.sleep(0.02 / (1 + int(prompt[1:])))
        if prompt in self.fail:
            raise self.error(f"boom on {prompt}", url="http://test")
        return [Choice(text=f"text:{prompt}:{i}", finish_reason="stop", tokens=("a",), token_logprobs=(-0.5,))
                for i in range(n)]  # fmt: skip


PARAMS = {"max_tokens": 8, "temperature": 0.0, "top_p": 1.0, "n": 2, "seed": 1}


def requests(count):
    return [Request(key=(f"d{i}",), prompt=f"p{i}", params=PARAMS) for i in range(count)]


def test_outcomes_follow_request_order_not_completion_order():
    out = run_requests(ScriptedClient(), requests(12), concurrency=6)
    assert [o.request.key for o in out] == [(f"d{i}",) for i in range(12)]
    assert [o.choices[1].text for o in out] == [f"text:p{i}:1" for i in range(12)]


def test_a_failed_request_is_an_outcome_not_an_abort():
    out = run_requests(ScriptedClient(fail={"p3"}), requests(5), concurrency=2)
    assert isinstance(out[3].error, ServerError) and out[3].choices is None
    assert all(o.choices for i, o in enumerate(out) if i != 3)


def test_an_open_circuit_fails_the_whole_run():
    with pytest.raises(CircuitOpen):
        run_requests(ScriptedClient(fail={"p1"}, error=CircuitOpen), requests(4), concurrency=2)


def test_a_rerun_asks_only_what_the_journal_lacks(tmp_path):
    path = tmp_path / "j.jsonl"
    first = ScriptedClient(fail={"p2", "p4"})
    run_requests(first, requests(6), concurrency=3, journal=Journal(path), model="m")
    assert sorted(first.calls) == [f"p{i}" for i in range(6)]

    second = ScriptedClient()
    out = run_requests(second, requests(6), concurrency=3, journal=Journal(path), model="m")
    assert sorted(second.calls) == ["p2", "p4"]
    assert [o.choices[0].text for o in out] == [f"text:p{i}:0" for i in range(6)]
    assert out[0].choices[0].token_logprobs == (-0.5,)


def test_the_journal_ignores_a_line_cut_short_by_a_kill(tmp_path):
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.record("k1", [Choice(text="one")])
    journal.close()
    with open(path, "a") as fh:
        fh.write('{"key": "k2", "choices": [{"te')
    assert Journal(path).get("k1") == [Choice(text="one")]
    assert Journal(path).get("k2") is None


def test_another_model_or_parameter_is_another_request():
    assert request_key("p", PARAMS, "a") != request_key("p", PARAMS, "b")
    assert request_key("p", PARAMS, "a") != request_key("p", {**PARAMS, "seed": 2}, "a")
    assert request_key("p", dict(reversed(PARAMS.items())), "a") == request_key("p", PARAMS, "a")


def test_discard_removes_the_journal(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    journal.record("k", [Choice(text="x")])
    journal.discard()
    assert not (tmp_path / "j.jsonl").exists()


def test_request_seeds_are_stable_and_distinct():
    seeds = {request_seed(42, f"d{i}", mode, 0) for i in range(500) for mode in ("FIM", "L2R")}
    assert len(seeds) == 1000
    assert request_seed(42, "d1", "FIM", 0) == request_seed(42, "d1", "FIM", 0)
    assert request_seed(42, "d1", "FIM", 0) != request_seed(43, "d1", "FIM", 0)
    assert all(0 <= s < 2**31 for s in seeds)
