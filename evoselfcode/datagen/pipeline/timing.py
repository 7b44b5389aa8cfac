"""`{names,code}/timing.json`: what the requests of a stage cost in wall-clock, per mode (code's: tests' too).

Apart from `metrics.json` on purpose: timings differ from run to run, the data and metrics do not.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable

from evoselfcode.datagen.schemas import RequestTiming


def _latency(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "p50": None, "p95": None, "max": None}
    q = statistics.quantiles(values, n=20, method="inclusive") if len(values) > 1 else [values[0]] * 19
    return {"mean": round(statistics.fmean(values), 4), "p50": round(q[9], 4), "p95": round(q[18], 4),
            "max": round(max(values), 4)}  # fmt: skip


def _latencies(timings: Iterable[RequestTiming]) -> tuple[dict[str, list[float]], Counter[str]]:
    """Per mode: the latency of each request, and how many were answered from the answer store."""
    latencies: dict[str, list[float]] = defaultdict(list)
    resumed: Counter[str] = Counter()
    for t in timings:
        latencies[t.mode].append(t.latency)
        resumed[t.mode] += t.resumed
    return latencies, resumed


def _requests(latencies: list[float], resumed: int) -> dict:
    # resumed: answered from the answer store (their latency is the one of when they were asked); asked: sent now
    return {"requests": len(latencies), "resumed": resumed, "asked": len(latencies) - resumed,
            "request_seconds": round(math.fsum(latencies), 3), "latency_s": _latency(latencies)}  # fmt: skip


def timing_summary(
    timings: Iterable[RequestTiming], kept_modes: Iterable[str], test_timings: Iterable[RequestTiming] | None = None
) -> dict:
    """Per mode: requests, their latency, and the request-seconds spent per record kept in the end.

    `kept_modes` holds the mode of every kept record (a name's `source`, a function's `source`); `test_timings`
    the requests for the descriptions' tests, which serve both modes (a `tests` entry of their own).
    """
    latencies, resumed = _latencies(timings)
    kept = Counter(kept_modes)
    by_mode = {}
    for mode in sorted(latencies.keys() | kept.keys()):
        entry = _requests(latencies[mode], resumed[mode])
        # what one usable record costs: the time of every answered request of its mode over the records kept
        # (a request that failed after its retries is in failures.jsonl, without a time)
        entry["kept"] = kept[mode]
        entry["seconds_per_kept"] = round(math.fsum(latencies[mode]) / kept[mode], 4) if kept[mode] else None
        by_mode[mode] = entry
    out: dict = {"by_mode": by_mode}
    if test_timings is not None:
        test_latencies, test_resumed = _latencies(test_timings)
        out["tests"] = _requests([s for values in test_latencies.values() for s in values], test_resumed.total())
    return out
