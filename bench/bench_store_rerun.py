"""A rerun served by the answer store against a run that asks: the whole workflow, end to end, side by side.

Runs Snakemake on `--descriptions` descriptions against the fake server with `--latency` seconds per answer (a
stand-in for GPU time; `--concurrency` requests in flight), in turns: A asks every request (an empty store),
B reruns the same settings with the store A filled (its outputs removed, so every job runs again), then B'
reruns with a changed code filter (`filters.min_code_len`), the case the store exists for. Each round's
requests sent are counted by the server; medians of the wall-clock times are printed and saved.

    python bench/bench_store_rerun.py [--descriptions 40] [--latency 0.5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, save

sys.path.insert(0, str(ROOT / "tests"))
from fakeserver import ServerProcess  # noqa: E402

WORDS = ["sum", "mean", "median", "mode", "range", "product", "maximum", "minimum", "count", "average"]


def workdir(root: Path, descriptions: int, url: str, concurrency: int) -> Path:
    for item in ("Snakefile", "rules", "configs", "profiles", "report"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / item)
    (root / "data/descriptions").mkdir(parents=True)
    with open(root / "data/descriptions/sample.jsonl", "w") as fh:
        for i in range(descriptions):
            fh.write(json.dumps({"id": f"b{i}", "desc": f"Task {i}: the {WORDS[i % 10]} of {i} lists."}) + "\n")
    config(root, url, concurrency, {})
    return root


def config(root: Path, url: str, concurrency: int, extra: dict) -> None:
    cfg = {"api": {"base_url": url, "timeout": {"read": 30}}, "io": {"concurrency": concurrency, "shard_size": 10},
           "decontamination": {"enabled": False}, **extra}  # fmt: skip
    (root / "configs/bench.yaml").write_text(json.dumps(cfg))


def run(root: Path, srv: ServerProcess) -> tuple[float, int]:
    before = srv.stats()["requests"]
    started = time.monotonic()
    # the target first: --configfile takes every word after it
    cmd = [sys.executable, "-m", "snakemake", "data/generated/code/filtered.jsonl", "--cores", "2",
           "--configfile", "configs/bench.yaml"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return seconds, srv.stats()["requests"] - before


def fresh_outputs(root: Path, store: bool) -> None:
    shutil.rmtree(root / "data/generated", ignore_errors=True)
    shutil.rmtree(root / ".snakemake", ignore_errors=True)
    if store:
        shutil.rmtree(root / "data/store", ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--descriptions", type=int, default=40)
    p.add_argument("--latency", type=float, default=0.5)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    figures: dict[str, list] = {"asks": [], "from_store": [], "filter_change": []}
    with ServerProcess("--latency", str(args.latency)) as srv, tempfile.TemporaryDirectory() as tmp:
        root = workdir(Path(tmp), args.descriptions, srv.url, args.concurrency)
        for _ in range(args.rounds):
            config(root, srv.url, args.concurrency, {})
            fresh_outputs(root, store=True)
            figures["asks"].append(run(root, srv))
            fresh_outputs(root, store=False)
            figures["from_store"].append(run(root, srv))
            config(root, srv.url, args.concurrency, {"filters": {"min_code_len": 200}})
            figures["filter_change"].append(run(root, srv))
    result = {name: {"median_s": round(statistics.median(s for s, _ in runs), 2),
                     "runs_s": [round(s, 2) for s, _ in runs], "requests": [n for _, n in runs]}
              for name, runs in figures.items()}  # fmt: skip
    result["settings"] = vars(args)
    print(json.dumps(result, indent=2))
    save("store_rerun", result)


if __name__ == "__main__":
    main()
