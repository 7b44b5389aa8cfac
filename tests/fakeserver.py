"""A deterministic, fault-injecting stand-in for an OpenAI-compatible completions server.

Everything it answers is computed from the request: a hash of prompt + seed + choice index picks a plausible
snake_case name (small `max_tokens`) or a small Python function body (large `max_tokens`). `stop`, `n`,
`echo` and `logprobs` are honoured (fake, deterministic log-probs). Faults are drawn per request from a hash
of (server seed, canonical body, how many times that body has been seen), so a retried request gets a fresh
draw and a whole run is reproducible. It counts requests and successful answers per canonical body.

Routes: POST /v1/completions (OpenAI), POST /generate (TGI if the body has "inputs", else vLLM's legacy
route), GET /v1/models, GET /stats (the counters), GET /health.

A prompt may carry directives for exact tests: `[[fail:K:KIND]]` makes the first K attempts of that body fail
with KIND, `[[always:KIND]]` every attempt; KIND is an HTTP status (500, 429, 401, ...) or reset, stall,
badjson, short. `[[slow:S]]` answers normally after S seconds. `[[name:B64]]` / `[[code:B64]]` make the
model "write" the base64-decoded text for name requests / code requests (cut by `stop` as usual), so a
test can feed the pipeline hostile model output.

For reliability tests: `each_fault_first` acts out each fault kind with a non-zero rate once, on the first
requests, so a short run sees every kind; `hold_after=N` answers N requests, then holds every further one
unanswered (a hung server) until `POST /release`, which drops the held ones and serves normally again.
`POST /hold?after=N` holds again once N requests in all have been answered.
`GET /stats?bodies=1` adds the successful answers per body (sha256 of the canonical body).

In a test: `with FakeServer(Options(faults=Faults(server_error=0.1))) as srv: srv.url ...`
As a process: `python tests/fakeserver.py --port 0 --seed 1 --error-rate 0.1`; it prints
`fakeserver listening on http://127.0.0.1:PORT` on its first stdout line (and writes the port to
`--port-file` if given), then serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import json
import re
import signal
import socket
import struct
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NAMES = [
    "parse_config", "count_words", "merge_sorted_lists", "flatten_dict", "is_palindrome", "chunk_list",
    "normalize_path", "read_jsonl", "moving_average", "dedupe_preserving_order", "camel_to_snake",
    "top_k_frequent", "validate_email", "binary_search", "rotate_matrix", "group_by_key",
]  # fmt: skip
BODIES = [
    'items):\n    """Return the items without duplicates, keeping their order."""\n    seen = set()\n'
    "    out = []\n    for item in items:\n        if item not in seen:\n            seen.add(item)\n"
    "            out.append(item)\n    return out\n\n\ndef main():\n    print(1)\n",
    'text):\n    """Count the words in a text."""\n    counts = {}\n    for word in text.split():\n'
    "        counts[word] = counts.get(word, 0) + 1\n    return counts\n\n\nprint(count_words('a b'))\n",
    'values, window):\n    """Moving average over a window."""\n    if window <= 0:\n'
    '        raise ValueError("window must be positive")\n    return [sum(values[i : i + window]) / window '
    "for i in range(len(values) - window + 1)]\n\n\nclass Extra:\n    pass\n",
    'matrix):\n    """Rotate a square matrix clockwise."""\n    return [list(row) for row in zip(*matrix[::-1])]\n'
    "\n\nif __name__ == '__main__':\n    pass\n",
]
# Tests the fake model writes for each of BODIES, by the docstring in the prompt: (passing, failing) asserts,
# the name left out. Most answers pass 3 of 4; one in four mostly fails; some lines the parser must drop.
TESTS = {
    "without duplicates": (["[1, 2, 2, 3]) == [1, 2, 3]", "[]) == []", "['a', 'b', 'a']) == ['a', 'b']"],
                           ["[3, 1, 3]) == [1, 3]", "[1]) == []"]),
    "Count the words": (["'a b a') == {'a': 2, 'b': 1}", "'') == {}", "'x') == {'x': 1}"],
                        ["'a a') == {'a': 1}", "'b') == {}"]),
    "Moving average": (["[1, 2, 3], 2) == [1.5, 2.5]", "[4], 1) == [4.0]", "[1, 1], 2) == [1.0]"],
                       ["[1], 0) == []", "[1, 2], 1) == [1, 2, 3]"]),
    "Rotate a square": (["[[1, 2], [3, 4]]) == [[3, 1], [4, 2]]", "[]) == []", "[[5]]) == [[5]]"],
                        ["[[1]]) == [[2]]", "[[1, 2], [3, 4]]) == [[1, 2], [3, 4]]"]),
}  # fmt: skip
_TEST_HEAD = re.compile(r"\nassert (\w+)\((\w+=)?$")  # the first parameter by keyword, when there is one
_TOKEN = re.compile(r"<\|[a-z_]+\|>|\w+|\s+|[^\w\s]")
_DIRECTIVE = re.compile(r"\[\[(fail|always|slow|name|code|tests):([^\]]+)\]\]")
FAULT_KINDS = ("server_error", "rate_limited", "reset", "stall", "invalid_json", "short")


@dataclass(frozen=True)
class Faults:
    """Probability of each fault per request; drawn deterministically, in this order."""

    server_error: float = 0.0
    rate_limited: float = 0.0
    reset: float = 0.0
    stall: float = 0.0
    invalid_json: float = 0.0
    short: float = 0.0
    retry_after: float = 1.0  # seconds, sent as Retry-After with a 429
    stall_s: float = 2.0  # how long a stall lasts before the connection is dropped


@dataclass(frozen=True)
class Options:
    seed: int = 0
    faults: Faults = Faults()
    single_choice: bool = False  # like llama.cpp's server: one choice whatever `n` says
    usage_of_one: bool = False  # like llama.cpp's native server: `usage` counts one choice of n; `timings`, /tokenize
    tokenize: str = "ok"  # with usage_of_one, POST /tokenize: "ok" | "missing" (404) | "error" (502)
    logprobs: str = "ok"  # "ok" | "missing" (silently absent) | "error" (500 naming logits_all)
    fim_tokens: bool = True  # `<|fim_prefix|>` etc. are single tokens
    latency_s: float = 0.0
    required_headers: dict[str, str] = field(default_factory=dict)
    models: tuple[str, ...] = ("fake-coder",)
    each_fault_first: bool = False  # the first requests act out each fault kind with a non-zero rate once
    hold_after: int | None = None  # answer this many requests, then hold the rest until POST /release


def _hash(*parts: Any) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode("utf-8", "surrogatepass")).hexdigest()[:16], 16)


def tokenize(text: str, *, fim_tokens: bool = True) -> list[str]:
    tokens = _TOKEN.findall(text)
    if not fim_tokens:
        tokens = [piece for tok in tokens for piece in (list(tok) if tok.startswith("<|") else [tok])]
    return tokens


def token_logprob(prev: str, tok: str) -> float:
    return -round((_hash(prev, tok) % 4000) / 1000 + 0.001, 4)


def _scripted(prompt: str, max_tokens: int, index: int = 0) -> str | None:
    """The text a `[[name:B64]]`, `[[code:B64]]` or `[[tests:B64]]` directive scripts for this kind of request;
    `[[code:B64,B64,...]]` scripts each choice of a request in turn (choice `index` gets the index-th, cyclically)."""
    want = "name" if max_tokens <= 32 else "tests" if _TEST_HEAD.search(prompt) else "code"
    for kind, arg in _DIRECTIVE.findall(prompt):
        if kind == want:
            texts = arg.split(",")
            return base64.b64decode(texts[index % len(texts)]).decode("utf-8", "surrogatepass")  # may be half a char
    return None


def _tests_for(prompt: str) -> tuple[list[str], list[str]]:
    """The tests of the body whose docstring is in the prompt, or else whose parameters the signature shows."""
    if found := next((t for key, t in TESTS.items() if key in prompt), None):
        return found
    for body in BODIES:
        if f"({body.split('):', 1)[0]}):" in prompt:  # a description's tests show a candidate's `def` line only
            return next((t for key, t in TESTS.items() if key in body), (["0) is not None"], ["0) is None"]))
    return ["0) is not None"], ["0) is None"]


def _by_keyword(line: str, name: str, prompt: str) -> str:
    """`line` with the arguments of its call of `name` passed by the keywords of the signature in the prompt; more
    arguments than parameters give a line that does not continue the prompt, which the parser drops."""
    signature = next(s for s in prompt.splitlines() if s.startswith(f"def {name}("))
    params = [a.arg for a in ast.parse(signature + "\n    pass").body[0].args.args]
    tree = ast.parse(line)
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name)
    call.keywords = [ast.keyword(p, a) for p, a in zip(params, call.args, strict=False)]  # too few: a wrong call
    call.args = call.args[len(call.keywords) :]
    return ast.unparse(tree)


def fake_tests(prompt: str, name: str, keyword: str | None, h: int) -> str:
    """Asserts about the function in a test prompt (which ends with `assert {name}(` and maybe its first
    parameter by keyword, as the first line then takes its arguments), that head left out."""
    good, bad = _tests_for(prompt)
    lines = [f"assert {name}({t}" for t in ([*good, bad[0]] if h % 4 else [good[0], *bad])]
    if keyword:
        lines[0] = _by_keyword(lines[0], name, prompt)
    if h % 3 == 0:  # a call compared with itself and one that never calls the function: the parser drops both
        call = lines[0].split(" ==")[0].removeprefix("assert ")
        lines += [f"assert {call} == {call}", "assert 1 + 1 == 2"]
    return "\n".join(lines).removeprefix(f"assert {name}({keyword or ''}") + "\n\n"


def generate(prompt: str, seed: Any, index: int, max_tokens: int, stop: list[str]) -> tuple[str, str, str | None]:
    """(text, finish_reason, stop string hit) for one choice, as a code model might continue `prompt`."""
    h = _hash(prompt, seed, index)
    # short budgets are name requests (the name and its signature); long ones continue a function or test it
    if max_tokens <= 32:
        text = f"{NAMES[h % len(NAMES)]}(data):\n    return data\n"
    elif test := _TEST_HEAD.search(prompt):
        text = fake_tests(prompt, test.group(1), test.group(2), h)
    else:
        text = BODIES[h % len(BODIES)]
    text = _scripted(prompt, max_tokens, index) or text
    finish, hit = "stop", None
    cuts = sorted((i, s) for s in stop if s and (i := text.find(s)) >= 0)
    if cuts:
        text, hit = text[: cuts[0][0]], cuts[0][1]
    tokens = tokenize(text)
    if len(tokens) > max_tokens:
        text, finish, hit = "".join(tokens[:max_tokens]), "length", None
    return text, finish, hit


def logprobs_block(prefix: str, text: str, start: int, fim_tokens: bool) -> dict:
    """OpenAI-style logprobs for `text` (which follows `prefix`); offsets start at `start`."""
    tokens = tokenize(text, fim_tokens=fim_tokens)
    offsets, lps, pos, prev = [], [], start, prefix[-1:]
    for tok in tokens:
        offsets.append(pos)
        lps.append(token_logprob(prev, tok))
        pos += len(tok)
        prev = tok
    return {"tokens": tokens, "token_logprobs": lps, "text_offset": offsets, "top_logprobs": None}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops SYNs when a pool of clients reconnects at once

    def handle_error(self, request, client_address):  # dropped connections are the point here
        pass


class FakeServer:
    def __init__(self, options: Options | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.options = options or Options()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.received: Counter[str] = Counter()
        self.succeeded: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.answered = 0  # requests let through to an answer (see Options.hold_after)
        self.hold_after = self.options.hold_after
        self.held = 0
        self.refused = 0  # requests without the required headers (not in the other counters)
        self.tokenized = 0  # POST /tokenize requests (not in the other counters)
        self._released = threading.Event()
        self._first_faults = [k for k in FAULT_KINDS if getattr(self.options.faults, k)]
        if not self.options.each_fault_first:
            self._first_faults = []
        self._httpd = _Server((host, port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stats(self, bodies: bool = False) -> dict:
        with self._lock:
            out = {
                "requests": sum(self.received.values()),
                "successes": sum(self.succeeded.values()),
                "bodies": len(self.received),
                "max_successes_per_body": max(self.succeeded.values(), default=0),
                "faults": dict(self.faults),
                "held": self.held,
                "refused": self.refused,
            }
            if bodies:
                out["successes_per_body"] = {
                    hashlib.sha256(canon.encode()).hexdigest(): n for canon, n in self.succeeded.items()
                }
            return out

    def admit(self) -> bool:
        """Whether a request may be answered now; with `hold_after`, the rest wait here until released."""
        with self._lock:
            hold = self.hold_after is not None and self.answered >= self.hold_after
            if not hold or self._released.is_set():
                self.answered += 1
                return True
            self.held += 1
            released = self._released
        released.wait()  # or until the server stops
        return False

    def release(self) -> None:
        self._released.set()

    def hold(self, after: int) -> None:
        """From now on, hold every request once `after` requests in all have been answered."""
        with self._lock:
            self._released.set()  # requests held so far are dropped
            self.hold_after = after
            self._released = threading.Event()

    def record(self, canon: str) -> int:
        """Count one request for this body; returns its attempt number (1-based)."""
        with self._lock:
            self.received[canon] += 1
            return self.received[canon]

    def choose_fault(self, canon: str, attempt: int, prompt: str) -> str | None:
        if attempt == 1:
            with self._lock:
                if self._first_faults:
                    return self._first_faults.pop(0)
        for kind, arg in _DIRECTIVE.findall(prompt):
            if kind == "fail":
                count, what = arg.split(":", 1)
                if attempt <= int(count):
                    return what
            elif kind == "always":
                return arg
        f = self.options.faults
        u = _hash(self.options.seed, attempt, canon) / 16**16
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += getattr(f, kind)
            if u < edge:
                return kind
        return None

    def sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def _handler_for(server: FakeServer):
    opts = server.options

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes; Nagle would add 40 ms

        def log_message(self, format, *args):  # quiet: tests read the counters instead
            pass

        def do_GET(self):
            if self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in opts.models]})
            elif self.path in ("/stats", "/stats?bodies=1"):
                self._json(200, server.stats(bodies=self.path.endswith("=1")))
            elif self.path == "/health":
                self._json(200, {"status": "ok"})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/release":
                server.release()
                return self._json(200, {"released": True})
            if self.path.startswith("/hold?after="):
                server.hold(int(self.path.split("=", 1)[1]))
                return self._json(200, {"hold_after": server.hold_after})
            if not server.admit():
                return self._drop()  # held until released: the caller gave up long ago, it gets no answer
            for name, value in opts.required_headers.items():
                if self.headers.get(name) != value:
                    # like some real servers, echo what was received: the client must not leak it onward
                    got = self.headers.get(name)
                    with server._lock:
                        server.refused += 1
                    return self._json(401, {"error": {"message": f"invalid credentials {got!r} for header {name}"}})
            try:
                body = json.loads(raw)
                assert isinstance(body, dict)
            except (ValueError, AssertionError):
                return self._json(400, {"error": {"message": "body is not a JSON object"}})
            if self.path == "/tokenize" and opts.usage_of_one:
                with server._lock:
                    server.tokenized += 1
                if opts.tokenize != "ok":
                    status = 404 if opts.tokenize == "missing" else 502
                    return self._json(status, {"error": {"message": "File Not Found" if status == 404 else "busy"}})
                return self._json(200, {"tokens": list(range(len(tokenize(str(body.get("content", ""))))))})
            canon = json.dumps(body, sort_keys=True)
            attempt = server.record(canon)
            prompt = str(body.get("prompt", body.get("inputs", "")))
            fault = server.choose_fault(canon, attempt, prompt)
            if fault and self._fault(fault, body):
                return None
            for kind, arg in _DIRECTIVE.findall(prompt):
                if kind == "slow":
                    server.sleep(float(arg))
            if opts.latency_s:
                server.sleep(opts.latency_s)
            if self.path == "/v1/completions":
                status, answer = self._completions(body, short=fault == "short")
            elif self.path == "/generate":
                status, answer = self._tgi(body) if "inputs" in body else self._vllm_generate(body)
            else:
                status, answer = 404, {"error": {"message": f"no route {self.path}"}}
            if status == 200:
                with server._lock:
                    server.succeeded[canon] += 1
            self._json(status, answer)
            return None

        def _fault(self, kind: str, body: dict) -> bool:
            """Act out a fault; False if it does not apply to this request (then it is answered normally)."""
            with server._lock:
                server.faults[kind] += 1  # counted before acting, so a stall still in progress is already seen
            if kind in ("server_error", "rate_limited"):
                kind = "500" if kind == "server_error" else "429"
            if kind.isdigit():
                headers = {"Retry-After": f"{opts.faults.retry_after:g}"} if kind == "429" else {}
                self._json(int(kind), {"error": {"message": f"injected {kind}", "type": "fault"}}, headers)
            elif kind == "reset":
                self._drop()
            elif kind == "stall":
                server.sleep(opts.faults.stall_s)
                self._drop()
            elif kind in ("invalid_json", "badjson"):
                self._send(200, b'{"choices": [{"text": "trunc', {"Content-Type": "application/json"})
            elif kind == "short":
                return False  # answered by the route, with fewer choices (counted even when n is 1)
            return True

        def _completions(self, body: dict, *, short: bool) -> tuple[int, dict]:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                return 400, {"error": {"message": "prompt must be a string"}}
            n = int(body.get("n") or 1)
            max_tokens = int(body.get("max_tokens", 16))
            stop = body.get("stop") or []
            stop = [stop] if isinstance(stop, str) else stop
            want_lp = body.get("logprobs") not in (None, False, 0)
            if want_lp and opts.logprobs == "error":
                return 500, {"error": {"message": "logprobs is not supported for models created with logits_all=False"}}
            k = 1 if opts.single_choice else n
            if short and n > 1:
                k = max(1, n // 2)
            choices, completion_tokens = [], 0
            for i in range(k):
                text, finish, _ = generate(prompt, body.get("seed"), i, max_tokens, stop)
                completion_tokens += len(tokenize(text))
                choice: dict[str, Any] = {"index": i, "text": text, "finish_reason": finish, "logprobs": None}
                if body.get("echo"):
                    choice["text"] = prompt + text
                if want_lp and opts.logprobs == "ok":
                    if body.get("echo"):
                        lp = logprobs_block("", prompt + text, 0, opts.fim_tokens)
                        if lp["token_logprobs"]:
                            lp["token_logprobs"][0] = None  # like vLLM: nothing predicts the first token
                    else:
                        lp = logprobs_block(prompt, text, len(prompt), opts.fim_tokens)
                    choice["logprobs"] = lp
                choices.append(choice)
            if opts.usage_of_one:  # ggml-org/llama.cpp#27318: the last choice's count stands for all
                completion_tokens = len(tokenize(choices[-1]["text"]))
            usage = {"prompt_tokens": len(tokenize(prompt)), "completion_tokens": completion_tokens}
            usage["total_tokens"] = usage["prompt_tokens"] + completion_tokens
            answer = {"id": "cmpl-fake", "object": "text_completion", "model": body.get("model"), "choices": choices,
                      "usage": usage}  # fmt: skip
            if opts.usage_of_one:
                answer["timings"] = {"predicted_n": completion_tokens}
            return 200, answer

        def _tgi(self, body: dict) -> tuple[int, dict]:
            params = body.get("parameters") or {}
            top_p = params.get("top_p")
            if top_p is not None and not 0 < top_p < 1:
                return 422, {
                    "error": "Input validation error: `top_p` must be > 0.0 and < 1.0",
                    "error_type": "validation",
                }
            temperature = params.get("temperature")
            if temperature is not None and temperature <= 0:
                return 422, {"error": "Input validation error: `temperature` must be strictly positive"}
            prompt = str(body["inputs"])
            stop = params.get("stop") or []
            text, finish, hit = generate(prompt, params.get("seed"), 0, int(params.get("max_new_tokens", 20)), stop)
            finish = "length" if finish == "length" else "eos_token"
            if hit:
                text, finish = text + hit, "stop_sequence"  # TGI keeps the stop sequence in generated_text
            lp = logprobs_block(prompt, text, 0, opts.fim_tokens)
            details = {
                "finish_reason": finish,
                "generated_tokens": len(lp["tokens"]),
                "seed": params.get("seed"),
                "tokens": [{"id": i, "text": t, "logprob": v, "special": False}
                           for i, (t, v) in enumerate(zip(lp["tokens"], lp["token_logprobs"], strict=True))],
            }  # fmt: skip
            if params.get("decoder_input_details"):
                pre = logprobs_block("", prompt, 0, opts.fim_tokens)
                pairs = zip(pre["tokens"], pre["token_logprobs"], strict=True)
                details["prefill"] = [
                    {"id": i, "text": t, "logprob": v if i else None} for i, (t, v) in enumerate(pairs)
                ]
            return 200, {"generated_text": text, "details": details if params.get("details") else None}

        def _vllm_generate(self, body: dict) -> tuple[int, dict]:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                return 400, {"error": "prompt must be a string"}
            stop = body.get("stop") or []
            outs = [
                prompt + generate(prompt, body.get("seed"), i, int(body.get("max_tokens", 16)), stop)[0]
                for i in range(int(body.get("n") or 1))
            ]
            return 200, {"text": outs}

        def _json(self, status: int, payload: Any, headers: dict | None = None) -> None:
            self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _send(self, status: int, data: bytes, headers: dict) -> None:
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True

        def _drop(self) -> None:
            """Close with a TCP reset and no response at all."""
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            except OSError:
                pass

    return Handler


def _stop_follows(after: str, stop: str, prompt: str, params: dict) -> bool:
    """Whether the uncut continuation would have run into `stop` (so TGI would report it)."""
    full, _ = generate(prompt, params.get("seed"), 0, 10**6, [])
    return bool(stop) and stop in full[len(after) - len(prompt) :][: len(stop) + 1] and full.find(stop) >= 0


class ServerProcess:
    """This server as a separate process (so Snakemake's job processes reach it, and a test can kill it).

    `with ServerProcess("--seed", "1", "--error-rate", "0.1") as srv: srv.url, srv.stats()`
    """

    def __init__(self, *args: str, port: int = 0):
        import subprocess

        self.args = [sys.executable, __file__, "--port", str(port), *args]
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("fakeserver listening on "):
            self.kill()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.url = line.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1])

    def _call(self, method: str, route: str) -> dict:
        import urllib.request

        req = urllib.request.Request(self.url + route, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def stats(self, bodies: bool = False) -> dict:
        return self._call("GET", "/stats?bodies=1" if bodies else "/stats")

    def release(self) -> None:
        self._call("POST", "/release")

    def hold(self, after: int) -> None:
        self._call("POST", f"/hold?after={after}")

    def kill(self) -> None:
        """Gone at once, like a crashed server: no answer to anything in flight."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.kill()
        self.proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Deterministic fault-injecting OpenAI-compatible test server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    p.add_argument("--port-file", help="also write the port number to this file once listening")
    p.add_argument("--seed", type=int, default=0, help="seeds the fault draws")
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests answered 500")
    p.add_argument("--rate-429", type=float, default=0.0, help="fraction answered 429 with Retry-After")
    p.add_argument("--retry-after", type=float, default=1.0, help="seconds in the Retry-After header")
    p.add_argument("--reset-rate", type=float, default=0.0, help="fraction of connections reset without answer")
    p.add_argument("--stall-rate", type=float, default=0.0, help="fraction that stall --stall-s, then drop")
    p.add_argument("--stall-s", type=float, default=2.0)
    p.add_argument("--invalid-json-rate", type=float, default=0.0, help="fraction answered 200 with broken JSON")
    p.add_argument("--short-rate", type=float, default=0.0, help="fraction answered with fewer choices than n")
    p.add_argument("--single-choice", action="store_true", help="always one choice, like llama.cpp's server")
    p.add_argument("--usage-of-one", action="store_true", help="usage counts one choice of n, like llama.cpp's")
    p.add_argument("--logprobs", choices=["ok", "missing", "error"], default="ok")
    p.add_argument("--no-fim-tokens", action="store_true", help="FIM markers split into characters")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    p.add_argument("--require-header", action="append", default=[], metavar="'Name: value'")
    p.add_argument("--model", action="append", help="model ids for /v1/models (default fake-coder)")
    p.add_argument("--each-fault-first", action="store_true", help="act out each fault kind once, first")
    p.add_argument("--hold-after", type=int, help="answer N requests, then hold the rest until POST /release")
    a = p.parse_args(argv)
    required = dict(h.split(":", 1) for h in a.require_header)
    options = Options(
        seed=a.seed,
        faults=Faults(a.error_rate, a.rate_429, a.reset_rate, a.stall_rate, a.invalid_json_rate, a.short_rate,
                      a.retry_after, a.stall_s),
        single_choice=a.single_choice,
        usage_of_one=a.usage_of_one,
        logprobs=a.logprobs,
        fim_tokens=not a.no_fim_tokens,
        latency_s=a.latency,
        required_headers={k.strip(): v.strip() for k, v in required.items()},
        models=tuple(a.model or ["fake-coder"]),
        each_fault_first=a.each_fault_first,
        hold_after=a.hold_after,
    )  # fmt: skip
    server = FakeServer(options, host=a.host, port=a.port)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    server.start()
    if a.port_file:
        with open(a.port_file, "w") as fh:
            fh.write(f"{server.port}\n")
    print(f"fakeserver listening on http://{a.host}:{server.port}", flush=True)
    while not done.wait(0.2):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
