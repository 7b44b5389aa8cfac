"""Executions per second: small functions with 5 asserts each, sandboxed (bubblewrap) vs unsandboxed.

Both run the same runner (`datagen/sandbox_runner.py`): a forked child per function with the same rlimits;
"unsandboxed" is `execution.sandbox: none-unsafe`, a plain process per worker instead of one bwrap each.
The two modes alternate, `--repeat` times each, in one run; the figure is the median.

    python bench/bench_sandbox.py [--functions 400] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

from common import median, save

from evoselfcode.config import Execution
from evoselfcode.datagen.sandbox import Job, run_jobs

BODIES = [
    ("def f{i}(xs):\n    return sorted(set(xs))\n",
     ["f{i}([3, 1, 3]) == [1, 3]", "f{i}([]) == []", "f{i}([2]) == [2]", "f{i}([1, 1]) == [1]", "f{i}([5, 4]) == [5]"]),
    ("def f{i}(text):\n    return {{w: text.split().count(w) for w in text.split()}}\n",
     ["f{i}('a b a') == {{'a': 2, 'b': 1}}", "f{i}('') == {{}}", "f{i}('x') == {{'x': 1}}", "f{i}('a a') == {{'a': 2}}",
      "f{i}('b') == {{'a': 1}}"]),
    ("import math\ndef f{i}(n):\n    return math.factorial(n) % 1000003\n",
     ["f{i}(0) == 1", "f{i}(5) == 120", "f{i}(10) == 3628800 % 1000003", "f{i}(3) == 6", "f{i}(4) == 25"]),
]  # fmt: skip


def jobs(count: int) -> list[Job]:
    out = []
    for i in range(count):
        code, tests = BODIES[i % len(BODIES)]
        out.append(Job(code.format(i=i), tuple("assert " + t.format(i=i) for t in tests)))
    return out


def measure(batch: list[Job], ex: Execution, workers: int) -> float:
    start = time.perf_counter()
    outcomes = run_jobs(batch, ex, workers)
    elapsed = time.perf_counter() - start
    assert all(o.count("pass") == 4 for o in outcomes), outcomes[:3]
    return len(batch) / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--functions", type=int, default=400)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    batch = jobs(args.functions)
    modes = {"sandboxed": Execution(), "unsandboxed": Execution(sandbox="none-unsafe")}
    rates: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.repeat):
        for mode, ex in modes.items():
            rate = measure(batch, ex, args.workers)
            rates[mode].append(rate)
            print(f"{mode}: {rate:.1f} functions/s ({rate * 5:.0f} assertions/s)", flush=True)
    figures = {m: round(median(r), 1) for m, r in rates.items()}
    figures["ratio"] = round(figures["sandboxed"] / figures["unsandboxed"], 3)
    print(f"median functions/s: {figures}")
    save("sandbox", {"functions": args.functions, "workers": args.workers, "asserts": 5, "rates": rates, **figures})


if __name__ == "__main__":
    main()
