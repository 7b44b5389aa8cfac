"""Aggregate decoding throughput of the embedded servers at 1, 2, 4 and 8 concurrent requests, and their answers.

Both servers serve the same GGUF on the same threads, started side by side and measured in turn, level by
level, round after round (old, new, new, ...): llama-cpp-python's server as the quick start ran it until issue 27
(no log-probs, one request at a time, so its figure is the same at any level: `--old-levels 1`, the
single-stream figure, by default) and llama.cpp's native server (`embedded.parallel` = the highest level).
Each level sends max(`--requests`, level) requests, the same ones with the same seeds at every level: the
quick start's code prompts (codegen's template, stops, temperature and 192 new tokens) for sample
descriptions across the topics, through the pipeline's own client and runner with `io.concurrency` = level.
Figures: completion tokens / wall seconds (prompts are read within that time too), and the share of answers
whose function parses. Then both servers answer the
quick start's name prompts (FIM and L2R, n=2) for `--names` descriptions: the names' compliance per mode.

    python bench/bench_parallel.py [--levels 1 2 4 8] [--old-levels 1] [--requests 4] [--names 8] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, median, save

from evoselfcode import embedded
from evoselfcode.clients import make_client
from evoselfcode.config import Embedded, load_config
from evoselfcode.datagen.inputs import read_descriptions
from evoselfcode.datagen.name_filters import filter_names
from evoselfcode.datagen.pipeline.abtest import name_metrics
from evoselfcode.datagen.pipeline.driver import run_stage
from evoselfcode.datagen.pipeline.namegen import NAMES
from evoselfcode.datagen.pipeline.runner import Request, request_seed, run_requests, sampling_params
from evoselfcode.datagen.pipeline.store import AnswerStore
from evoselfcode.datagen.prompts import code_head, code_prompt
from evoselfcode.datagen.utils.ast_tools import extract_function


def old_server(cfg: Embedded, log: Path) -> tuple[str, subprocess.Popen]:
    """llama-cpp-python's server as `make run` started it before issue 27 (no log-probs: logits_all false)."""
    port = embedded._free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(embedded.model_path(cfg)),
        "--model_alias", cfg.model, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(cfg.n_ctx),
        "--interrupt_requests", "false", "--logits_all", "false", "--n_threads", str(cfg.n_threads),
        "--kv_overrides", "tokenizer.ggml.add_bos_token=bool:true",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + cfg.startup_timeout
    while not embedded._answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"llama-cpp-python's server did not start; see {log}")
        time.sleep(0.25)
    return url, proc


def code_workload(cfg, descs) -> list[tuple[Request, str]]:
    """The quick start's code request for each description, with a name made from its id ('sort-merge': merge_sort)."""
    out = []
    for d in descs:
        topic, _, rest = d.id.partition("-")
        name = f"{rest.replace('-', '_')}_{topic}" if rest else topic
        one = cfg.codegen.model_copy(update={"n": 1})  # one sequence a request: a stream is one answer
        params = sampling_params(one, request_seed(cfg.meta.seed, d.id, "code", name))
        out.append((Request(key=(d.id, name), prompt=code_prompt(d.desc, name, cfg.codegen), params=params), name))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its threads so far (/proc), which the load of others leaves be."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, pid: int, cfg, workload, concurrency: int) -> dict:
    client = make_client(cfg.api.model_copy(update={"base_url": url}), base_url=url, concurrency=concurrency)
    try:
        start, cpu = time.perf_counter(), cpu_seconds(pid)
        outcomes = run_requests(client, [r for r, _ in workload], concurrency=concurrency)
        wall, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu
    finally:
        client.close()
    names = {r.key: n for r, n in workload}
    tokens, parsed, answers = 0, 0, 0
    for out in outcomes:
        if out.error is not None:
            raise SystemExit(f"a request failed: {out.error}")
        for choice in out.choices:
            answers += 1
            tokens += int(choice.usage.get("completion_tokens") or 0)
            name = names[out.request.key]
            parsed += extract_function(code_head(name) + choice.text, name) is not None
    # tokens per server CPU-second, x 2 cores: what the wall figure would be on 2 cores of its own
    return {"tokens": tokens, "wall_s": round(wall, 2), "tok_s": round(tokens / wall, 2), "cpu_s": round(cpu, 2),
            "tok_s_2cores": round(2 * tokens / cpu, 2), "parse_share": parsed / answers}  # fmt: skip


def names_quality(url: str, cfg, descs) -> dict:
    over = cfg.model_copy(update={"api": cfg.api.model_copy(update={"base_url": url})})
    client = make_client(over.api, base_url=url, concurrency=cfg.io.concurrency)
    try:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as empty:  # an empty store: every name is asked
            result = run_stage(NAMES, descs, over, client, AnswerStore(empty))
        wall = time.perf_counter() - start
        samples, failures = result.records, result.failures
    finally:
        client.close()
    kept, rejects = filter_names(samples, cfg.namegen, cfg.filters)
    metrics = name_metrics(samples, kept, rejects, len(descs))
    return {
        "wall_s": round(wall, 2),
        "failures": len(failures),
        "compliance": {m: metrics["modes"][m]["compliance"]["value"] for m in ("FIM", "L2R")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--old-levels", type=int, nargs="+", default=[1], help="levels measured on the old server")
    parser.add_argument("--requests", type=int, default=4, help="code requests per level (at least the level)")
    parser.add_argument("--names", type=int, default=8, help="descriptions for the names' compliance (0: skip)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.chdir(ROOT)
    cfg = load_config("configs/datagen.yaml", "configs/local.yaml")
    good, _ = read_descriptions(cfg.io.input_desc_path, max_chars=cfg.io.max_desc_chars)
    descs = [d for _, d in good]
    most = max(args.requests, *args.levels)
    workload = code_workload(cfg, descs[:: max(1, len(descs) // most)][:most])
    emb = cfg.embedded.model_copy(update={"n_threads": args.threads, "parallel": max(args.levels)})
    logs = ROOT / "logs"
    logs.mkdir(exist_ok=True)
    state = logs / "bench_parallel_state.json"
    old_url, old_proc = old_server(emb, logs / "bench_parallel_old.log")
    try:
        new_url = embedded.start(emb, log_path=logs / "bench_parallel_new.log", state_file=state)
        servers = {"old": old_url, "new": new_url}
        pids = {"old": old_proc.pid, "new": embedded.read_state(state)["pid"]}
        runs = {"old": {c: [] for c in args.old_levels}, "new": {c: [] for c in args.levels}}
        # each round measures every level once, old first: a ratio is taken within a round, as pairs
        plan = [("old", c) for c in args.old_levels] + [("new", c) for c in args.levels]
        for rnd in range(args.rounds):
            for which, c in plan:
                got = measure(servers[which], pids[which], cfg, workload[: max(args.requests, c)], c)
                runs[which][c].append(got)
                print(f"round {rnd + 1} concurrency {c} {which}: {got} load {os.getloadavg()[0]:.2f}", flush=True)
        curve = {
            which: {
                c: {key: median(r[key] for r in rs) for key in ("tok_s", "tok_s_2cores", "parse_share")}
                for c, rs in by_level.items()
            }  # fmt: skip
            for which, by_level in runs.items()
        }
        quality = {}
        if args.names:
            step = max(1, len(descs) // args.names)
            sample = descs[::step][: args.names]
            for which, url in servers.items():
                quality[which] = names_quality(url, cfg, sample)
                print(f"names {which}: {quality[which]}", flush=True)
    finally:
        embedded.stop(state)
        old_proc.terminate()
        old_proc.wait(10)
    single = min(args.old_levels)
    # the ratio to the old server's single stream within each round (the machine's load drifts between rounds)
    ratios = {c: {key: median(n[key] / o[key] for n, o in zip(runs["new"][c], runs["old"][single], strict=True))
                  for key in ("tok_s", "tok_s_2cores")} for c in args.levels}  # fmt: skip
    print("\nconcurrency  old tok/s  new tok/s  ratio  | per 2 CPU-s: old  new  ratio  | parse old/new")
    print("(ratios: the median of each round's new / old single stream)")
    nan = {"tok_s": float("nan"), "tok_s_2cores": float("nan"), "parse_share": float("nan")}
    for c in args.levels:
        o, n, r = curve["old"].get(c, nan), curve["new"][c], ratios[c]
        print(
            f"{c:>11}  {o['tok_s']:>9.1f}  {n['tok_s']:>9.1f}  {r['tok_s']:>5.2f}  |  {o['tok_s_2cores']:>15.1f}  "
            f"{n['tok_s_2cores']:>4.1f}  {r['tok_s_2cores']:>5.2f}  | {o['parse_share']:.2f}/{n['parse_share']:.2f}"
        )
    save("parallel", {"levels": args.levels, "old_levels": args.old_levels, "requests": args.requests,
                      "threads": args.threads, "runs": runs, "curve": curve, "ratios": ratios,
                      "names": quality})  # fmt: skip


if __name__ == "__main__":
    main()
