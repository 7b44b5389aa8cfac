"""Clients for the model server: pick one with `make_client` / `make_scorer` from the `api` config section."""

from __future__ import annotations

from evoselfcode.clients.base import Choice, CompletionClient, ScoringClient
from evoselfcode.clients.errors import LLMError, ScoringUnsupported
from evoselfcode.config import Api

__all__ = ["Choice", "CompletionClient", "LLMError", "ScoringClient", "make_client", "make_scorer"]


def make_client(api: Api, *, base_url: str, concurrency: int) -> CompletionClient:
    """A completion client for `api.mode`; `base_url` is already resolved (never the literal 'embedded')."""
    if api.mode == "endpoint":
        from evoselfcode.clients.endpoint import EndpointClient

        return EndpointClient(api, base_url=base_url, concurrency=concurrency)
    from evoselfcode.clients.openai import OpenAIClient

    return OpenAIClient(api, base_url=base_url, concurrency=concurrency)


def make_scorer(api: Api, *, base_url: str, concurrency: int) -> ScoringClient:
    """A client that returns the model's log-probs of given text (echo + logprobs); OpenAI mode only."""
    if api.mode != "openai":
        raise ScoringUnsupported(
            f"scoring needs an OpenAI-compatible completions server with echo + logprobs, but api.mode is "
            f"{api.mode!r} ({base_url}); set scoring.enabled: false",
            url=base_url,
        )
    from evoselfcode.clients.openai import OpenAIClient

    return OpenAIClient(api, base_url=base_url, concurrency=concurrency)
