"""A client's counters: requests, answers, tokens, retries and failures by cause, latency percentiles."""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any


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
