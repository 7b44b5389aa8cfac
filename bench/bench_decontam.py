"""Decontamination at scale: 100k descriptions and 100k functions checked against the HumanEval index.

Each figure is one fresh process (time, and peak RSS sampled by the parent), next to the same process only
reading the same file: building the index; reading the descriptions (one JSON object a line) vs reading and
checking each against the index (`Index.check_text`); the same for functions (`Index.check_code`). 1% of the
descriptions are HumanEval docstrings and 1% of the functions HumanEval solutions with names changed, so
the matching paths run too; the counts found are printed beside the times.

    python bench/bench_decontam.py [--count 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PeakRSS, median, save
from synth import NOUNS, VERBS, samples

from evoselfcode.config import Decontamination
from evoselfcode.datagen import benchmark_index

WORDS = [
    "the",
    "a",
    "of",
    "list",
    "string",
    "number",
    "numbers",
    "given",
    "return",
    "each",
    "every",
    "in",
    "and",
    "sorted",
    "order",
    "first",
    "last",
    "value",
    "values",
    "key",
    "dictionary",
    "count",
    "sum",
    "that",
    "with",
    "without",
    "duplicates",
    "empty",
    "input",
    "output",
    "integer",
    "integers",
    "pairs",
    "largest",
    "smallest",
]


def descriptions(count: int, items: list, rng: random.Random) -> list[dict]:
    out = []
    for i in range(count):
        if i % 100 == 0:
            desc = rng.choice(items).prompt
        else:
            desc = f"{rng.choice(VERBS).capitalize()} the {rng.choice(NOUNS)} " + " ".join(
                rng.choice(WORDS) for _ in range(rng.randint(6, 40))
            )
        out.append({"id": f"d{i}", "desc": desc})
    return out


def functions(count: int, items: list, rng: random.Random) -> list[dict]:
    out = [{"code": s.code} for s in samples(count)]
    for i in range(0, count, 100):
        item = rng.choice(items)
        out[i] = {"code": item.solution.replace(item.id.split("/")[0], "x").replace("(", "( ", 1)}
    return out


def run_child(mode: str, path: str, index: str) -> None:
    """One measured process: read (and with a check_* mode, check) every record of `path`."""
    start = time.perf_counter()
    cfg = Decontamination()
    idx = benchmark_index.Index.load(index) if mode.startswith("check") else None
    loaded = time.perf_counter() - start
    found = 0
    if mode == "build":
        benchmark_index.write_index(cfg, path)
        print(json.dumps({"seconds": time.perf_counter() - start, "index_load_s": 0.0, "found": 0}))
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if mode == "check_text":
                found += idx.check_text(record["desc"], cfg.desc_threshold) is not None
            elif mode == "check_code":
                found += idx.check_code(record["code"], cfg.code_threshold, cfg.desc_threshold) is not None
    print(json.dumps({"seconds": time.perf_counter() - start, "index_load_s": loaded, "found": found}))


def measure(mode: str, path: Path, index: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(path), str(index)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    with PeakRSS(proc.pid) as rss:
        out, _ = proc.communicate()
    assert proc.returncode == 0, mode
    return {**json.loads(out), "peak_mb": round(rss.peak_mb, 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--child", nargs=3, metavar=("MODE", "FILE", "INDEX"))
    args = p.parse_args()
    if args.child:
        run_child(*args.child)
        return
    rng = random.Random(0)
    items = benchmark_index.read_benchmarks(Decontamination())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        index = tmp / "index.json"
        files = {"descriptions": tmp / "descs.jsonl", "functions": tmp / "code.jsonl"}
        for kind, records in (("descriptions", descriptions(args.count, items, rng)),
                              ("functions", functions(args.count, items, rng))):  # fmt: skip
            files[kind].write_text("".join(json.dumps(r) + "\n" for r in records))
        runs = {"build": [measure("build", index, index) for _ in range(args.repeat)]}
        for kind, check in (("descriptions", "check_text"), ("functions", "check_code")):
            for mode in ("read", check):
                runs[f"{mode}_{kind}"] = [measure(mode, files[kind], index) for _ in range(args.repeat)]
        index_mb = index.stat().st_size / 2**20
    figures = {"count": args.count, "index_mb": round(index_mb, 2), "repeat": args.repeat}
    for name, results in runs.items():
        figures[name] = {
            "seconds": round(median(r["seconds"] for r in results), 2),
            "index_load_s": round(median(r["index_load_s"] for r in results), 3),
            "peak_mb": median(r["peak_mb"] for r in results),
            "found": results[0]["found"],
        }
        print(f"{name:28} {figures[name]}")
    save("decontam", {"command": " ".join(sys.argv), **figures})


if __name__ == "__main__":
    main()
