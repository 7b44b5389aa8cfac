"""`code/metrics.json`: the filter funnel, reasons, sources and lengths of stage B."""

from __future__ import annotations

import statistics
from collections import Counter

from evoselfcode.datagen.filters.code import funnel


def _quantiles(values: list[int]) -> dict:
    if not values:
        return {"count": 0}
    q = statistics.quantiles(values, n=20, method="inclusive") if len(values) > 1 else [values[0]] * 19
    return {"count": len(values), "min": min(values), "p5": q[0], "p50": q[9], "p95": q[18], "max": max(values),
            "mean": round(statistics.fmean(values), 1)}  # fmt: skip


def code_metrics(raw: list[dict], kept: list[dict], rejects: list[dict], failures: list[dict]) -> dict:
    reasons = Counter(r["reason"] for r in rejects)
    by_source = {}
    for source in sorted({r["source"] for r in raw}):
        generated = sum(r["source"] == source for r in raw)
        n_kept = sum(r["source"] == source for r in kept)
        by_source[source] = {
            "generated": generated,
            "kept": n_kept,
            "pass_rate": round(n_kept / generated, 4) if generated else None,
            "reasons": dict(sorted(Counter(r["reason"] for r in rejects if r["source"] == source).items())),
        }
    return {
        "funnel": funnel([None] * len(kept) + [r["reason"] for r in rejects]),
        "accounting": {
            "generated": len(raw),
            "kept": len(kept),
            "rejected": len(rejects),
            "adds_up": len(kept) + len(rejects) == len(raw),
        },  # fmt: skip
        "reasons": dict(sorted(reasons.items())),
        "by_source": by_source,
        "pass_rate": round(len(kept) / len(raw), 4) if raw else None,
        "trimmed": sum(bool(r.get("trimmed")) for r in raw),
        "failed_requests": len(failures),
        "code_chars": _quantiles([len(r["code"]) for r in kept]),
        "code_lines": _quantiles([r["code"].count("\n") + 1 for r in kept]),
    }
