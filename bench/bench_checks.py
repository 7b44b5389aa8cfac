"""Stage B checks at scale: synthetic generated functions through `check_samples` (AST, ruff, exact + near dedup).

The limit, measured in the same run over the same sources: `ast.parse` of each alone, plus one `ruff check`
over all of them (`utils.ruff.ruff_check`). Near-dedup time and memory at 10k, 30k, 100k, each size in a
fresh process (peak RSS over the process's RSS before the call).

    python bench/bench_checks.py [--count 100000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import time

from common import BENCH, PeakRSS, median, save
from synth import samples

from evoselfcode.config import Filters
from evoselfcode.datagen.filters import code as code_filters
from evoselfcode.datagen.filters.dedup import exact_duplicates, near_duplicates
from evoselfcode.datagen.utils.ruff import ruff_check


def clock(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def parse_all(codes: list[str]) -> int:
    ok = 0
    for code in codes:
        try:
            ast.parse(code)
            ok += 1
        except SyntaxError:
            pass
    return ok


def near_only(count: int) -> dict:
    """Run in a fresh process: time and peak memory of near_duplicates over `count` samples."""
    filters = Filters()
    items = [(str(i), s.code) for i, s in enumerate(samples(count))]
    dd = filters.dedup
    with PeakRSS() as rss:
        before = rss.peak
        seconds, dropped = clock(
            lambda: near_duplicates(items, threshold=dd.threshold, num_perm=dd.num_perm, ngram=dd.ngram)
        )
    return {"count": count, "seconds": seconds, "per_s": count / seconds, "dropped": len(dropped),
            "peak_extra_mb": (rss.peak - before) / 2**20}  # fmt: skip


def full(count: int, repeat: int) -> dict:
    data = samples(count)
    codes = [s.code for s in data]
    filters = Filters()
    dd = filters.dedup
    items = [(str(i), c) for i, c in enumerate(codes)]
    runs = []
    for _ in range(repeat):
        t_parse, _ = clock(lambda: parse_all(codes))
        t_ruff, _ = clock(lambda: ruff_check(codes, filters.ruff_rules))
        t_checks, reasons = clock(lambda: code_filters.check_samples(data, filters))
        # the parts of check_samples, each alone, to show where the time goes
        t_per_sample, _ = clock(lambda: [code_filters.check_sample(s, filters) for s in data])
        t_exact, _ = clock(lambda: exact_duplicates(items))
        t_near, _ = clock(lambda: near_duplicates(items, threshold=dd.threshold, num_perm=dd.num_perm, ngram=dd.ngram))
        limit = t_parse + t_ruff
        parts = {"per_sample_checks": t_per_sample, "exact_dedup": t_exact, "near_dedup": t_near}
        runs.append({"ast_parse_s": t_parse, "ruff_s": t_ruff, "limit_s": limit, "check_samples_s": t_checks,
                     "ratio_to_limit": t_checks / limit, "samples_per_s": count / t_checks,
                     "limit_samples_per_s": count / limit, "parts_alone_s": parts})  # fmt: skip
        print(f"{count} samples: check_samples {t_checks:.1f} s ({count / t_checks:.0f}/s); limit {limit:.1f} s "
              f"(ast.parse {t_parse:.1f} + ruff {t_ruff:.1f}) -> {t_checks / limit:.2f}x;  alone: per-sample "
              f"{t_per_sample:.1f}, exact {t_exact:.1f}, near {t_near:.1f} s")  # fmt: skip
    funnel = code_filters.reason_counts(reasons)
    return {"count": count, "reasons": funnel, "ratio_to_limit_median": median(r["ratio_to_limit"] for r in runs),
            "samples_per_s_median": median(r["samples_per_s"] for r in runs), "runs": runs}  # fmt: skip


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--scaling", type=int, nargs="*", default=[10_000, 30_000, 100_000])
    p.add_argument("--near-only", type=int, help=argparse.SUPPRESS)
    p.add_argument("--name", default="checks")
    a = p.parse_args()
    if a.near_only:
        print(json.dumps(near_only(a.near_only)))
        sys.exit(0)
    figures = {"full": full(a.count, a.repeat) if a.count else None, "near_scaling": []}
    for n in a.scaling:
        cmd = [sys.executable, str(BENCH / "bench_checks.py"), "--near-only", str(n)]
        row = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        figures["near_scaling"].append(row)
        print(f"near dedup {n:7d}: {row['seconds']:6.1f} s ({row['per_s']:.0f}/s), peak +{row['peak_extra_mb']:.0f} MB")
    save(a.name, figures)
