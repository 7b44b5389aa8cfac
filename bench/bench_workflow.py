"""Server saturation through the workflow: Snakemake with `--resources llm_slots=K`, `io.concurrency` per job,
against the latency server capped at C in flight (50 ms per answer). The server records how many requests
it serves over time; the busy fraction is served / C, over the generation window (first request to last
answer) and per 0.5 s bin.

    python bench/bench_workflow.py [--capacity 32] [--latency 0.05] [--shards 12] [--shard-size 200]
        [--setups 2x32 4x16] [--scheduler greedy]

50 ms answers make 2-4 s jobs here, where Snakemake's ~1 s per job turnover weighs a lot; a GPU server
answers code requests in seconds and a production shard runs for minutes (`--latency 0.5` is closer).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_overhead import workdir
from common import get_json, latency_server, save

# (llm_slots K, io.concurrency per job): total in flight K x c against the server's C
SETUPS = ((1, 32), (2, 16), (2, 32), (4, 16), (4, 32))


def one(tmp: Path, url: str, slots: int, conc: int, a: argparse.Namespace) -> dict:
    shards, shard_size, capacity = a.shards, a.shard_size, a.capacity
    wd = tmp / f"k{slots}_c{conc}"
    wd.mkdir()
    source = wd / "descriptions.jsonl"
    with open(source, "w") as fh:
        for i in range(shards * shard_size):
            fh.write(json.dumps({"id": f"d{i}", "desc": f"Return the {i}th item of a list, counting from one."}) + "\n")
    config = (
        f"api: {{base_url: '{url}', model: bench, max_retries: 2}}\n"
        f"io: {{input_desc_path: {source}, shard_size: {shard_size}, concurrency: {conc}}}\n"
    )
    workdir(wd, config)
    get_json(url + "/reset", "POST")
    target = "data/generated/code/filtered.jsonl"
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(slots + 2), "--resources", f"llm_slots={slots}",
           "--scheduler", a.scheduler, "--configfile", "configs/bench.yaml", "--quiet", "all",
           "--", target]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        print(proc.stdout[-2000:], proc.stderr[-3000:])
    stats = get_json(url + "/stats?bin=0.5")
    bins = stats["bins"]
    window = stats["last_active"] - stats["first_active"]
    row = {"llm_slots": slots, "concurrency_per_job": conc, "total_in_flight": slots * conc, "capacity": capacity,
           "rc": proc.returncode, "workflow_s": wall, "generation_window_s": window, "requests": stats["ok"],
           "busy_fraction": stats["busy_fraction"], "bins_at_90pct": sum(b >= 0.9 for b in bins) / max(len(bins), 1),
           "max_waiting_at_server": stats["max_waiting"], "bins": bins}  # fmt: skip
    print(f"K={slots} x c={conc:3d} = {slots * conc:4d} vs C={capacity}: busy {row['busy_fraction']:.1%} over "
          f"{window:.1f} s of generation ({row['bins_at_90pct']:.0%} of 0.5 s bins >= 90%); workflow {wall:.1f} s, "
          f"{stats['ok']} answers")  # fmt: skip
    return row


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--capacity", type=int, default=32)
    p.add_argument("--latency", type=float, default=0.05, help="seconds per answer")
    p.add_argument("--scheduler", default="ilp", help="Snakemake's job scheduler: ilp (its default) or greedy")
    p.add_argument("--shards", type=int, default=12)
    p.add_argument("--shard-size", type=int, default=200)
    p.add_argument("--setups", nargs="*", default=[f"{k}x{c}" for k, c in SETUPS], help="KxC pairs")
    p.add_argument("--name", default="workflow")
    a = p.parse_args()
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="evo-bench-wf-") as t,
        latency_server("--latency", str(a.latency), "--capacity", str(a.capacity)) as url,
    ):
        for setup in a.setups:
            k, c = map(int, setup.split("x"))
            rows.append(one(Path(t), url, k, c, a))
    save(a.name, {"latency_s": a.latency, "scheduler": a.scheduler, "capacity": a.capacity, "shards": a.shards,
                  "shard_size": a.shard_size, "rows": rows})  # fmt: skip
