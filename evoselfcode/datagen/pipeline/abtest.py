"""Stage-A A/B metrics: FIM vs L2R name sampling, per mode, and the difference between the modes.

Rates (compliance, weak names, coverage) get Wilson 95% intervals and a pooled two-proportion
z-test; means (distinct names per description, relevance, log-prob) get seeded percentile-bootstrap
intervals and a bootstrap test of the difference. The modes are treated as independent samples.
Stdlib only, and deterministic: each bootstrap draws from its own `random.Random` seeded by name.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter
from collections.abc import Sequence
from statistics import NormalDist

from evoselfcode.datagen.name_filters import DUPLICATE, EMPTY, IRRELEVANT, REASONS, TOO_SHORT, WEAK_NAME, relevance
from evoselfcode.datagen.schemas import NameCandidate, NameReject, NameSample

MODES = ("FIM", "L2R")
ALPHA = 0.05
Z95 = NormalDist().inv_cdf(0.975)
N_BOOT = 1000
BOOT_SEED = 0
# metric -> whether higher is better; None: reported and tested, but no "better" (log-prob is confidence, not quality)
RATE_METRICS = {"compliance": True, "weak_rate": False, "coverage": True}
MEAN_METRICS = {"distinct_per_desc": True, "relevance": True, "logprob": None}
# a sample rejected only for these still passed the name rules: fit and diversity are metrics of their own
NOT_RULES = frozenset({IRRELEVANT, DUPLICATE})
# an arm with at least this share of empty or cut names says more about its prompt and stops than about its mode
BROKEN_ARM = 0.5
TESTS = {
    "rates": "two-proportion z-test (pooled variance, two-sided); intervals: Wilson 95%",
    "means": f"seeded percentile bootstrap ({N_BOOT} resamples per mode, seed {BOOT_SEED}) of the difference in "
    "means, two-sided p = 2 * min(P(diff <= 0), P(diff >= 0)); intervals: bootstrap percentile 95%",
}


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for k successes out of n (None when n is 0)."""
    if n == 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # at k = 0 and k = n the bound is exactly 0 or 1; floating point would leave 1e-17 off
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) for p1 - p2 with the pooled standard error; identical all-0/all-1 rates give (0, 1)."""
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (k1 / n1 - k2 / n2) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def bootstrap_means(values: Sequence[float], seed: str, n_boot: int = N_BOOT) -> list[float]:
    """Means of `n_boot` resamples (with replacement) of `values`, drawn from a generator seeded by `seed`."""
    rng = random.Random(seed)
    n = len(values)
    return [math.fsum(rng.choices(values, k=n)) / n for _ in range(n_boot)]


def percentile_ci(replicates: Sequence[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(replicates, n=40, method="inclusive")  # 2.5% steps: first and last cut
    return cuts[0], cuts[-1]


def entropy_bits(names: Sequence[str]) -> float:
    """Shannon entropy of the name distribution, in bits (0 for one repeated name)."""
    counts = Counter(names)
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0


def _rate(k: int, n: int) -> dict:
    ci = wilson(k, n)
    return {"k": k, "n": n, "value": k / n if n else None, "ci95": list(ci) if ci else None}


def _mean(values: Sequence[float], replicates: Sequence[float] | None) -> dict:
    if not values:
        return {"n": 0, "value": None, "ci95": None}
    return {"n": len(values), "value": statistics.fmean(values), "ci95": list(percentile_ci(replicates))}


def _per_mode(
    mode: str,
    samples: list[NameSample],
    kept: list[NameCandidate],
    rejects: list[NameReject],
    desc_ids: list[str],
) -> tuple[dict, dict[str, list[float]], dict[str, list[float] | None]]:
    """One mode's metrics, plus the raw per-unit values and bootstrap replicates for the comparison."""
    sampled = len(samples)
    reasons = Counter(r.reason for r in rejects)
    kept_per_desc = Counter(c.desc_id for c in kept)
    covered = sum(1 for d in desc_ids if kept_per_desc[d] > 0)
    values = {
        # kept names are already unique per (description, mode), so their count is the distinct count
        "distinct_per_desc": [float(kept_per_desc[d]) for d in desc_ids],
        "relevance": [_relevance_of(c) for c in kept],
        "logprob": [c.meta["logprob"] for c in kept if c.meta.get("logprob") is not None],
    }
    boots = {m: bootstrap_means(v, f"{BOOT_SEED}:{m}:{mode}") if v else None for m, v in values.items()}
    tokens = [s.tokens for s in samples if s.tokens is not None]
    broke_rules = sum(n for r, n in reasons.items() if r not in NOT_RULES)
    metrics = {
        "sampled": sampled,
        "kept": len(kept),
        # a sample repeating a compliant name is compliant; the repeat shows in distinct_per_desc and entropy
        "compliance": _rate(sampled - broke_rules, sampled),
        "weak_rate": _rate(reasons[WEAK_NAME], sampled),
        "coverage": _rate(covered, len(desc_ids)),
        "distinct_per_desc": _mean(values["distinct_per_desc"], boots["distinct_per_desc"]),
        "distinct_names": len({c.func_name for c in kept}),
        "name_entropy_bits": entropy_bits([c.func_name for c in kept]),
        "relevance": _mean(values["relevance"], boots["relevance"]),
        "logprob": _mean(values["logprob"], boots["logprob"]),
        # what one usable name costs: all samples' tokens over the names kept (wall-clock: names/timing.json)
        "tokens_per_kept": sum(tokens) / len(kept) if kept and tokens else None,
        "reasons": {r: reasons[r] for r in REASONS} | {r: n for r, n in sorted(reasons.items()) if r not in REASONS},
    }
    return metrics | {"warnings": arm_warnings(mode, samples, reasons)}, values, boots


def arm_warnings(mode: str, samples: list[NameSample], reasons: Counter) -> list[str]:
    """Warnings for an arm whose names are mostly empty, cut short or cut off by max_new_tokens."""
    n = len(samples)
    if not n:
        return []
    out = []
    empty, short = reasons[EMPTY] / n, (reasons[EMPTY] + reasons[TOO_SHORT]) / n
    if empty >= BROKEN_ARM:
        out.append(f"arm {mode}: {empty:.0%} empty: check the prompt's end and stops")
    elif short >= BROKEN_ARM:
        out.append(f"arm {mode}: {short:.0%} empty or too short (cut): check the prompt's end and stops")
    cut = sum(1 for s in samples if s.finish_reason == "length") / n
    if cut >= BROKEN_ARM:
        out.append(f"arm {mode}: {cut:.0%} ran out of namegen.max_new_tokens before a stop: check the stops")
    return out


def _relevance_of(cand: NameCandidate) -> float:
    score = cand.meta.get("relevance")
    return float(score) if score is not None else relevance(cand.func_name, cand.desc)


def _accounting(samples: list[NameSample], kept: list[NameCandidate], rejects: list[NameReject]) -> dict:
    """Every sample is kept or rejected exactly once: by count per mode, and by (desc_id, mode, sample_index)."""
    sample_keys = Counter((s.desc_id, s.mode, s.sample_index) for s in samples)
    out_keys = Counter((c.desc_id, c.source, c.meta.get("sample_index")) for c in kept)
    out_keys.update((r.desc_id, r.mode, r.sample_index) for r in rejects)
    per_mode = {}
    for mode in MODES:
        n_s = sum(1 for s in samples if s.mode == mode)
        n_k = sum(1 for c in kept if c.source == mode)
        n_r = sum(1 for r in rejects if r.mode == mode)
        per_mode[mode] = {"sampled": n_s, "kept": n_k, "rejected": n_r, "ok": n_s == n_k + n_r}
    unmatched = sum(((sample_keys - out_keys) + (out_keys - sample_keys)).values())
    ok = unmatched == 0 and all(m["ok"] for m in per_mode.values())
    return {"ok": ok, "unmatched_keys": unmatched, **per_mode}


def _compare_rate(metric: str, a: dict, b: dict, higher_better: bool) -> dict:
    ra, rb = a[metric], b[metric]
    if not ra["n"] or not rb["n"]:
        return {"test": "z-test", "compared": False}
    z, p = two_proportion_z(ra["k"], ra["n"], rb["k"], rb["n"])
    return _result("two-proportion z-test", ra["value"] - rb["value"], p, higher_better) | {"z": z}


def _compare_mean(metric: str, values: dict, boots: dict, higher_better: bool | None) -> dict:
    fim, l2r = boots["FIM"][metric], boots["L2R"][metric]
    if fim is None or l2r is None:
        return {"test": "bootstrap", "compared": False}
    diffs = [x - y for x, y in zip(fim, l2r, strict=True)]
    below = sum(1 for d in diffs if d <= 0) / len(diffs)
    above = sum(1 for d in diffs if d >= 0) / len(diffs)
    diff = statistics.fmean(values["FIM"][metric]) - statistics.fmean(values["L2R"][metric])
    return _result("bootstrap", diff, min(1.0, 2 * min(below, above)), higher_better) | {
        "ci95": list(percentile_ci(diffs))
    }


def _result(test: str, diff: float, p: float, higher_better: bool | None) -> dict:
    better = None
    if p < ALPHA and diff != 0 and higher_better is not None:
        better = "FIM" if (diff > 0) == higher_better else "L2R"
    return {"test": test, "compared": True, "diff_fim_minus_l2r": diff, "p_value": p, "significant": p < ALPHA,
            "better": better}  # fmt: skip


def _verdict(comparison: dict) -> str:
    judged = {m: c for m, c in comparison.items() if m in RATE_METRICS or MEAN_METRICS[m] is not None}
    fim = [m for m, c in judged.items() if c.get("better") == "FIM"]
    l2r = [m for m, c in judged.items() if c.get("better") == "L2R"]
    same = [m for m, c in judged.items() if c["compared"] and c.get("better") is None]
    skipped = [m for m, c in judged.items() if not c["compared"]]
    parts = []
    if fim:
        parts.append("FIM better on " + ", ".join(fim))
    if l2r:
        parts.append("L2R better on " + ", ".join(l2r))
    if same:
        parts.append("no significant difference on " + ", ".join(same))
    if skipped:
        parts.append("not compared (no data) on " + ", ".join(skipped))
    return "; ".join(parts)


def name_metrics(
    samples: list[NameSample], kept: list[NameCandidate], rejects: list[NameReject], descriptions: int
) -> dict:
    """The A/B metrics of stage A; `descriptions` counts all input descriptions, sampled or not."""
    seen = sorted({s.desc_id for s in samples} | {c.desc_id for c in kept})
    # descriptions whose every request failed have no sample: they count as covered by no name
    desc_ids = seen + [f"\0unsampled:{i}" for i in range(max(0, descriptions - len(seen)))]
    modes, values, boots = {}, {}, {}
    for mode in MODES:
        mode_samples = [s for s in samples if s.mode == mode]
        if not mode_samples:
            continue
        modes[mode], values[mode], boots[mode] = _per_mode(
            mode,
            mode_samples,
            [c for c in kept if c.source == mode],
            [r for r in rejects if r.mode == mode],
            desc_ids,
        )
    out = {
        "descriptions": descriptions,
        "alpha": ALPHA,
        "tests": TESTS,
        "modes": modes,
        "accounting": _accounting(samples, kept, rejects),
        "warnings": [w for m in modes.values() for w in m["warnings"]],
    }
    if len(modes) < len(MODES):
        out["comparison"] = {}
        out["verdict"] = f"only {', '.join(modes) or 'no mode'} sampled: no comparison"
        return out
    comparison = {m: _compare_rate(m, modes["FIM"], modes["L2R"], hb) for m, hb in RATE_METRICS.items()}
    comparison |= {m: _compare_mean(m, values, boots, hb) for m, hb in MEAN_METRICS.items()}
    out["comparison"] = comparison
    out["verdict"] = _verdict(comparison)
    if out["warnings"]:
        out["verdict"] += " (but " + "; ".join(out["warnings"]) + ")"
    return out
