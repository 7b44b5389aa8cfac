"""Generation throughput of the client against the latency server, and what the server itself can take.

The client is driven as the pipeline drives it: `make_client` + `runner.run_requests` (`concurrency` worker
threads calling `complete`). Only this process's CPU is counted; the server runs in its own process.
Figures: requests/s against Little's law (min(concurrency, capacity) / latency) and client CPU ms per request.

    python bench/bench_generation.py [--repeat 3] [--seconds 3] [--alternatives]
    python bench/bench_generation.py --concurrency 32 64 128 --unlimited-only --skip-server   # a quick check
    python bench/bench_generation.py --store /tmp/bench-store ...   # each answer also written to an answer store
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from common import latency_server, median, save

from evoselfcode.clients import make_client
from evoselfcode.config import Api
from evoselfcode.datagen.pipeline.runner import Request, run_requests
from evoselfcode.datagen.pipeline.store import AnswerStore

LATENCY = 0.05
CONCURRENCY = (1, 8, 32, 64, 128)
CAPPED = 32
PROMPT = "# Return the words of a text, most frequent first.\ndef "
PARAMS = {"max_tokens": 16, "temperature": 0.4, "top_p": 0.9, "n": 1, "stop": ["(", " ", "\n"], "logprobs": 1}
BODY = json.dumps({"model": "m", "prompt": PROMPT, **PARAMS}).encode()


# --store: a folder under which every run writes its answers to a fresh answer store, as the pipeline does
STORE_ROOT: str | None = None


def fresh_store() -> AnswerStore | None:
    """An empty store per run (else a repeat would read its answers back and ask nothing), or None."""
    return AnswerStore(tempfile.mkdtemp(dir=STORE_ROOT)) if STORE_ROOT else None


def api(url: str, **overrides) -> Api:
    return Api(base_url=url, model="bench", **overrides)


def timed(fn, count: int) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of fn()."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_client(url: str, concurrency: int, count: int, api_overrides: dict | None = None) -> dict:
    client = make_client(api(url, **(api_overrides or {})), base_url=url, concurrency=concurrency)
    return drive(client, concurrency, count)


def run_client_over_urllib3_pool(url: str, concurrency: int, count: int) -> dict:
    """The client with its slots as shares of a urllib3 pool (what a proxy uses) instead of its own connections."""
    import urllib3

    from evoselfcode.clients.openai import OpenAIClient

    pool = urllib3.PoolManager(maxsize=concurrency, block=True, retries=False)
    return drive(OpenAIClient(api(url), base_url=url, concurrency=concurrency, pool=pool), concurrency, count)


def drive(client, concurrency: int, count: int) -> dict:
    warm = [Request(("w", i), PROMPT, dict(PARAMS, seed=i)) for i in range(concurrency)]
    run_requests(client, warm, concurrency=concurrency, every=1e9)  # connections open before the clock starts
    reqs = [Request((i,), PROMPT, dict(PARAMS, seed=i)) for i in range(count)]
    out: list = []
    store = fresh_store()
    wall, cpu = timed(
        lambda: out.extend(run_requests(client, reqs, concurrency=concurrency, store=store, every=1e9)), count
    )
    ok = sum(o.error is None for o in out)
    client.close()
    return {"requests": count, "ok": ok, "wall_s": wall, "rps": ok / wall, "cpu_ms_per_req": 1000 * cpu / count}


# Alternatives measured for the recommendation (bare loops, no retries/breaker/limiter around them).


def run_requests_loop(url: str, concurrency: int, count: int) -> dict:
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=concurrency, max_retries=0))
    payload = json.loads(BODY)

    def one(_):
        return session.post(url + "/v1/completions", json=payload, timeout=30).json()

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency)))
        wall, cpu = timed(lambda: list(pool.map(one, range(count))), count)
    return {"requests": count, "rps": count / wall, "cpu_ms_per_req": 1000 * cpu / count}


def run_urllib3_loop(url: str, concurrency: int, count: int) -> dict:
    import urllib3

    pool = urllib3.HTTPConnectionPool(*url.split("//")[1].split(":"), maxsize=concurrency, retries=False)

    def one(_):
        resp = pool.request("POST", "/v1/completions", body=BODY, headers={"Content-Type": "application/json"})
        return json.loads(resp.data)

    with ThreadPoolExecutor(concurrency) as workers:
        list(workers.map(one, range(concurrency)))
        wall, cpu = timed(lambda: list(workers.map(one, range(count))), count)
    return {"requests": count, "rps": count / wall, "cpu_ms_per_req": 1000 * cpu / count}


def run_httpclient_loop(url: str, concurrency: int, count: int) -> dict:
    host, port = url.split("//")[1].split(":")
    local = threading.local()

    def one(_):
        conn = getattr(local, "conn", None) or http.client.HTTPConnection(host, int(port), timeout=30)
        local.conn = conn
        conn.request("POST", "/v1/completions", BODY, {"Content-Type": "application/json"})
        return json.loads(conn.getresponse().read())

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency)))
        wall, cpu = timed(lambda: list(pool.map(one, range(count))), count)
    return {"requests": count, "rps": count / wall, "cpu_ms_per_req": 1000 * cpu / count}


async def _async_loop(url: str, concurrency: int, count: int, body: bytes = BODY) -> None:
    host, port = url.split("//")[1].split(":")
    left = [count]
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()

    async def worker():
        reader, writer = await asyncio.open_connection(host, int(port))
        while left[0] > 0:
            left[0] -= 1
            writer.write(head + body)
            headers = await reader.readuntil(b"\r\n\r\n")
            length = int(headers.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            json.loads(await reader.readexactly(length))
        writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def run_asyncio_loop(url: str, concurrency: int, count: int) -> dict:
    wall, cpu = timed(lambda: asyncio.run(_async_loop(url, concurrency, count)), count)
    return {"requests": count, "rps": count / wall, "cpu_ms_per_req": 1000 * cpu / count}


def server_capacity(repeat: int) -> dict:
    """The server alone, loaded by a lean asyncio client: it must outrun anything the client under test asks."""
    out = {}
    for latency, conc in ((0.0, 64), (LATENCY, 128), (LATENCY, 256)):
        with latency_server("--latency", str(latency)) as url:
            count = 6000 if latency == 0 else int(conc / latency * 3)
            runs = [run_asyncio_loop(url, conc, count)["rps"] for _ in range(repeat)]
        limit = conc / latency if latency else None
        key = f"latency_{latency}_conc_{conc}"
        out[key] = {"rps_median": median(runs), "runs": runs, "limit_rps": limit}
        print(f"server alone  latency {latency * 1000:4.0f} ms  conc {conc:4d}: {median(runs):7.0f} req/s"
              + (f"  ({median(runs) / limit:.0%} of {limit:.0f})" if limit else ""))  # fmt: skip
    return out


def sweep(fn, capacity: int, repeat: int, seconds: float, levels=CONCURRENCY, label: str = "client") -> list[dict]:
    rows = []
    args = ["--latency", str(LATENCY), "--capacity", str(capacity)]
    with latency_server(*args) as url:
        for conc in levels:
            limit = min(conc, capacity or conc) / LATENCY
            count = max(100, int(limit * seconds))
            runs = [fn(url, conc, count) for _ in range(repeat)]
            row = {
                "capacity": capacity or None,
                "concurrency": conc,
                "limit_rps": limit,
                "rps_median": median(r["rps"] for r in runs),
                "cpu_ms_per_req_median": median(r["cpu_ms_per_req"] for r in runs),
                "runs": runs,
            }
            row["fraction_of_limit"] = row["rps_median"] / limit
            rows.append(row)
            cpu = row["cpu_ms_per_req_median"]
            print(f"{label:14s} cap {capacity or 'inf':>4}  conc {conc:4d}: {row['rps_median']:7.0f} req/s = "
                  f"{row['fraction_of_limit']:5.1%} of {limit:5.0f};  client CPU {cpu:.3f} ms/req")  # fmt: skip
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--alternatives", action="store_true", help="also bare requests, http.client and asyncio loops")
    p.add_argument("--name", default="generation")
    p.add_argument("--skip-server", action="store_true")
    p.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY), help="client levels to sweep")
    p.add_argument("--unlimited-only", action="store_true", help="skip the sweep against the capped server")
    p.add_argument("--urllib3-pool", action="store_true", help="also the client over a urllib3 pool (as via a proxy)")
    p.add_argument("--store", metavar="DIR", help="write every answer to a fresh answer store under DIR, as jobs do")
    a = p.parse_args()
    STORE_ROOT = a.store
    figures = {"latency_s": LATENCY, "capped_at": CAPPED}
    if not a.skip_server:
        figures["server_capacity"] = server_capacity(a.repeat)
    figures["client_unlimited"] = sweep(run_client, 0, a.repeat, a.seconds, levels=a.concurrency)
    if a.urllib3_pool:
        figures["client_unlimited_urllib3_pool"] = sweep(
            run_client_over_urllib3_pool, 0, a.repeat, a.seconds, levels=a.concurrency, label="client (pool)"
        )
    if not a.unlimited_only:
        figures["client_capped"] = sweep(run_client, CAPPED, a.repeat, a.seconds, levels=a.concurrency)
    if a.alternatives:
        alt = {"requests_threads": run_requests_loop, "urllib3_threads": run_urllib3_loop,
               "httpclient_threads": run_httpclient_loop, "asyncio_streams": run_asyncio_loop}  # fmt: skip
        figures["alternatives"] = {
            name: sweep(fn, 0, a.repeat, a.seconds, levels=(64, 128), label=name) for name, fn in alt.items()
        }
    save(a.name, figures)
