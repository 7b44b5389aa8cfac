"""Ask a server what it supports (`evoselfcode probe`): models, `n`, seeds, usage, logprobs, echo, FIM tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from evoselfcode.clients.errors import LLMError
from evoselfcode.clients.openai import answer_logprobs, shares_one_count
from evoselfcode.config import Api, CircuitBreaker

Row = tuple[str, str, str]
QWEN_FIM_TOKENS = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
_PROMPT = "def add(a, b):\n    return"


def probe(api: Api, base_url: str, *, fim_tokens: Sequence[str] | None = QWEN_FIM_TOKENS) -> list[Row]:
    """One row per capability: (capability, result, note). Never raises for a server problem.

    `fim_tokens`: the configured FIM markers (None: `namegen.fim_preset: emulated`, nothing to check)."""
    # a probe should answer fast and must not trip the breaker that real jobs share
    quick = {"max_retries": min(api.max_retries, 1), "circuit_breaker": CircuitBreaker(enabled=False)}
    api = api.model_copy(update=quick)
    if api.mode == "endpoint":
        return _probe_endpoint(api, base_url)
    from evoselfcode.clients.openai import OpenAIClient

    client = OpenAIClient(api, base_url=base_url, concurrency=2)
    try:
        rows = [_models(client)]
        completion = _check("completion", lambda: _complete(client, max_tokens=8, temperature=0.0))
        rows.append(completion)
        if completion[1] != "ok":
            skipped = ("n", "seed", "usage", "logprobs", "echo", "fim")
            return rows + [(cap, "skipped", "no completion answer") for cap in skipped]
        rows.append(_check("n", lambda: _n(client)))
        rows.append(_check("seed", lambda: _seed(client)))
        rows.append(_check("usage", lambda: _usage(client)))
        rows.append(_check("logprobs", lambda: _logprobs(client)))
        rows.append(_check("echo", lambda: _echo(client)))
        if fim_tokens is None:
            rows.append(("fim tokens", "n/a", "namegen.fim_preset: emulated: FIM prompts are plain text"))
        else:
            rows.append(_check("fim tokens", lambda: _fim(client, fim_tokens)))
        return rows
    finally:
        client.close()


def format_table(rows: Sequence[Row]) -> str:
    header = ("capability", "result", "note")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(2)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() for r in [header, *rows]]
    lines.insert(1, f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * 4}")
    return "\n".join(lines)


def _check(capability: str, run: Callable[[], tuple[str, str]]) -> Row:
    try:
        result, note = run()
    except LLMError as err:
        return capability, "error", str(err)
    return capability, result, note


def _complete(client, **fields: Any) -> tuple[str, str]:
    data, latency = client.request({"model": client.api.model, "prompt": _PROMPT, **fields})
    text = data["choices"][0]["text"] if data.get("choices") else ""
    return "ok", f"{latency * 1000:.0f} ms, answered {text[:30]!r}"


def _models(client) -> Row:
    def run() -> tuple[str, str]:
        data, _ = client.transport.get("/v1/models", lambda d: d)
        ids = [m.get("id") for m in data.get("data", []) if isinstance(m, dict)] if isinstance(data, dict) else []
        if client.api.model in ids:
            return "ok", f"serves {', '.join(ids)}"
        return "warning", f"api.model {client.api.model!r} is not listed; served: {', '.join(map(str, ids)) or 'none'}"

    return _check("models", run)


def _choices(client, **fields: Any) -> list[dict]:
    data, _ = client.request({"model": client.api.model, "prompt": _PROMPT, "max_tokens": 8, **fields})
    return data.get("choices") or []


def _n(client) -> tuple[str, str]:
    got = len(_choices(client, n=2, temperature=1.0, seed=7))
    if got == 2:
        return "yes", "n=2 gave 2 choices"
    return "no", f"n=2 gave {got} choice(s); the client asks again for the missing ones (with derived seeds)"


def _seed(client) -> tuple[str, str]:
    first = [c.get("text") for c in _choices(client, temperature=1.0, seed=1234, max_tokens=16)]
    second = [c.get("text") for c in _choices(client, temperature=1.0, seed=1234, max_tokens=16)]
    if first == second:
        return "deterministic", "same seed twice gave the same text"
    return "not deterministic", "same seed twice gave different text: reruns will not reproduce samples"


def _usage(client) -> tuple[str, str]:
    """Whether `usage` counts every choice of an answer: two choices that run to max_tokens make 2 x 4 tokens."""
    data, _ = client.request({"model": client.api.model, "prompt": _PROMPT, "max_tokens": 4, "temperature": 1.0,
                              "n": 2, "seed": 3, "ignore_eos": True})  # fmt: skip
    choices = data.get("choices") or []
    if len(choices) < 2:
        return "per choice", "one choice per answer: each answer's usage is its choice's"
    if any(c.get("finish_reason") != "length" for c in choices):
        return "unknown", "a choice stopped before max_tokens"
    used = (data.get("usage") or {}).get("completion_tokens")
    if not isinstance(used, int):
        return "no", "no usage in the answer: completion tokens are not counted"
    if used >= 8:
        return "yes", f"{used} tokens for 2 choices of 4: usage counts every choice"
    if shares_one_count(data) and _tokenizes(client):
        return "one choice", f"{used} tokens for 2 choices of 4 (llama.cpp#27318): the client counts each by /tokenize"
    return "one choice", f"{used} tokens for 2 choices of 4: completion tokens will be reported too low"


def _tokenizes(client) -> bool:
    """Whether the server answers the `/tokenize` request the client counts llama.cpp's choices with."""
    try:
        client.count_tokens("x")
    except LLMError:
        return False
    return True


def _logprobs(client) -> tuple[str, str]:
    choices = _choices(client, temperature=0.0, logprobs=1)
    tokens, values = answer_logprobs(choices[0].get("logprobs")) if choices else ((), ())
    if tokens and values:
        return "yes", f"{len(tokens)} tokens with log-probs"
    return "no", "no logprobs in the answer"


def _echoed_tokens(client, prompt: str) -> list[str] | None:
    data, _ = client.request(
        {"model": client.api.model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1}
    )
    choice = (data.get("choices") or [{}])[0]
    lp = choice.get("logprobs") if isinstance(choice, dict) else None
    if not isinstance(lp, dict) or not lp.get("tokens"):
        return None
    tokens = lp["tokens"]
    offsets = lp.get("text_offset") if isinstance(lp.get("text_offset"), list) else None
    if offsets is None or len(offsets) != len(tokens):
        offsets = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
    # keep the prompt's own tokens: drop the generated one and empty ones such as a BOS marker
    return [t for t, o in zip(tokens, offsets, strict=True) if o < len(prompt) and t]


def _echo(client) -> tuple[str, str]:
    tokens = _echoed_tokens(client, _PROMPT)
    if tokens is None:
        return "no", "echo + logprobs gave no prompt log-probs: set scoring.enabled: false"
    return "yes", f"prompt log-probs returned ({len(tokens)} tokens): scoring works"


# (route, body) of the tokenize endpoints we know: llama-cpp-python's, then vLLM's and llama.cpp's `/tokenize`
_TOKENIZE = (
    ("/extras/tokenize", lambda model, text: {"model": model, "input": text}),
    ("/tokenize", lambda model, text: {"model": model, "prompt": text, "content": text, "add_special_tokens": False}),
)


def _tokenized_counts(client, texts: Sequence[str]) -> tuple[dict[str, int], str] | None:
    """Token counts of `texts` from the server's tokenize endpoint, less its count for "" (a BOS); None: none."""
    for route, body in _TOKENIZE:
        try:
            counts = {text: client.tokens_at(route, body(client.api.model, text)) for text in ("", *texts)}
        except LLMError:
            continue
        return {t: counts[t] - counts[""] for t in texts}, route
    return None


def _fim(client, markers: Sequence[str]) -> tuple[str, str]:
    found = _tokenized_counts(client, markers)
    if found is not None:
        counts, how = found
    else:
        counts, how = {}, "echo log-probs"
        for marker in markers:
            tokens = _echoed_tokens(client, marker)
            if tokens is None:
                return "unknown", "no tokenize endpoint, and echo + logprobs are needed to count tokens"
            counts[marker] = 1 if marker in tokens else len(tokens)
    split = {m: c for m, c in counts.items() if c != 1}
    if not split:
        return "yes", f"{', '.join(markers)} are single special tokens ({how}): FIM prompts reach the model as such"
    detail = ", ".join(f"{m} -> {c} tokens" for m, c in split.items())
    return "warning", (
        f"{detail} ({how}): the server reads the FIM markers as text; set namegen.fim_preset (or namegen.fim) "
        "to the model's own tokens, or namegen.fim_preset: emulated for a model without them"
    )


def _probe_endpoint(api: Api, base_url: str) -> list[Row]:
    from evoselfcode.clients.endpoint import EndpointClient

    client = EndpointClient(api, base_url=base_url, concurrency=2)
    try:

        def complete(**kw: Any) -> list:
            return client.complete(_PROMPT, max_tokens=16, temperature=1.0, top_p=0.9, **kw)

        def run_completion() -> tuple[str, str]:
            choice = complete(seed=1)[0]
            return "ok", f"{choice.latency * 1000:.0f} ms, answered {choice.text[:30]!r}"

        def run_seed() -> tuple[str, str]:
            same = [c.text for c in complete(seed=1234)] == [c.text for c in complete(seed=1234)]
            return ("deterministic", "same seed twice, same text") if same else ("not deterministic", "")

        rows = [("models", "n/a", "api.mode: endpoint"), _check("completion", run_completion)]
        if rows[-1][1] != "ok":
            return rows
        native_n = bool(client.fields.get("n"))
        how = "field_map has n" if native_n else "one request per choice"
        rows.append(("n", "yes" if native_n else "fan-out", how))
        rows.append(_check("seed", run_seed))
        rows += [(cap, "n/a", "api.mode: endpoint") for cap in ("logprobs", "echo", "fim tokens")]
        return rows
    finally:
        client.close()
