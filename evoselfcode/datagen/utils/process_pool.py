"""Per-item work in forked worker processes, a chunk of items at a time, the results back in order.

`map_in_workers(fn, chunks(items), worker_count(len(items)))`: fn runs on each chunk, in workers when
there are enough items and cores, else here; either way the results come back in the chunks' order.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

# Items handled together: by one worker, and in one batch of signatures (bounds the memory of a batch).
CHUNK_SIZE = 2_000
# Below this many items, forking workers costs more than it saves (~0.2 ms of work per item, ~50 ms to start).
PARALLEL_MIN_ITEMS = 4_000

T = TypeVar("T")
R = TypeVar("R")


def chunks(items: Iterable[T], size: int | None = None) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (default CHUNK_SIZE), the last one shorter."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size or CHUNK_SIZE)):
        yield chunk


def worker_count(items: int) -> int:
    """Worker processes for per-item work on `items` items: the usable cores, or 0 (work here) if too few
    items, one core, or not Linux (workers are forked; macOS's system libraries do not survive a fork).

    A Snakemake job gets the cores of its `threads:` (Snakemake sets OMP_NUM_THREADS to them), so that
    parallel jobs do not each fork one worker per core of the machine. A process already running other
    threads works here: a fork copies the locks those threads may hold.
    """
    if items < PARALLEL_MIN_ITEMS or sys.platform != "linux" or threading.active_count() > 1:
        return 0
    cores = len(os.sched_getaffinity(0))
    allowed = os.environ.get("OMP_NUM_THREADS", "")
    if allowed.isdigit() and int(allowed) > 0:
        cores = min(cores, int(allowed))
    return cores if cores > 1 else 0


def map_in_workers(fn: Callable[[T], R], batches: Iterable[T], workers: int) -> Iterator[R]:
    """fn(batch) for each batch, in order: in `workers` forked processes, or here if fewer than 2.

    `fn` and the batches are pickled to the workers, the results back. At most two batches per worker
    are under way, so an input read lazily is never all in memory. A worker that dies (OOM killer) raises
    BrokenProcessPool here instead of leaving the job waiting forever.
    """
    if workers < 2:
        yield from map(fn, batches)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.submit(fn, batch))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
