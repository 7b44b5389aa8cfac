"""A latency-injecting OpenAI-compatible completions server for benchmarks: asyncio streams, HTTP/1.1 keep-alive.

Each request takes `--latency` seconds of "GPU" time; with `--capacity C` at most C are served at once and
the rest wait in a FIFO queue (like vLLM's scheduler at its batch limit). Faults (`--p500`, `--p429`,
`--preset`) are answered at once and take no capacity. The server records how many requests are being
served over time, so `GET /stats?bin=S` gives the busy fraction (served / capacity) per S-second bin.

Routes: POST /v1/completions, GET /stats[?bin=S], POST /reset, GET /health.
Run: `python bench/latency_server.py --port 0 --port-file F --latency 0.05 --capacity 32`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import time
from pathlib import Path

NAMES = [
    "parse", "config", "count", "words", "merge", "sorted", "lists", "flatten", "dict", "palindrome", "chunk",
    "normalize", "path", "read", "lines", "moving", "average", "dedupe", "items", "camel", "snake", "top",
    "frequent", "validate", "email", "binary", "search", "rotate", "matrix", "group", "key",
]  # fmt: skip
BODY = (
    '{arg}):\n    """{doc}"""\n    result = []\n    for {var} in {arg}:\n        if {var} {op} {k}:\n'
    "            result.append({var} * {k})\n    return result\n"
)


def fake_name(h: int) -> str:
    words = [NAMES[(h >> (8 * i)) % len(NAMES)] for i in range(1 + h % 3)]
    return "_".join(words)


def fake_code(h: int) -> str:
    return BODY.format(
        arg=("items", "values", "rows", "data")[h % 4],
        var=("x", "item", "v", "row")[(h >> 3) % 4],
        op=("<", ">", "==", "!=")[(h >> 6) % 4],
        k=h % 97,
        doc=f"Transform the input ({h % 1000})." if h % 5 else "Keep the matching items.",
    )


class State:
    def __init__(self, latency: float, capacity: int, p500: float, p429: float, preset: float, retry_after: float):
        self.latency, self.capacity = latency, capacity
        self.p500, self.p429, self.preset, self.retry_after = p500, p429, preset, retry_after
        self.rng = random.Random(1)
        self.sem = asyncio.Semaphore(capacity) if capacity else None
        self.reset()

    def reset(self) -> None:
        self.active = 0
        self.events: list[tuple[float, int]] = [(time.monotonic(), 0)]  # (time, requests being served) on change
        self.counts = {"requests": 0, "ok": 0, "500": 0, "429": 0, "reset": 0, "max_active": 0, "max_waiting": 0}
        self.waiting = 0

    def change(self, delta: int) -> None:
        self.active += delta
        self.counts["max_active"] = max(self.counts["max_active"], self.active)
        self.events.append((time.monotonic(), self.active))

    def stats(self, bin_s: float | None) -> dict:
        now = time.monotonic()
        events = [*self.events, (now, self.active)]
        cap = self.capacity or max(1, self.counts["max_active"])
        first = next((t for t, a in events if a > 0), now)
        last = max((t for (t, a), (_, b) in zip(events, events[1:], strict=False) if a > 0), default=first)
        out = dict(self.counts, capacity=self.capacity, first_active=first, last_active=last, now=now)
        busy = sum((t2 - t1) * min(a, cap) for (t1, a), (t2, _) in zip(events, events[1:], strict=False))
        out["busy_s"] = busy / cap
        out["busy_fraction"] = busy / cap / (last - first) if last > first else 0.0
        if bin_s:
            bins: dict[int, float] = {}
            for (t1, a), (t2, _) in zip(events, events[1:], strict=False):
                while a and t1 < t2:
                    k = int((t1 - first) // bin_s)
                    edge = min(t2, first + (k + 1) * bin_s)
                    bins[k] = bins.get(k, 0.0) + (edge - t1) * min(a, cap)
                    t1 = edge
            out["bin_s"] = bin_s
            out["bins"] = [round(bins.get(k, 0.0) / cap / bin_s, 4) for k in range(max(bins, default=-1) + 1)]
        return out


def _response(status: int, payload: dict, extra: str = "") -> bytes:
    body = json.dumps(payload).encode()
    reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def completion(body: dict) -> dict:
    prompt = str(body.get("prompt", ""))
    max_tokens = int(body.get("max_tokens") or 16)
    seed = hashlib.blake2b(f"{prompt}|{body.get('seed')}".encode(), digest_size=8).digest()
    choices = []
    for i in range(int(body.get("n") or 1)):
        h = int.from_bytes(seed, "little") ^ (i * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF)
        text = fake_name(h) if max_tokens <= 32 else fake_code(h)
        lp = {"tokens": [text], "token_logprobs": [-0.1 - (h % 50) / 100], "text_offset": [len(prompt)]}
        choices.append({"index": i, "text": text, "finish_reason": "stop", "logprobs": lp})
    usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": 8 * len(choices)}
    return {"id": "cmpl-bench", "object": "text_completion", "model": body.get("model"), "choices": choices,
            "usage": usage}  # fmt: skip


async def handle(state: State, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == "content-length:":
                    length = int(line[15:])
            raw = await reader.readexactly(length) if length else b""
            path, _, query = target.partition("?")
            if method == "POST" and path == "/v1/completions":
                state.counts["requests"] += 1
                r = state.rng.random()
                if r < state.p500:
                    state.counts["500"] += 1
                    writer.write(_response(500, {"error": {"message": "injected 500"}}))
                elif r < state.p500 + state.p429:
                    state.counts["429"] += 1
                    retry_after = f"Retry-After: {state.retry_after:g}\r\n"
                    writer.write(_response(429, {"error": {"message": "injected 429"}}, retry_after))
                elif r < state.p500 + state.p429 + state.preset:
                    state.counts["reset"] += 1
                    writer.transport.abort()  # a connection reset: no answer at all
                    return
                else:
                    if state.sem is not None:
                        state.waiting += 1
                        state.counts["max_waiting"] = max(state.counts["max_waiting"], state.waiting)
                        await state.sem.acquire()
                        state.waiting -= 1
                    state.change(+1)
                    try:
                        await asyncio.sleep(state.latency)
                    finally:
                        state.change(-1)
                        if state.sem is not None:
                            state.sem.release()
                    state.counts["ok"] += 1
                    writer.write(_response(200, completion(json.loads(raw))))
            elif path == "/stats":
                bin_s = float(query.split("=", 1)[1]) if query.startswith("bin=") else None
                writer.write(_response(200, state.stats(bin_s)))
            elif path == "/reset":
                state.reset()
                writer.write(_response(200, {"reset": True}))
            elif path == "/health":
                writer.write(_response(200, {"ok": True}))
            else:
                writer.write(_response(404, {"error": {"message": f"no route {path}"}}))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(args: argparse.Namespace) -> None:
    state = State(args.latency, args.capacity, args.p500, args.p429, args.preset, args.retry_after)
    server = await asyncio.start_server(lambda r, w: handle(state, r, w), "127.0.0.1", args.port, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        tmp = Path(args.port_file + ".tmp")
        tmp.write_text(str(port))
        tmp.replace(args.port_file)
    print(f"latency server on http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--latency", type=float, default=0.05)
    p.add_argument("--capacity", type=int, default=0, help="requests served at once; 0 = unlimited")
    p.add_argument("--p500", type=float, default=0.0)
    p.add_argument("--p429", type=float, default=0.0)
    p.add_argument("--preset", type=float, default=0.0, help="share of requests answered by a connection reset")
    p.add_argument("--retry-after", type=float, default=1.0)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(p.parse_args()))
