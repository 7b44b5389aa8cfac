"""Client for OpenAI-compatible `/v1/completions` servers (vLLM, llama.cpp's native and Python servers)."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import urllib3

from evoselfcode.clients.base import Choice, CompletionClient, ScoringClient, collect_choices
from evoselfcode.clients.errors import LLMError, ResponseFormatError, ScoringUnsupported, display_url
from evoselfcode.clients.limits import estimate_tokens
from evoselfcode.clients.retry import RetryWait
from evoselfcode.clients.transport import Transport
from evoselfcode.config import Api

log = logging.getLogger("evoselfcode")
# Error answers that mean "this server cannot return prompt log-probs" (vLLM, llama-cpp-python wordings).
_CANNOT_SCORE = re.compile(r"logprob|logits_all|echo", re.IGNORECASE)


def _format_error(url: str, problem: str) -> ResponseFormatError:
    return ResponseFormatError(
        f"{display_url(url)} answered 200 but {problem}; is api.route an OpenAI-compatible completions route? "
        "(for other servers set api.mode: endpoint with an api.field_map)",
        url=url,
    )


def _as_float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def answer_logprobs(lp: Any) -> tuple[tuple[str, ...], tuple[float | None, ...]]:
    """A choice's (tokens, log-probs): OpenAI's legacy lists, or the `content` list of llama.cpp's native server."""
    if not isinstance(lp, dict):
        return (), ()
    if isinstance(lp.get("content"), list):
        entries = [e for e in lp["content"] if isinstance(e, dict) and isinstance(e.get("token"), str)]
        return tuple(e["token"] for e in entries), tuple(_as_float_or_none(e.get("logprob")) for e in entries)
    tokens = tuple(t for t in lp.get("tokens") or () if isinstance(t, str))
    return tokens, tuple(_as_float_or_none(v) for v in lp.get("token_logprobs") or ())


def parse_choices(data: Any, *, url: str) -> list[Choice]:
    """The `choices` of a completions answer, in `index` order; a malformed answer is a ResponseFormatError."""
    raw = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not raw:
        raise _format_error(url, "without a non-empty 'choices' list")
    if not all(isinstance(c, dict) and isinstance(c.get("text"), str) for c in raw):
        raise _format_error(url, "with a choice that has no 'text' string")
    raw = sorted(raw, key=lambda c: c.get("index") if isinstance(c.get("index"), int) else 0)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    completion_total = int(usage.get("completion_tokens") or 0)
    choices = []
    for i, c in enumerate(raw):
        tokens, token_lps = answer_logprobs(c.get("logprobs"))
        # usage is per request; give each choice its own share so sums over choices stay right
        share = len(tokens) if tokens else completion_total // len(raw) + (completion_total % len(raw) if i == 0 else 0)
        choice_usage = {"prompt_tokens": int(usage.get("prompt_tokens") or 0), "completion_tokens": share}
        choices.append(Choice(c["text"], c.get("finish_reason"), tokens, token_lps, choice_usage))
    return choices


def token_count(data: Any, url: str) -> int:
    """The length of a tokenize endpoint's `tokens` list (llama.cpp's, llama-cpp-python's, vLLM's)."""
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(tokens, list):
        raise ResponseFormatError(f"{display_url(url)} answered a tokenize request without a 'tokens' list", url=url)
    return len(tokens)


def shares_one_count(data: Any) -> bool:
    """Whether the answer's usage counts one choice of several: llama.cpp's server (known by its `timings`)
    reports one choice's tokens for `n` > 1 (ggml-org/llama.cpp#27318), so splitting it would undercount n-fold."""
    return isinstance(data, dict) and isinstance(data.get("timings"), dict) and len(data.get("choices") or ()) > 1


def score_from_echo(data: Any, *, url: str, full: str, start: int) -> list[float]:
    """Log-probs of the echoed tokens that cover `full[start:]`; drops tokens generated after the prompt."""
    choice = (data.get("choices") or [None])[0] if isinstance(data, dict) else None
    lp = choice.get("logprobs") if isinstance(choice, dict) else None
    if not isinstance(lp, dict) or not lp.get("tokens") or not isinstance(lp.get("token_logprobs"), list):
        raise ScoringUnsupported(
            f"{display_url(url)} returned no token log-probs for an echo request; it cannot score text: "
            "set scoring.enabled: false (or serve the model with vLLM)",
            url=url,
        )
    tokens = [t if isinstance(t, str) else "" for t in lp["tokens"]]
    offsets = lp.get("text_offset")
    if not isinstance(offsets, list) or len(offsets) != len(tokens):
        offsets, pos = [], 0
        for tok in tokens:
            offsets.append(pos)
            pos += len(tok)
    end = len(full)
    if not any(o < end for o in offsets):
        raise ScoringUnsupported(
            f"{display_url(url)} did not echo the prompt's tokens; it cannot score text: set scoring.enabled: false",
            url=url,
        )
    return [
        float(value)
        for tok, off, value in zip(tokens, offsets, lp["token_logprobs"], strict=False)
        if off < end and off + max(len(tok), 1) > start and isinstance(value, int | float)
    ]


class OpenAIClient(CompletionClient, ScoringClient):
    def __init__(
        self,
        api: Api,
        *,
        base_url: str,
        concurrency: int,
        pool: urllib3.PoolManager | None = None,
        transport: Transport | None = None,
    ):
        self.api = api
        self.transport = transport or Transport(api, base_url, concurrency=concurrency, pool=pool)
        self.url = self.transport.base_url + api.route
        self._unscorable: str | None = None
        self._uncounted = False  # the server has no /tokenize to count choices with (warned once)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.transport.close()

    def stats(self) -> dict:
        return self.transport.stats.snapshot()

    def request(self, body: dict) -> tuple[Any, float]:
        """POST one raw body to the completions route, with retries; returns (json, latency). For probes."""
        prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else ""
        cost = estimate_tokens(prompt, int(body.get("max_tokens") or 0), int(body.get("n") or 1))
        return self.transport.post(self.api.route, body, lambda data: data, cost_tokens=cost)

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float,
        top_p: float,
        n: int = 1,
        stop: list[str] | None = None,
        logprobs: int | bool | None = None,
        seed: int | None = None,
        extra: dict | None = None,
        retry_wait: RetryWait = contextlib.nullcontext,
    ) -> list[Choice]:
        base: dict[str, Any] = {
            "model": self.api.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
        }
        if stop:
            base["stop"] = list(stop)
        if logprobs is not None and logprobs is not False:
            base["logprobs"] = 1 if logprobs is True else int(logprobs)

        def ask(k: int, k_seed: int | None) -> list[Choice]:
            body = dict(base, n=k)
            if k_seed is not None:
                body["seed"] = k_seed
            body.update(extra or {})
            (choices, one_count), latency = self.transport.post(
                self.api.route,
                body,
                lambda data: (parse_choices(data, url=self.url), shares_one_count(data)),
                cost_tokens=estimate_tokens(prompt, max_tokens, k),
                retry_wait=retry_wait,
            )
            if one_count:
                choices = [self._counted(c) for c in choices]
            return [replace(c, latency=latency) for c in choices]

        return collect_choices(n, seed, ask)

    def tokens_at(self, route: str, body: dict) -> int:
        """How many tokens the tokenize endpoint `route` counts for `body`, asked at the server's root, beside /v1
        (where llama.cpp, vLLM and llama-cpp-python have it, also when api.base_url ends in /v1); one try, outside
        the breaker and the retries: an LLMError says it cannot count now (retryable) or at all."""
        path = urlsplit(self.transport.base_url).path.removesuffix("/v1") + route
        url = urlunsplit(urlsplit(self.url)._replace(path=path))
        return self.transport.side_post(path, body, lambda data: token_count(data, url))

    def count_tokens(self, text: str) -> int:
        """`text`'s tokens by llama.cpp's `/tokenize` (`tokens_at`)."""
        return self.tokens_at("/tokenize", {"content": text})

    def _counted(self, choice: Choice) -> Choice:
        """`choice` with its own completion tokens (see `shares_one_count`); as it was when they cannot be counted."""
        if choice.tokens or not choice.text or self._uncounted:
            return choice
        try:
            count = self.count_tokens(choice.text)
        except LLMError as err:
            if not err.retryable:  # no /tokenize on this server: stop asking
                with self._lock:
                    first, self._uncounted = not self._uncounted, True
                if first:
                    log.warning("cannot count tokens per choice (%s): completion tokens are undercounted", err)
            return choice
        return replace(choice, usage={**choice.usage, "completion_tokens": count})

    def token_logprobs(
        self, text: str, *, prompt: str = "", retry_wait: RetryWait = contextlib.nullcontext
    ) -> list[float]:
        if self._unscorable:
            raise ScoringUnsupported(self._unscorable, url=self.url)
        if not text:
            return []
        full = prompt + text
        body = {
            "model": self.api.model,
            "prompt": full,
            # max_tokens 1, not 0: llama-cpp-python reads 0 as "until the context is full"; the extra token is dropped
            "max_tokens": 1,
            "temperature": 0.0,
            "echo": True,
            "logprobs": 1,
        }
        try:
            scores, _ = self.transport.post(
                self.api.route,
                body,
                lambda data: score_from_echo(data, url=self.url, full=full, start=len(prompt)),
                cost_tokens=estimate_tokens(full, 1),
                classify=self._classify_scoring_error,
                retry_wait=retry_wait,
            )
        except ScoringUnsupported as err:
            with self._lock:
                self._unscorable = str(err)
            raise
        return scores

    def _classify_scoring_error(self, status: int, body: str) -> LLMError | None:
        if 400 <= status < 600 and status != 429 and _CANNOT_SCORE.search(body):
            return ScoringUnsupported(
                f"{display_url(self.url)} refused an echo+logprobs request ({status}: {body[:200]}); "
                "it cannot score text: set scoring.enabled: false",
                url=self.url,
            )
        return None
