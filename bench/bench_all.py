"""Every benchmark in one sitting, one after the other, and the table of figures against their targets.

    python bench_all.py --tag s3                  # ~40 min on 2 cores; results/*_s3.json + results/summary_s3.md
    python bench_all.py --tag s3 --only checks    # rerun one part
    python bench_all.py --tag s3 --summarize      # only rebuild the table from the JSON files

Run from this directory with the project's interpreter, with nothing else busy on the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from common import RESULTS, machine

STEPS = {
    "generation": ["bench_generation.py"],
    "faults": ["bench_faults.py"],
    "workflow_500ms": ["bench_workflow.py", "--latency", "0.5", "--shards", "8", "--shard-size", "200",
                       "--setups", "2x32", "4x16"],
    "workflow_50ms": ["bench_workflow.py", "--setups", "1x32", "2x32", "4x16"],
    "checks": ["bench_checks.py", "--count", "100000", "--scaling", "10000", "30000", "100000"],
    "overhead": ["bench_overhead.py", "--skip", "merge-code"],
    "merge_code_1m": ["bench_overhead.py", "--skip", "dry", "startup", "merge", "--code-lines", "1000000",
                      "--dedup", "exact", "near", "--raw"],
}  # fmt: skip


def load(step: str, tag: str) -> dict | None:
    path = RESULTS / f"{step}_{tag}.json"
    return json.loads(path.read_text()) if path.exists() else None


def pct(x: float) -> str:
    return f"{x:.1%}"


def rows(tag: str) -> list[tuple[str, str, str, str, str]]:
    """(figure, target, limit, measured, holds) for every figure found."""
    out = []

    def add(figure, target, limit, measured, holds=None):
        out.append((figure, target, limit, measured, "-" if holds is None else ("yes" if holds else "**no**")))

    if gen := load("generation", tag):
        for row in gen["client_unlimited"]:
            c, frac, cpu = row["concurrency"], row["fraction_of_limit"], row["cpu_ms_per_req_median"]
            target = c == 64
            add(
                f"client, 50 ms, concurrency {c}, unlimited server: req/s",
                ">= 90% of limit" if target else "-",
                f"{row['limit_rps']:,.0f} req/s",
                f"{row['rps_median']:,.0f} ({pct(frac)})",
                frac >= 0.9 if target else None,
            )
            add(
                f"client CPU per request at concurrency {c}",
                "<= 0.5 ms" if target else "-",
                "-",
                f"{cpu:.3f} ms",
                cpu <= 0.5 if target else None,
            )
        for row in gen.get("client_capped", []):
            add(
                f"client, server capped at C={row['capacity']}, concurrency {row['concurrency']}",
                "-",
                f"{row['limit_rps']:,.0f} req/s",
                f"{row['rps_median']:,.0f} ({pct(row['fraction_of_limit'])})",
            )
        for key, s in gen.get("server_capacity", {}).items():
            limit = f"{s['limit_rps']:,.0f} req/s" if s["limit_rps"] else "-"
            shown = f"{s['rps_median']:,.0f}" + (
                f" ({pct(s['rps_median'] / s['limit_rps'])})" if s["limit_rps"] else ""
            )
            add(f"latency server alone ({key.replace('_', ' ')}), lean asyncio client", "-", limit, shown)
    if faults := load("faults", tag):
        for row in faults["rows"]:
            c, limit = row["concurrency"], row["fault_free_limit"]
            add(
                f"answers/s under faults, concurrency {c}, steady state",
                ">= 50% of fault-free limit",
                f"{limit:,.0f}/s",
                f"{row['steady_ok_per_s_median']:,.0f} ({pct(row['steady_fraction_of_limit'])})",
                row["steady_fraction_of_limit"] >= 0.5,
            )
            add(
                f"the same over the whole {row['runs'][0]['requests']:,}-request batch (with its retry drain)",
                "-",
                f"{limit:,.0f}/s",
                f"{row['ok_per_s_median']:,.0f} ({pct(row['fraction_of_limit'])})",
            )
    for step, target in (("workflow_500ms", True), ("workflow_50ms", False)):
        if wf := load(step, tag):
            for row in wf["rows"]:
                setup = f"K={row['llm_slots']} x c={row['concurrency_per_job']}"
                add(
                    f"server busy through Snakemake, C={wf['capacity']}, {wf['latency_s'] * 1000:.0f} ms answers, "
                    f"{wf['shards']} shards x {wf['shard_size']}, {setup}",
                    ">= 90%" if target else "-",
                    "100%",
                    pct(row["busy_fraction"]),
                    row["busy_fraction"] >= 0.9 if target else None,
                )
    if checks := load("checks", tag):
        run = checks["full"]["runs"][0]
        ratio = checks["full"]["ratio_to_limit_median"]
        add(
            f"check_samples on {checks['full']['count']:,} functions, wall",
            "<= 1.5x the limit",
            f"ast.parse {run['ast_parse_s']:.1f} s + ruff {run['ruff_s']:.1f} s = {run['limit_s']:.1f} s",
            f"{run['check_samples_s']:.1f} s ({ratio:.2f}x; CPU {run['cpu_ratio_to_limit']:.2f}x)",
            ratio <= 1.5,
        )
        scaling = checks["near_scaling"]
        first, last = scaling[0], scaling[-1]
        growth = last["seconds"] / first["seconds"] / (last["count"] / first["count"])
        add(
            "near dedup " + " / ".join(f"{r['count'] // 1000}k" for r in scaling),
            "linear time and memory",
            "-",
            " / ".join(f"{r['seconds']:.1f} s" for r in scaling)
            + ", "
            + " / ".join(f"+{r['peak_extra_mb']:.0f} MB" for r in scaling)
            + f" (time per item {growth:.2f}x from first to last)",
            growth <= 1.5 and last["peak_extra_mb"] <= 1.5 * first["peak_extra_mb"] * last["count"] / first["count"],
        )
    if over := load("overhead", tag):
        dry = over["dry_run"]
        add(
            f"`snakemake -n`, {dry['shards']:,} shards / {dry['lines']:,} descriptions, first run (builds the index)",
            "< 15 s",
            "-",
            f"{dry['first_s']:.1f} s",
            dry["first_s"] < 15,
        )
        add(
            "the same, index cached (median)",
            "< 15 s",
            "-",
            f"{dry['cached_s_median']:.1f} s",
            dry["cached_s_median"] < 15,
        )
        slowest = max(over["startup"]["help_s"].values())
        add(
            f"`python -m evoselfcode STEP --help`, slowest of {len(over['startup']['help_s'])} steps",
            "< 0.5 s",
            f"bare python {over['startup']['python_bare_s']:.2f} s",
            f"{slowest:.2f} s",
            slowest < 0.5,
        )
        m = over["merge"]
        add(
            f"`merge` of {m['lines']:,} lines ({m['input_mb']:.0f} MB, {m['files']} files), peak memory",
            "< 500 MB",
            "-",
            f"{m['merge_peak_mb']:.0f} MB, {m['merge_s']:.1f} s",
            m["merge_peak_mb"] < 500,
        )
    if mc := load("merge_code_1m", tag):
        for row in mc["merge_code"]:
            what = "exact + near" if row["near"] else "exact"
            add(
                f"`merge-code` ({what} dedup, metrics) of {row['lines']:,} lines, {row['bodies']:,} bodies, peak",
                "< 500 MB",
                "-",
                f"{row['peak_mb']:.0f} MB, {row['seconds']:.0f} s",
                row["peak_mb"] < 500,
            )
    return out


def summary(tag: str) -> str:
    head = "| figure | target | limit / reference | measured | holds? |\n|---|---|---|---|---|\n"
    return head + "".join(f"| {' | '.join(r)} |\n" for r in rows(tag))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--tag", required=True, help="suffix of the results files: results/<step>_<tag>.json")
    p.add_argument("--only", nargs="*", choices=list(STEPS), help="run these steps only")
    p.add_argument("--summarize", action="store_true", help="run nothing, rebuild the table")
    a = p.parse_args()
    run_log = RESULTS / f"run_{a.tag}.json"
    log = json.loads(run_log.read_text()) if run_log.exists() else {"steps": {}}
    for step in [] if a.summarize else a.only or list(STEPS):
        started = time.perf_counter()
        print(f"== {step}: {' '.join(STEPS[step])}", flush=True)
        at = machine()
        rc = subprocess.call([sys.executable, *STEPS[step], "--name", f"{step}_{a.tag}"])
        log["steps"][step] = {"rc": rc, "seconds": round(time.perf_counter() - started, 1), "started": at["date"],
                              "loadavg_at_start": at["loadavg"]}  # fmt: skip
        run_log.write_text(json.dumps(log, indent=2) + "\n")
    table = summary(a.tag)
    (RESULTS / f"summary_{a.tag}.md").write_text(table)
    print(table)
