"""Stage B checks at scale: synthetic generated functions through `check_samples` (AST, ruff, exact + near dedup).

The limit, measured in the same run over the same sources: `ast.parse` of each alone, plus one `ruff check`
over all of them (`utils.ruff.ruff_check`). Near-dedup time and memory at 10k, 30k, 100k, each size in a
fresh process (peak RSS over the process's RSS before the call).

Besides wall time, each figure has its CPU time (this process and its children: ruff, the check workers).
Another busy session on the machine takes a fair share of the cores (the kernel's autogroup), whatever
the number of workers; the CPU ratio does not depend on it. `--serial` also times check_samples without
worker processes, in the same run.

    python bench/bench_checks.py [--count 100000] [--repeat 1] [--serial] [--scaling 10000 30000 100000]
        [--ruff-rules E9 F63 F7 F82]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import subprocess
import sys
import time

from common import BENCH, PeakRSS, median, save
from synth import samples

from evoselfcode.config import Config, Filters
from evoselfcode.datagen import checks
from evoselfcode.datagen.checks import base
from evoselfcode.datagen.dedup import exact_duplicates, near_duplicates
from evoselfcode.datagen.utils import process_pool
from evoselfcode.datagen.utils.ruff import ruff_check


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


CPU: dict[str, float] = {}  # CPU seconds of the last clock() call per label


def clock(fn, label: str = ""):
    start, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    CPU[label] = cpu_seconds() - cpu
    return time.perf_counter() - start, result


def serially(fn):
    """fn() with the per-sample work of check_samples in this process (no worker processes)."""
    real = process_pool.worker_count
    process_pool.worker_count = lambda items: 0
    try:
        return fn()
    finally:
        process_pool.worker_count = real


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
    """Run in a fresh process: time, CPU and peak memory of near_duplicates over `count` samples.

    Peak memory is this process's; worker processes (large inputs) hold one chunk of items each.
    """
    filters = Filters()
    items = [(str(i), s.code) for i, s in enumerate(samples(count))]
    dd = filters.dedup
    with PeakRSS() as rss:
        before = rss.peak
        seconds, dropped = clock(
            lambda: near_duplicates(items, threshold=dd.threshold, num_perm=dd.num_perm, ngram=dd.ngram), "near"
        )
    return {"count": count, "seconds": seconds, "per_s": count / seconds, "dropped": len(dropped),
            "peak_extra_mb": (rss.peak - before) / 2**20, "cpu_s": CPU["near"]}  # fmt: skip


def full(count: int, repeat: int, serial: bool, ruff_rules: list[str] | None) -> dict:
    data = samples(count)
    codes = [s.code for s in data]
    filters = Filters(ruff_rules=ruff_rules) if ruff_rules is not None else Filters()
    cfg = Config(filters=filters, decontamination={"enabled": False})  # benchmark matches: bench_decontam.py
    filters = cfg.filters
    dd = filters.dedup
    items = [(str(i), c) for i, c in enumerate(codes)]
    sample_checks = [c for c in checks.checks_for("filter_code", cfg) if isinstance(c, base.SampleCheck)]
    runs = []
    for _ in range(repeat):
        t_parse, _ = clock(lambda: parse_all(codes), "parse")
        t_ruff, _ = clock(lambda: ruff_check(codes, filters.ruff_rules), "ruff")
        t_checks, reasons = clock(lambda: checks.check_samples(data, cfg), "checks")
        cpu_limit, cpu_checks = CPU["parse"] + CPU["ruff"], CPU["checks"]
        if serial:
            t_serial, serial_reasons = clock(lambda: serially(lambda: checks.check_samples(data, cfg)))
            assert serial_reasons == reasons, "check_samples gave other reasons without workers"
        # the parts of check_samples, each alone, to show where the time goes
        t_per_sample, _ = clock(lambda: serially(lambda: base.run_checks(sample_checks, data)))
        t_exact, _ = clock(lambda: exact_duplicates(items))
        t_near, _ = clock(lambda: near_duplicates(items, threshold=dd.threshold, num_perm=dd.num_perm, ngram=dd.ngram))
        limit = t_parse + t_ruff
        parts = {"per_sample_checks": t_per_sample, "exact_dedup": t_exact, "near_dedup": t_near}
        runs.append({"ast_parse_s": t_parse, "ruff_s": t_ruff, "limit_s": limit, "check_samples_s": t_checks,
                     "ratio_to_limit": t_checks / limit, "samples_per_s": count / t_checks,
                     "limit_samples_per_s": count / limit, "parts_alone_s": parts,
                     "cpu_s": {"limit": cpu_limit, "check_samples": cpu_checks},
                     "cpu_ratio_to_limit": cpu_checks / cpu_limit, "workers": process_pool.worker_count(count),
                     "check_samples_serial_s": t_serial if serial else None,
                     "loadavg_after": os.getloadavg()})  # fmt: skip
        print(f"{count} samples: check_samples {t_checks:.1f} s ({count / t_checks:.0f}/s); limit {limit:.1f} s "
              f"(ast.parse {t_parse:.1f} + ruff {t_ruff:.1f}) -> {t_checks / limit:.2f}x;  alone: per-sample "
              f"{t_per_sample:.1f}, exact {t_exact:.1f}, near {t_near:.1f} s")  # fmt: skip
        print(
            f"  CPU: check_samples {cpu_checks:.1f} s, limit {cpu_limit:.1f} s -> {cpu_checks / cpu_limit:.2f}x"
            + (f"; check_samples without workers {t_serial:.1f} s" if serial else "")
        )
    funnel = checks.reason_counts(reasons)
    return {"count": count, "reasons": funnel, "ratio_to_limit_median": median(r["ratio_to_limit"] for r in runs),
            "samples_per_s_median": median(r["samples_per_s"] for r in runs), "runs": runs}  # fmt: skip


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--scaling", type=int, nargs="*", default=[10_000, 30_000, 100_000])
    p.add_argument("--serial", action="store_true", help="also time check_samples without worker processes")
    p.add_argument("--near-only", type=int, help=argparse.SUPPRESS)
    p.add_argument("--ruff-rules", nargs="+", help="filters.ruff_rules for the run (default: the config default)")
    p.add_argument("--name", default="checks")
    a = p.parse_args()
    if a.near_only:
        print(json.dumps(near_only(a.near_only)))
        sys.exit(0)
    figures = {"full": full(a.count, a.repeat, a.serial, a.ruff_rules) if a.count else None, "near_scaling": []}
    for n in a.scaling:
        cmd = [sys.executable, str(BENCH / "bench_checks.py"), "--near-only", str(n)]
        row = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        figures["near_scaling"].append(row)
        print(f"near dedup {n:7d}: {row['seconds']:6.1f} s ({row['per_s']:.0f}/s, CPU {row['cpu_s']:.1f} s), "
              f"peak +{row['peak_extra_mb']:.0f} MB")  # fmt: skip
    save(a.name, figures)
