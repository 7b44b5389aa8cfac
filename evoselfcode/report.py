"""The plots of the Snakemake report (`rules/report.smk`): A/B test, name rejects, code funnel, lengths, perplexity.

Each plot reads only the metrics or records it shows, so a test can draw it from hand-made data. Files are
SVG (or PNG, by suffix) with no date and a fixed id salt, so the same metrics give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes; set before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402

from evoselfcode.datagen.checks import funnel_stages  # noqa: E402

MODES = ("FIM", "L2R")
COLORS = {"FIM": "#1f77b4", "L2R": "#ff7f0e"}
# the metrics of names/metrics.json's comparison, in the order they are drawn, with a readable label
AB_METRICS = {
    "compliance": "compliance (passes the name rules)",
    "weak_rate": "weak-name rate",
    "coverage": "coverage (descriptions with a name)",
    "distinct_per_desc": "distinct names per description",
    "relevance": "relevance to the description",
    "logprob": "mean log-prob of a kept name",
}
plt.rcParams["svg.hashsalt"] = "evoselfcode"


def _save(fig, out: str | Path) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Date": None} if str(out).endswith(".svg") else None, bbox_inches="tight")
    plt.close(fig)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_ab(metrics: dict, out: str | Path) -> None:
    """Each A/B metric per mode with its 95% interval; the title gives the test's p-value and the better mode."""
    modes = metrics.get("modes", {})
    comparison = metrics.get("comparison", {})
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, (metric, label) in zip(axes.flat, AB_METRICS.items(), strict=True):
        ax.set_title(label, fontsize=10)
        shown = [(m, modes[m][metric]) for m in MODES if m in modes and modes[m][metric].get("value") is not None]
        if not shown:
            _empty(ax, "no data")
            continue
        for x, (mode, m) in enumerate(shown):
            ci = m.get("ci95") or [m["value"], m["value"]]
            err = [[m["value"] - ci[0]], [ci[1] - m["value"]]]
            ax.errorbar([x], [m["value"]], yerr=err, fmt="o", capsize=6, color=COLORS[mode], markersize=7)
        ax.set_xticks(range(len(shown)), [mode for mode, _ in shown])
        ax.set_xlim(-0.6, len(shown) - 0.4)
        ax.set_xlabel(_verdict_of(comparison.get(metric)), fontsize=9)
    fig.suptitle(f"FIM vs L2R names: 95% intervals ({metrics.get('descriptions', '?')} descriptions)")
    fig.tight_layout()
    _save(fig, out)


def _verdict_of(comp: dict | None) -> str:
    if not comp or not comp.get("compared"):
        return "not compared"
    verdict = f"p = {comp['p_value']:.3g}"
    if comp.get("better"):
        return f"{verdict}: {comp['better']} better"
    return f"{verdict}: {'significant' if comp.get('significant') else 'no significant difference'}"


def plot_name_rejects(metrics: dict, out: str | Path) -> None:
    """Rejected names per reason, FIM and L2R side by side (reasons no sample hit are left out)."""
    modes = {m: metrics["modes"][m] for m in MODES if m in metrics.get("modes", {})}
    reasons = sorted(
        {r for m in modes.values() for r, n in m.get("reasons", {}).items() if n},
        key=lambda r: -sum(m.get("reasons", {}).get(r, 0) for m in modes.values()),
    )
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * max(len(reasons), 2)))
    if not reasons:
        _empty(ax, "no name was rejected")
    else:
        height = 0.8 / len(modes)
        for i, (mode, m) in enumerate(modes.items()):
            counts = [m.get("reasons", {}).get(r, 0) for r in reasons]
            ys = [y + (i - (len(modes) - 1) / 2) * height for y in range(len(reasons))]
            label = f"{mode} ({m.get('sampled', 0)} sampled)"
            bars = ax.barh(ys, counts, height=height, color=COLORS[mode], label=label)
            ax.bar_label(bars, fontsize=8, padding=2)
        ax.set_yticks(range(len(reasons)), reasons)
        ax.invert_yaxis()
        ax.set_xlabel("rejected names")
        ax.legend(loc="lower right")
    ax.set_title("Why names were rejected")
    fig.tight_layout()
    _save(fig, out)


def _per_benchmark(removed: dict) -> str:
    """`descriptions humaneval 3, mbpp 1; functions humaneval 2` from code/metrics.json's `decontamination`."""
    parts = []
    for stage in ("descriptions", "functions"):
        counts = removed.get(stage) or {}
        if counts:
            parts.append(f"{stage} " + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))
    return "; ".join(parts)


def plot_funnel(metrics: dict, out: str | Path) -> None:
    """Functions left after each check of stage B, in the order the checks run."""
    funnel = metrics.get("funnel", {})
    stages = [s for s in funnel_stages() if s in funnel]
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.5 * len(stages)))
    if not stages or not funnel.get(stages[0]):
        _empty(ax, "no function was generated")
    else:
        counts = [funnel[s] for s in stages]
        bars = ax.barh(range(len(stages)), counts, color="#2ca02c")
        first = counts[0]
        ax.bar_label(bars, [f"{n} ({n / first:.0%})" for n in counts], fontsize=8, padding=2)
        ax.set_yticks(range(len(stages)), stages)
        ax.invert_yaxis()
        ax.set_xlim(0, first * 1.2)
        ax.set_xlabel("functions")
    ax.set_title("Code filter funnel")
    removed = _per_benchmark(metrics.get("decontamination", {}))
    if removed:  # set-aside descriptions never reach the funnel: they are named under it
        fig.text(0.01, 0.01, f"benchmark matches removed: {removed}", fontsize=8)
    fig.tight_layout(rect=(0, 0.06 if removed else 0, 1, 1))
    _save(fig, out)


def _hist_by_source(ax, values: dict[str, list[float]], bins: Sequence[float] | int) -> None:
    for mode in MODES:
        if values.get(mode):
            ax.hist(values[mode], bins=bins, alpha=0.6, color=COLORS[mode], label=f"{mode} (n={len(values[mode])})")
    ax.legend()


def plot_code_lengths(records: Iterable[dict], out: str | Path) -> None:
    """Characters and lines of the kept functions, by the mode that produced the name."""
    chars: dict[str, list[float]] = {m: [] for m in MODES}
    lines: dict[str, list[float]] = {m: [] for m in MODES}
    for r in records:
        chars.setdefault(r["source"], []).append(len(r["code"]))
        lines.setdefault(r["source"], []).append(r["code"].count("\n") + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if not any(chars.values()):
        _empty(left, "no function was kept")
        _empty(right, "no function was kept")
    else:
        _hist_by_source(left, chars, bins=20)
        _hist_by_source(right, lines, bins=20)
        left.set_xlabel("characters")
        right.set_xlabel("lines")
        left.set_ylabel("functions")
    fig.suptitle("Length of the kept functions")
    fig.tight_layout()
    _save(fig, out)


def plot_perplexity(records: Iterable[dict], out: str | Path) -> None:
    """The model's perplexity of each kept function given its prompt (log scale), by source."""
    ppl: dict[str, list[float]] = {m: [] for m in MODES}
    for r in records:
        if (value := r.get("score", {}).get("ppl")) is not None and math.isfinite(value) and value > 0:
            ppl.setdefault(r["source"], []).append(value)
    fig, ax = plt.subplots(figsize=(8, 4))
    values = [v for vs in ppl.values() for v in vs]
    if not values:
        _empty(ax, "no function was scored")
    else:
        lo, hi = math.log10(min(values)), math.log10(max(values))
        bins = [10 ** (lo + (hi - lo + 1e-9) * i / 20) for i in range(21)]
        _hist_by_source(ax, ppl, bins=bins)
        ax.set_xscale("log")
        ax.set_xlabel("perplexity (lower: the model finds the code more natural)")
        ax.set_ylabel("functions")
    ax.set_title("Perplexity of the kept functions")
    fig.tight_layout()
    _save(fig, out)
