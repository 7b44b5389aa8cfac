"""The shard runner and the answer store it reads and fills, with an in-memory client."""

import threading
import time

import pytest

from evoselfcode.clients.base import Choice, CompletionClient
from evoselfcode.clients.errors import CircuitOpen, ServerError
from evoselfcode.datagen.pipeline.runner import MAX_THREADS_PER_SLOT, Request, request_seed, run_requests
from evoselfcode.datagen.pipeline.store import AnswerStore


class ScriptedClient(CompletionClient):
    """Answers `text:<prompt>`; prompts in `fail` raise; later prompts answer sooner, to scramble order."""

    def __init__(self, fail=(), error=ServerError):
        self.fail, self.error, self.calls = set(fail), error, []
        self.lock = threading.Lock()

    def complete(self, prompt, *, max_tokens, temperature, top_p, n=1, stop=None, logprobs=None, seed=None, extra=None,
                 retry_wait=None):  # fmt: skip
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


def test_a_fatal_error_stops_the_other_workers_at_once():
    # concurrency 1: p1's fatal error is raised before p2.. are sent, not after every request
    client = ScriptedClient(fail={"p1"}, error=CircuitOpen)
    with pytest.raises(CircuitOpen):
        run_requests(client, requests(8), concurrency=1)
    assert client.calls == ["p0", "p1"]


def test_fatal_names_which_errors_stop_the_run():
    out = run_requests(ScriptedClient(fail={"p1"}, error=CircuitOpen), requests(3), concurrency=2, fatal=())
    assert isinstance(out[1].error, CircuitOpen) and out[0].choices and out[2].choices
    with pytest.raises(ServerError):
        run_requests(ScriptedClient(fail={"p1"}), requests(3), concurrency=2, fatal=(ServerError,))


def test_a_rerun_asks_only_what_the_store_lacks(tmp_path):
    first = ScriptedClient(fail={"p2", "p4"})
    run_requests(first, requests(6), concurrency=3, store=AnswerStore(tmp_path), server="s")
    assert sorted(first.calls) == [f"p{i}" for i in range(6)]

    second = ScriptedClient()
    out = run_requests(second, requests(6), concurrency=3, store=AnswerStore(tmp_path), server="s")
    assert sorted(second.calls) == ["p2", "p4"]
    assert [o.choices[0].text for o in out] == [f"text:p{i}:0" for i in range(6)]
    assert [o.resumed for o in out] == [True, True, False, True, False, True]
    assert out[0].choices[0].token_logprobs == (-0.5,)


def test_another_server_is_asked_again(tmp_path):
    run_requests(ScriptedClient(), requests(3), concurrency=2, store=AnswerStore(tmp_path), server="a")
    other = ScriptedClient()
    out = run_requests(other, requests(3), concurrency=2, store=AnswerStore(tmp_path), server="b")
    assert sorted(other.calls) == ["p0", "p1", "p2"] and not any(o.resumed for o in out)


def test_a_killed_run_keeps_what_was_answered(tmp_path):
    # Ctrl-C (or a fatal error) after 3 answers: those 3 are in the store, the rerun asks only the rest
    class Interrupted(ScriptedClient):
        def complete(self, prompt, **params):
            if prompt == "p3":
                raise KeyboardInterrupt
            return super().complete(prompt, **params)

    with pytest.raises(KeyboardInterrupt):
        run_requests(Interrupted(), requests(6), concurrency=1, store=AnswerStore(tmp_path), server="s")
    assert AnswerStore(tmp_path).size().answers == 3
    again = ScriptedClient()
    out = run_requests(again, requests(6), concurrency=2, store=AnswerStore(tmp_path), server="s")
    assert sorted(again.calls) == ["p3", "p4", "p5"]
    assert [o.resumed for o in out] == [True] * 3 + [False] * 3


def test_request_seeds_are_stable_and_distinct():
    seeds = {request_seed(42, f"d{i}", mode, 0) for i in range(500) for mode in ("FIM", "L2R")}
    assert len(seeds) == 1000
    assert request_seed(42, "d1", "FIM", 0) == request_seed(42, "d1", "FIM", 0)
    assert request_seed(42, "d1", "FIM", 0) != request_seed(43, "d1", "FIM", 0)
    assert all(0 <= s < 2**31 for s in seeds)


class SleepyClient(CompletionClient):
    """Prompts in `sleepers` wait as a client waits before a retry (inside the runner's `retry_wait`, holding no
    slot) until `until` is set or `wait` passes."""

    def __init__(self, sleepers=(), until=None, wait=5.0):
        self.sleepers, self.until, self.wait = set(sleepers), until or threading.Event(), wait
        self.lock = threading.Lock()
        self.threads, self.asleep, self.most_asleep, self.order = set(), 0, 0, []

    def complete(self, prompt, *, retry_wait, **params):
        with self.lock:
            self.threads.add(threading.get_ident())
        if prompt in self.sleepers:
            with retry_wait():
                with self.lock:
                    self.asleep += 1
                    self.most_asleep = max(self.most_asleep, self.asleep)
                self.until.wait(self.wait)
                with self.lock:
                    self.asleep -= 1
        with self.lock:
            self.order.append(prompt)
        return [Choice(text=prompt, finish_reason="stop")]


def test_a_request_waiting_to_retry_lends_its_turn_to_the_next_request():
    # concurrency 1: p0 waits until p3 is answered, which only a stand-in worker can send meanwhile
    client = SleepyClient(sleepers={"p0"})
    done = threading.Event()
    original = client.complete

    def complete(prompt, **params):
        out = original(prompt, **params)
        if prompt == "p3":
            client.until.set()
            done.set()
        return out

    client.complete = complete
    out = run_requests(client, requests(4), concurrency=1)
    assert done.is_set() and client.order[-1] == "p0" and all(o.choices for o in out)


class CountedThread(threading.Thread):
    started = 0

    def start(self):
        type(self).started += 1
        super().start()


def test_a_run_without_retries_starts_one_thread_per_slot(monkeypatch):
    monkeypatch.setattr(threading, "Thread", CountedThread)
    CountedThread.started = 0
    client = SleepyClient()
    out = run_requests(client, requests(40), concurrency=3)
    assert CountedThread.started == 3 and len(client.threads) <= 3 and all(o.choices for o in out)


def test_no_thread_to_spare_for_a_stand_in_is_no_hang(monkeypatch):
    class NoMoreThreads(threading.Thread):
        def start(self):
            if self.name == "evoselfcode-request" and sum(t.name == self.name for t in threading.enumerate()) >= 1:
                raise RuntimeError("can't start new thread")
            super().start()

    monkeypatch.setattr(threading, "Thread", NoMoreThreads)
    client = SleepyClient(sleepers={"p0", "p1"}, wait=0.05)
    out = run_requests(client, requests(5), concurrency=3)  # one thread does it all, waits included
    assert all(o.choices for o in out) and len(client.threads) == 1


def test_threads_waiting_to_retry_are_capped_per_slot():
    # every request waits (up to 0.2 s): at most MAX_THREADS_PER_SLOT threads per slot exist, so as many wait at once
    client = SleepyClient(sleepers={f"p{i}" for i in range(12)}, wait=0.2)
    out = run_requests(client, requests(12), concurrency=2)
    assert client.most_asleep == 2 * MAX_THREADS_PER_SLOT and all(o.choices for o in out)


def test_an_error_outside_a_request_stops_the_run_and_is_raised(tmp_path):
    class FullDisk(AnswerStore):
        def put(self, key, choices):
            raise OSError(28, "No space left on device")

    client = SleepyClient()
    with pytest.raises(OSError, match="No space left"):
        run_requests(client, requests(50), concurrency=4, store=FullDisk(tmp_path))
    assert len(client.order) <= 4  # each worker stopped after its first answer
