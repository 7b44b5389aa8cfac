"""Throughput under faults: 10% 500s, 5% 429s with Retry-After: 1, 2% connection resets, 50 ms per answer.

Successful answers/s against the fault-free limit concurrency / latency; the client is driven as the runner
drives it, with the default retry policy (6 retries, full-jitter backoff from 0.5 s, Retry-After honoured).
Two rates: over the whole batch, and in steady state (answers while requests were still waiting to be sent;
what follows is the batch's drain, whose length is set by the unluckiest request's chain of retries).

    python bench/bench_faults.py [--repeat 3] [--seconds 6] [--store DIR]
"""

from __future__ import annotations

import argparse
import time

import bench_generation
from bench_generation import LATENCY, PARAMS, PROMPT, api, fresh_store, timed
from common import get_json, latency_server, median, save

from evoselfcode.clients import make_client
from evoselfcode.datagen.pipeline.runner import Request, run_requests

FAULTS = {"p500": 0.10, "p429": 0.05, "preset": 0.02, "retry_after": 1.0}


class Clocked:
    """The client, noting when each request was first sent and when each answer came."""

    def __init__(self, client):
        self.client, self.first_sent, self.answered = client, [], []

    def complete(self, prompt, **params):
        self.first_sent.append(time.perf_counter())
        choices = self.client.complete(prompt, **params)
        self.answered.append(time.perf_counter())
        return choices


def run(url: str, concurrency: int, count: int) -> dict:
    client = make_client(api(url), base_url=url, concurrency=concurrency)
    clocked = Clocked(client)
    reqs = [Request((i,), PROMPT, dict(PARAMS, seed=i)) for i in range(count)]
    get_json(url + "/reset", "POST")
    out: list = []
    store = fresh_store()
    start = time.perf_counter()
    wall, cpu = timed(
        lambda: out.extend(run_requests(clocked, reqs, concurrency=concurrency, store=store, every=1e9)), count
    )
    last_sent = max(clocked.first_sent) - start  # from here on, only retries of requests already sent remain
    steady = sum(t - start <= last_sent for t in clocked.answered) / last_sent
    stats = client.stats()
    client.close()
    ok = sum(o.error is None for o in out)
    served = get_json(url + "/stats")
    return {
        "requests": count,
        "ok": ok,
        "failed": count - ok,
        "wall_s": wall,
        "ok_per_s": ok / wall,
        "steady_ok_per_s": steady,
        "steady_s": last_sent,
        "cpu_ms_per_ok": 1000 * cpu / max(ok, 1),
        "retries": stats["retries"],
        "server": {k: served[k] for k in ("requests", "ok", "500", "429", "reset", "max_active")},
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--concurrency", type=int, nargs="+", default=[32, 64])
    p.add_argument("--name", default="faults")
    p.add_argument("--store", metavar="DIR", help="write every answer to a fresh answer store under DIR, as jobs do")
    a = p.parse_args()
    bench_generation.STORE_ROOT = a.store
    args = ["--latency", str(LATENCY), "--p500", "0.1", "--p429", "0.05", "--preset", "0.02", "--retry-after", "1"]
    rows = []
    with latency_server(*args) as url:
        for conc in a.concurrency:
            limit = conc / LATENCY
            runs = [run(url, conc, int(limit * a.seconds)) for _ in range(a.repeat)]
            ok_per_s = median(r["ok_per_s"] for r in runs)
            steady = median(r["steady_ok_per_s"] for r in runs)
            row = {"concurrency": conc, "fault_free_limit": limit, "ok_per_s_median": ok_per_s, "runs": runs,
                   "steady_ok_per_s_median": steady, "steady_fraction_of_limit": steady / limit}  # fmt: skip
            row["fraction_of_limit"] = row["ok_per_s_median"] / limit
            rows.append(row)
            in_flight = [r["server"]["max_active"] for r in runs]
            print(f"faults  conc {conc:4d}: steady state {steady:6.0f} answers/s = {steady / limit:5.1%}, whole batch "
                  f"{ok_per_s:6.0f} = {row['fraction_of_limit']:5.1%} of the fault-free {limit:.0f}; failed "
                  f"{[r['failed'] for r in runs]}, max in flight at the server {in_flight}")  # fmt: skip
    save(a.name, {"latency_s": LATENCY, "faults": FAULTS, "rows": rows})
