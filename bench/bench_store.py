"""The answer store at scale: lookups per second and bytes per answer with a million stored answers.

Fills a store with `--answers` answers shaped like a code answer (a ~600-character function with its tokens and
their log-probs), written in the store's own format but without the per-answer fsync a job does (the fill only
sets the scene), then times `get` of stored keys (hits, random order: no cache favours them) and of keys never
stored (misses, what a first run pays), each on a fresh `AnswerStore`, and `put` with its fsync and rename.

    python bench/bench_store.py [--answers 1000000] [--dir /tmp/store-bench] [--lookups 20000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import time
from pathlib import Path

from common import machine, save

from evoselfcode.clients.base import Choice
from evoselfcode.datagen.pipeline.store import AnswerStore, encode

FUNCTION = 'def moving_average(values, window):\n    """Moving average over a window."""\n' + "    x = 1\n" * 60


def answer(i: int) -> list[Choice]:
    text = FUNCTION + f"    return {i}\n"
    tokens = tuple(text[j : j + 4] for j in range(0, len(text), 4))
    return [Choice(text=text, finish_reason="stop", tokens=tokens, token_logprobs=tuple(-0.25 for _ in tokens),
                   usage={"completion_tokens": len(tokens)}, latency=1.5)]  # fmt: skip


def key(i: int) -> str:
    return hashlib.sha256(f"request {i}".encode()).hexdigest()


def fill(store: AnswerStore, count: int) -> float:
    started = time.perf_counter()
    texts = {}
    for i in range(count):
        k = key(i)
        path = store.path(k)
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True)
        # the same bytes as put() writes; the shapes differ only in the number, so encode a few and patch
        text = texts.setdefault(i % 7, encode(k, answer(i % 7)))
        path.write_text(text.replace(key(i % 7), k) if i % 7 != i else text, encoding="utf-8")
    return time.perf_counter() - started


def timed(fn, keys: list[str]) -> float:
    started = time.perf_counter()
    for k in keys:
        fn(k)
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--answers", type=int, default=1_000_000)
    p.add_argument("--lookups", type=int, default=20_000)
    p.add_argument("--dir", default="/tmp/store-bench")
    args = p.parse_args()
    root = Path(args.dir)
    store = AnswerStore(root)
    present = store.size().answers if root.is_dir() else 0
    fill_s = fill(store, args.answers) if present != args.answers else None
    size = store.size()
    rng = random.Random(1)
    hits = [key(rng.randrange(args.answers)) for _ in range(args.lookups)]
    misses = [key(args.answers + i) for i in range(args.lookups)]
    fresh = AnswerStore(root)
    assert all(fresh.get(k) is not None for k in hits[:100]) and fresh.get(misses[0]) is None
    hit_s, miss_s = timed(fresh.get, hits), timed(fresh.get, misses)
    puts = [key(args.answers * 2 + i) for i in range(min(2000, args.lookups))]
    put_s = timed(lambda k: fresh.put(k, answer(0)), puts)
    for k in puts:
        fresh.path(k).unlink()
    disk = sum(os.stat(p).st_blocks * 512 for p in (root / "answers").rglob("*.json"))
    result = {
        "machine": machine(),
        "answers": size.answers,
        "fill_s": fill_s,
        "bytes_per_answer": round(size.bytes / size.answers),
        "disk_bytes_per_answer": round(disk / size.answers),
        "hit_us": round(hit_s / len(hits) * 1e6, 1),
        "hits_per_s": round(len(hits) / hit_s),
        "miss_us": round(miss_s / len(misses) * 1e6, 1),
        "put_us": round(put_s / len(puts) * 1e6, 1),
    }
    print(result)
    save("store", result)
    if os.environ.get("STORE_BENCH_CLEAN"):
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
