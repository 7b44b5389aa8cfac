"""Scoring against the real embedded servers: llama-cpp-python's log-probs tell natural code from shuffled code;
llama.cpp's native server, which returns no prompt log-probs, is refused with a clear error."""

from __future__ import annotations

import math
import random

import pytest

from evoselfcode.clients import make_scorer
from evoselfcode.clients.errors import ScoringUnsupported
from evoselfcode.config import Api

pytestmark = pytest.mark.embedded

PROMPT = "This is an algorithm function.\n\n# Compute the greatest common divisor of two integers.\ndef gcd("
TEXT = "a, b):\n    while b:\n        a, b = b, a % b\n    return a\n"


@pytest.fixture(scope="module")
def scorer(echo_url):
    client = make_scorer(Api(base_url=echo_url, model="qwen2.5-coder-0.5b", max_retries=1), base_url=echo_url,
                         concurrency=1)  # fmt: skip
    try:
        yield client
    finally:
        client.close()


def shuffled(text: str, seed: int = 0) -> str:
    words = text.split()
    random.Random(seed).shuffle(words)
    return " ".join(words) + "\n"


def test_a_natural_function_is_less_perplexing_than_its_words_shuffled(scorer):
    natural = scorer.token_logprobs(TEXT, prompt=PROMPT)
    mixed = scorer.token_logprobs(shuffled(TEXT), prompt=PROMPT)
    assert natural and mixed and all(math.isfinite(v) and v <= 0 for v in natural + mixed)
    ppl = math.exp(-sum(natural) / len(natural))
    assert 1 < ppl < math.exp(-sum(mixed) / len(mixed))


def test_the_native_server_cannot_score_and_says_what_to_do(embedded_url):
    client = make_scorer(Api(base_url=embedded_url, model="qwen2.5-coder-0.5b", max_retries=1), base_url=embedded_url,
                         concurrency=1)  # fmt: skip
    try:
        with pytest.raises(ScoringUnsupported, match="scoring.enabled: false"):
            client.token_logprobs(TEXT, prompt=PROMPT)
    finally:
        client.close()
