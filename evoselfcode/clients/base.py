"""The client interfaces every backend implements, and the one result type they all return."""

from __future__ import annotations

import contextlib
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from evoselfcode.clients.retry import RetryWait

# A large prime: seeds derived for fanned-out choices never collide with neighbouring base seeds.
SEED_STRIDE = 1_000_003


# Half a character: JSON can escape one ("\ud800"), UTF-8 cannot hold it, so no file could take the answer.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Choice:
    """One completion choice, the same shape for every backend; half a character in it becomes U+FFFD."""

    text: str
    finish_reason: str | None = None
    tokens: tuple[str, ...] = ()
    token_logprobs: tuple[float | None, ...] = ()
    usage: dict[str, int] = field(default_factory=dict)
    latency: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", _LONE_SURROGATE.sub("\ufffd", self.text))
        object.__setattr__(self, "tokens", tuple(_LONE_SURROGATE.sub("\ufffd", t) for t in self.tokens))

    @property
    def completion_tokens(self) -> int | None:
        """How many tokens the choice holds: its tokens when the server listed them, else its usage; None if neither."""
        return len(self.tokens) or self.usage.get("completion_tokens")


class CompletionClient(ABC):
    @abstractmethod
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
        """Exactly `n` choices for `prompt`; raises an `LLMError` subclass when it cannot.

        Every sleep before a retry runs inside `retry_wait()` (the request holds no in-flight slot meanwhile).
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def stats(self) -> dict:
        """Counters (requests, retries by cause, failures, tokens, latency percentiles); empty if not kept."""
        return {}


class ScoringClient(ABC):
    @abstractmethod
    def token_logprobs(
        self, text: str, *, prompt: str = "", retry_wait: RetryWait = contextlib.nullcontext
    ) -> list[float]:
        """Log-probs of the tokens of `text`, given `prompt` before it (not scored); sleeps inside `retry_wait()`."""

    def perplexity(self, text: str, *, prompt: str = "") -> float:
        lps = self.token_logprobs(text, prompt=prompt)
        return math.exp(-sum(lps) / len(lps)) if lps else math.inf


def derive_seed(seed: int | None, index: int) -> int | None:
    """Seed for the `index`-th choice when choices are asked one request at a time; index 0 keeps `seed`."""
    return None if seed is None else (seed + SEED_STRIDE * index) % 2**32


def collect_choices(n: int, seed: int | None, request: Callable[[int, int | None], list[Choice]]) -> list[Choice]:
    """Exactly `n` choices from `request(k, seed)`, which may return fewer than the `k` asked for
    (llama.cpp's server always returns one): the missing ones are asked again with derived seeds."""
    choices: list[Choice] = []
    while len(choices) < n:
        got = request(n - len(choices), derive_seed(seed, len(choices)))
        if not got:
            raise ValueError("request returned no choices")  # parsers reject empty choice lists first
        choices.extend(got[: n - len(choices)])
    return choices
