"""Running a shard's requests concurrently: results keyed by request, never by completion order."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from evoselfcode.clients.base import Choice
from evoselfcode.clients.errors import CircuitOpen
from evoselfcode.config import CodeGen, Config, NameGen, Tests
from evoselfcode.datagen.pipeline.store import AnswerStore, request_key
from evoselfcode.datagen.schemas import Failure, RequestTiming

log = logging.getLogger("evoselfcode.runner")
progress_log = logging.getLogger("evoselfcode.runner.progress")  # the console also shows these, now and then
# At most this many threads per in-flight slot, counting the workers sleeping before a retry (see Workers).
MAX_THREADS_PER_SLOT = 4


def request_seed(base: int, *parts: object) -> int:
    """A request's seed from `meta.seed` and its identity (description id, mode, index)."""
    digest = hashlib.sha256("\x1f".join(map(str, (base, *parts))).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def sampling_params(section: NameGen | CodeGen | Tests, seed: int, stop: list[str] | None = None) -> dict:
    """A generation request's sampling settings from its config section (namegen, codegen or tests)."""
    return dict(max_tokens=section.max_new_tokens, temperature=section.temperature, top_p=section.top_p,
                n=section.n, stop=section.stop if stop is None else stop, seed=seed)  # fmt: skip


@dataclass(frozen=True)
class Request:
    key: tuple
    prompt: str
    params: dict[str, Any] = field(default_factory=dict)
    route: str = "completions"  # what is asked: a completion, or the log-probs of given text ("score")
    item: Any = None  # what the request was built from, for the stage that reads its answer


# How a request is put to the client: (client, request, retry_wait) -> the answer's choices.
Ask = Callable[[Any, Request, Callable], list[Choice]]


def complete(client, request: Request, retry_wait: Callable) -> list[Choice]:
    return client.complete(request.prompt, **request.params, retry_wait=retry_wait)


@dataclass
class Outcome:
    request: Request
    key: str = ""  # the answer store's key
    choices: list[Choice] | None = None
    error: Exception | None = None
    resumed: bool = False  # answered before, from the answer store

    def timing(self, desc_id: str, mode: str, func_name: str | None = None) -> RequestTiming:
        choices = self.choices or []
        latency = max((c.latency for c in choices), default=0.0)
        return RequestTiming(desc_id=desc_id, mode=mode, func_name=func_name, choices=len(choices),
                             latency=round(latency, 4), resumed=self.resumed, key=self.key)  # fmt: skip


class _LogLines:
    """A file for tqdm that turns each status it writes (`\r`-led, no newline off a terminal) into one log line."""

    def write(self, text: str) -> int:
        if line := text.strip("\r\n "):
            progress_log.info("%s", line)
        return len(text)

    def flush(self) -> None:
        pass


class Progress:
    """Requests done, failed, rate and time left: a tqdm bar on an interactive terminal, a log line every `every` s."""

    FORMAT = "{n_fmt}/{total_fmt} requests{postfix} [{elapsed}<{remaining}, {rate_fmt}]"

    def __init__(self, total: int, resumed: int, every: float):
        self.total, self.done, self.failed = total, resumed, 0
        if resumed:
            log.info("%d of %d requests answered before, from the answer store", resumed, total)
        common = {"total": total, "initial": resumed, "unit": "req", "postfix": {"failed": 0}}
        # the log always gets the lines (the console handler drops INFO when there is a log file)
        # leave=False: close() adds no second copy of the last line (it refreshes only when that one is not out yet)
        self.bars = [
            tqdm(**common, file=_LogLines(), mininterval=every, bar_format=self.FORMAT, ascii=True, leave=False)
        ]
        if sys.stderr.isatty():
            self.bars.append(tqdm(**common, file=sys.stderr, mininterval=0.2, dynamic_ncols=True))
        if self.done >= total:
            self.close()

    def step(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        for bar in self.bars:
            if failed:
                bar.set_postfix(failed=self.failed, refresh=False)
            bar.update(1)
        if self.done >= self.total:
            self.close()

    def close(self) -> None:
        for bar in self.bars:
            if bar.last_print_n < bar.n:
                bar.refresh()
            bar.close()
        self.bars = []


def run_requests(
    client,
    requests: Sequence[Request],
    *,
    concurrency: int,
    store: AnswerStore | None = None,
    server: str = "",
    ask: Ask = complete,
    fatal: tuple[type[Exception], ...] = (CircuitOpen,),
    every: float = 10.0,
) -> list[Outcome]:
    """Every request's outcome, in the order of `requests`; one failure does not stop the others.

    Requests the store answered before are not sent again, and new answers go into it; `server` is the
    server's identity, part of every key. An error of a `fatal` type fails the whole call.
    """
    outcomes = [Outcome(r, key=request_key(server, r.route, r.prompt, r.params)) for r in requests]
    todo = []
    for i, out in enumerate(outcomes):
        if store is not None and (known := store.get(out.key)) is not None:
            out.choices, out.resumed = known, True
        else:
            todo.append(i)
    progress = Progress(len(requests), len(requests) - len(todo), every)
    done = threading.Lock()

    def call(i: int) -> None:
        out = outcomes[i]
        try:
            out.choices = ask(client, requests[i], workers.lend_turn)
        except fatal:  # e.g. the server is down: the job stops, the store keeps the answers so far
            raise
        except Exception as exc:  # becomes a failure record, never lost
            out.error = exc
        if store is not None and out.choices is not None:
            store.put(out.key, out.choices)
        with done:  # in the worker: a hand-over to another thread per answer would cost more than the work
            progress.step(out.error is not None)

    workers = Workers(call, todo, concurrency)
    try:
        workers.run()
    finally:
        progress.close()  # a run stopped by an error leaves no bar behind
    return outcomes


class Workers:
    """Threads that run `task(i)` for every index, `concurrency` of them at work at any time.

    A request sleeping before a retry holds no in-flight slot (clients.transport), so the task runs that
    sleep inside `lend_turn()` (the client's `retry_wait`): its worker starts a stand-in, and a worker leaves
    after its task when enough others are at work. So the slots stay full through 429s and backoff, and a
    fault-free run has exactly `concurrency` threads, each going from one request to the next without waking
    another thread.
    """

    def __init__(self, task: Callable[[int], None], indices: Sequence[int], concurrency: int):
        self._task = task
        self._todo = deque(indices)
        self._want = max(1, concurrency)
        self._most = self._want * MAX_THREADS_PER_SLOT
        self._lock = threading.Lock()
        self._working = self._live = 0  # threads not sleeping before a retry; threads alive
        self._finished = threading.Event()
        self._error: BaseException | None = None

    def run(self) -> None:
        with self._lock:
            for _ in range(min(self._want, len(self._todo))):
                self._start()
            if not self._todo:
                return
            if not self._live:
                raise RuntimeError("could not start a single request thread: the process is out of threads")
        try:
            self._finished.wait()
        except BaseException as exc:  # Ctrl-C: the workers finish the requests they hold and take no more
            with self._lock:
                self._error = self._error or exc
            raise
        if self._error is not None:
            raise self._error

    def _start(self) -> None:
        """With the lock held (the new thread waits for it before it counts itself)."""
        try:
            threading.Thread(target=self._work, name="evoselfcode-request", daemon=True).start()
        except RuntimeError as exc:  # "can't start new thread": the running workers carry on
            log.warning("could not start another request thread (%s); going on with %d", exc, self._live)
            return
        self._working += 1
        self._live += 1

    def _work(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._error is not None or not self._todo or self._working > self._want:
                        return
                    i = self._todo.popleft()
                self._task(i)
        except BaseException as exc:  # e.g. the store's disk is full: stop taking tasks, raise in run()
            with self._lock:
                self._error = self._error or exc
        finally:
            with self._lock:
                self._working -= 1
                self._live -= 1
                if not self._live:
                    self._finished.set()

    @contextlib.contextmanager
    def lend_turn(self) -> Iterator[None]:
        """Around a wait of one of this run's tasks that holds no slot: another worker takes the turn meanwhile."""
        with self._lock:
            self._working -= 1
            if self._todo and self._working < self._want and self._live < self._most and self._error is None:
                self._start()
        try:
            yield
        finally:
            with self._lock:
                self._working += 1


class FailureBudgetExceeded(RuntimeError):
    pass


def check_failure_budget(cfg: Config, failures: list[Failure], total: int, what: str) -> None:
    """Fail the job when more than `io.max_failure_rate` of its requests failed after their retries."""
    if total and len(failures) / total > cfg.io.max_failure_rate:
        last = failures[-1]
        raise FailureBudgetExceeded(
            f"{len(failures)} of {total} {what} requests failed after retries, more than io.max_failure_rate="
            f"{cfg.io.max_failure_rate}; last error: {last.error}: {last.message}"
        )
