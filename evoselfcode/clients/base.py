"""The client interfaces from the design card, and the one result type every backend returns."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Choice:
    """One completion choice, the same shape for every backend."""

    text: str
    finish_reason: str | None = None
    tokens: tuple[str, ...] = ()
    token_logprobs: tuple[float | None, ...] = ()
    usage: dict[str, int] = field(default_factory=dict)
    latency: float = 0.0


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
    ) -> list[Choice]:
        """Exactly `n` choices for `prompt`; raises an `LLMError` subclass when it cannot."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class ScoringClient(ABC):
    @abstractmethod
    def token_logprobs(self, text: str, *, prompt: str = "") -> list[float]:
        """Log-probs of the tokens of `text`, given `prompt` before it (not scored)."""

    def perplexity(self, text: str, *, prompt: str = "") -> float:
        lps = self.token_logprobs(text, prompt=prompt)
        return math.exp(-sum(lps) / len(lps)) if lps else math.inf
