"""The native server's decoding speed with its OpenMP threads spinning or sleeping while they wait, in turn.

Starts llama.cpp's native server (one slot) three ways, one after another, round after round: OpenMP's default
wait (threads spin between operations before they sleep), `OMP_WAIT_POLICY=passive` (they sleep: what
`embedded.start` sets), and one thread (no waiting at all); each answers one greedy request of `--tokens`
tokens. Run it beside whatever load you want to judge (a quiet machine, or a pipeline's other jobs): the load
average is printed per line.

    python bench/bench_omp_wait.py [--rounds 2] [--tokens 40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

from common import save

from evoselfcode import embedded
from evoselfcode.config import Embedded

PROMPT = "# Return the n-th Fibonacci number.\ndef fibonacci(n):"
# libgomp's default: a thread spins for a while before it sleeps
WAYS = {"default": ({}, 2), "passive": ({"OMP_WAIT_POLICY": "passive"}, 2), "one thread": ({}, 1)}


def tokens_per_second(env: dict[str, str], threads: int, tokens: int) -> float:
    port = embedded._free_port()
    model = embedded.model_path(Embedded())
    cmd = [sys.executable, "-m", "evoselfcode.native_server", "--model", str(model), "--alias", "m",
           "--port", str(port), "--n-ctx", "1024", "--parallel", "1", "--threads", str(threads)]  # fmt: skip
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    proc = subprocess.Popen(cmd, env={**base, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        while not embedded._answers(url):
            time.sleep(0.2)
        body = {"model": "m", "prompt": PROMPT, "max_tokens": tokens, "temperature": 0, "ignore_eos": True}
        request = urllib.request.Request(f"{url}/v1/completions", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})  # fmt: skip
        start = time.perf_counter()
        answer = json.load(urllib.request.urlopen(request, timeout=900))
        return answer["usage"]["completion_tokens"] / (time.perf_counter() - start)
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--tokens", type=int, default=40)
    args = p.parse_args()
    rows = []
    for rnd in range(1, args.rounds + 1):
        for way, (env, threads) in WAYS.items():
            rate = tokens_per_second(env, threads, args.tokens)
            rows.append({"round": rnd, "way": way, "tok_s": round(rate, 2), "load": round(os.getloadavg()[0], 1)})
            print(rows[-1], flush=True)
    save("omp_wait", {"tokens": args.tokens, "rows": rows})


if __name__ == "__main__":
    main()
