"""Workflow overhead: `snakemake -n` over 1,000 shards, CLI start-up, peak memory of merging 1,000,000 lines.

Everything runs in a temporary copy of the workflow (Snakefile, rules, configs) with generated inputs.
Peak memory is the child's resident set sampled every 10 ms from /proc (psutil), so nothing else is counted.

    python bench/bench_overhead.py [--lines 1000000] [--shards 1000] [--repeat 3]
    python bench/bench_overhead.py --skip dry startup merge --code-lines 1000000 --dedup exact --raw  # merge-code alone
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, PeakRSS, median, save
from synth import function

PY = sys.executable
STEPS = ("split", "generate-names", "filter-code", "merge-code", "merge")


def run(cmd: list[str], cwd: Path | None = None) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB of the child, return code); stdout/stderr kept on failure only."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with PeakRSS(proc.pid) as rss:
        out = proc.stdout.read()
        proc.wait()
    wall = time.perf_counter() - start
    if proc.returncode:
        print(out.decode(errors="replace")[-3000:])
    return wall, rss.peak_mb, proc.returncode


def descriptions(path: Path, lines: int) -> None:
    rng = random.Random(0)
    words = [
        "parse",
        "count",
        "merge",
        "the",
        "list",
        "of",
        "words",
        "lines",
        "items",
        "in",
        "a",
        "text",
        "file",
        "return",
        "sorted",
        "unique",
        "values",
    ]
    with open(path, "w") as fh:
        for i in range(lines):
            desc = " ".join(rng.choice(words) for _ in range(rng.randint(6, 20)))
            fh.write(json.dumps({"id": f"d{i}", "desc": f"{desc} (task {i})"}) + "\n")


def workdir(dest: Path, config: str) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for item in ("Snakefile", "rules", "configs", "profiles", "report"):
        src = ROOT / item
        if src.exists():
            (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / item)
    (dest / "configs/bench.yaml").write_text(config)
    return dest


def dry_run(tmp: Path, lines: int, shards: int, repeat: int) -> dict:
    source = tmp / "descriptions.jsonl"
    descriptions(source, lines)
    config = (
        f"io: {{input_desc_path: {source}, shard_size: {lines // shards}}}\napi: {{base_url: http://127.0.0.1:9}}\n"
    )
    wd = workdir(tmp / "wf", config)
    cmd = [PY, "-m", "snakemake", "-n", "--quiet", "all", "--cores", "4", "--configfile", "configs/bench.yaml"]
    first = run(cmd, wd)
    cached = [run(cmd, wd) for _ in range(repeat)]
    row = {"lines": lines, "shards": shards, "first_s": first[0], "first_rc": first[2],
           "cached_s_median": median(c[0] for c in cached), "cached_runs_s": [c[0] for c in cached],
           "peak_mb_first": first[1]}  # fmt: skip
    print(f"snakemake -n, {shards} shards / {lines} lines: first {first[0]:.1f} s (index built), "
          f"cached {row['cached_s_median']:.1f} s (median of {repeat}), peak {first[1]:.0f} MB")  # fmt: skip
    return row


def startup(repeat: int) -> dict:
    out = {}
    for step in STEPS:
        times = [run([PY, "-m", "evoselfcode", step, "--help"])[0] for _ in range(repeat)]
        out[step] = median(times)
    bare = median(run([PY, "-c", "pass"])[0] for _ in range(repeat))
    print("start-up of --help (median s): " + ", ".join(f"{k} {v:.2f}" for k, v in out.items()) + f"; bare {bare:.2f}")
    return {"help_s": out, "python_bare_s": bare}


def merge_files(tmp: Path, lines: int, files: int, raw: Path | None = None, bodies: int = 1000) -> list[Path]:
    """`files` JSONL shards of realistic final code records, `lines` in all (`bodies` distinct bodies, renamed).

    With `raw`, also the raw sample each record came from, as `code/raw.jsonl` holds them (merge-code counts it).
    """
    rng = random.Random(1)
    distinct = [function(rng, "NAME") for _ in range(min(bodies, lines))]
    paths = []
    per = lines // files
    raw_fh = open(raw, "w") if raw else None  # noqa: SIM115 - written across the loop below
    for f in range(files):
        path = tmp / f"part{f:05d}.jsonl"
        with open(path, "w") as fh:
            for i in range(per):
                n = f * per + i
                name = f"func_{n}"
                code = distinct[n % len(distinct)].replace("NAME", name)
                rec = {"desc": f"do task {n}", "func_name": name, "source": "FIM", "code": code,
                       "meta": {"desc_id": f"d{n:07d}", "params": {"temperature": 0.2, "top_p": 0.95,
                                "max_new_tokens": 384}, "seed": n, "sample_index": 0, "model": "m",
                                "finish_reason": "stop", "trimmed": False}}  # fmt: skip
                fh.write(json.dumps(rec) + "\n")
                if raw_fh:
                    sample = {"desc_id": f"d{n:07d}", "desc": rec["desc"], "func_name": name, "source": "FIM",
                              "sample_index": 0, "seed": n, "completion": code, "code": code, "trimmed": False,
                              "finish_reason": "stop", "tokens": len(code) // 4}  # fmt: skip
                    raw_fh.write(json.dumps(sample) + "\n")
        paths.append(path)
    if raw_fh:
        raw_fh.close()
    return paths


def merge(tmp: Path, lines: int, files: int) -> dict:
    parts = merge_files(tmp, lines, files)
    wall, peak, rc = run([PY, "-m", "evoselfcode", "merge", *map(str, parts), "--out", str(tmp / "merged.jsonl")])
    row = {"lines": lines, "files": files, "merge_s": wall, "merge_peak_mb": peak, "rc": rc,
           "input_mb": sum(p.stat().st_size for p in parts) / 2**20}  # fmt: skip
    print(f"merge {lines} lines from {files} files ({row['input_mb']:.0f} MB): {wall:.1f} s, peak {peak:.0f} MB")
    return row


def merge_code(tmp: Path, lines: int, files: int, near: bool, with_raw: bool, bodies: int) -> dict:
    """`merge-code` (global exact + near dedup) over `lines` kept records (and as many raw samples)."""
    empty = tmp / "empty.jsonl"
    empty.write_text("")
    raw = tmp / "raw.jsonl" if with_raw else empty
    parts = merge_files(tmp, lines, files, raw if with_raw else None, bodies)
    metrics = tmp / "names_metrics.json"
    metrics.write_text('{"verdict": "tie"}')
    cfg = tmp / "mc.yaml"
    cfg.write_text(f"filters: {{dedup: {{near: {str(near).lower()}}}}}\n")
    cmd = [PY, "-m", "evoselfcode", "merge-code", "--kept", *map(str, parts), "--shard-rejects", str(empty),
           "--raw", str(raw), "--failures", str(empty), "--names-metrics", str(metrics),
           "--out", str(tmp / "k.jsonl"), "--rejects", str(tmp / "r.jsonl"), "--metrics", str(tmp / "m.json"),
           "--config", str(ROOT / "configs/datagen.yaml"), "--config", str(cfg)]  # fmt: skip
    wall, peak, rc = run(cmd)
    row = {"lines": lines, "bodies": bodies, "near": near, "raw": with_raw, "seconds": wall, "peak_mb": peak, "rc": rc}
    print(f"merge-code {lines} lines, {bodies} distinct bodies (near dedup {near}, raw file {with_raw}): "
          f"{wall:.1f} s, peak {peak:.0f} MB")  # fmt: skip
    return row


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--shards", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--code-lines", type=int, nargs="*", default=[100_000])
    p.add_argument("--skip", nargs="*", default=[], choices=["dry", "startup", "merge", "merge-code"])
    p.add_argument("--dedup", nargs="+", default=["exact", "near"], choices=["exact", "near"],
                   help="merge-code runs: exact dedup only, exact + near")  # fmt: skip
    p.add_argument("--raw", action="store_true", help="merge-code also reads a raw file of --code-lines samples")
    p.add_argument("--bodies", type=int, default=1000, help="distinct function bodies in merge-code's input")
    p.add_argument("--name", default="overhead")
    a = p.parse_args()
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="evo-bench-") as t:
        tmp = Path(t)
        if "startup" not in a.skip:
            figures["startup"] = startup(a.repeat + 2)
        if "dry" not in a.skip:
            figures["dry_run"] = dry_run(tmp, a.lines, a.shards, a.repeat)
        if "merge" not in a.skip:
            (tmp / "m").mkdir()
            figures["merge"] = merge(tmp / "m", a.lines, a.shards)
            shutil.rmtree(tmp / "m")
        if "merge-code" not in a.skip:
            figures["merge_code"] = []
            for n in a.code_lines:
                for dedup in a.dedup:
                    (tmp / "c").mkdir()
                    row = merge_code(tmp / "c", n, max(1, n // 1000), dedup == "near", a.raw, a.bodies)
                    figures["merge_code"].append(row)
                    shutil.rmtree(tmp / "c")
    save(a.name, figures)
