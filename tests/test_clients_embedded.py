"""The OpenAI client and the probe against the real embedded server (llama.cpp's native one, as a run starts it)."""

from __future__ import annotations

import pytest

from evoselfcode.clients import make_client
from evoselfcode.clients.probe import format_table, probe
from evoselfcode.config import Api, NameGen
from evoselfcode.datagen.prompts import name_prompt

pytestmark = pytest.mark.embedded

PROMPT = "This is an algorithm function.\n\n# Return the largest value in a list of numbers.\ndef"


@pytest.fixture(scope="module")
def server(embedded_url):
    api = Api(base_url=embedded_url, model="qwen2.5-coder-0.5b", max_retries=1)
    client = make_client(api, base_url=embedded_url, concurrency=2)
    try:
        yield api, embedded_url, client
    finally:
        client.close()


def test_n_choices_come_back(server):
    _, _, client = server
    choices = client.complete(PROMPT, max_tokens=8, temperature=0.9, top_p=0.95, n=3, stop=["\n"], seed=5)
    assert len(choices) == 3
    assert all("\n" not in c.text for c in choices)  # the stop sequence ends each one
    assert all(c.finish_reason in ("stop", "length") for c in choices)


def test_each_of_n_choices_counts_its_own_tokens(server):
    # llama.cpp's usage counts one choice of n (ggml-org/llama.cpp#27318); the client counts each by /tokenize
    _, _, client = server
    args = dict(max_tokens=8, temperature=0.9, top_p=0.95, n=3, seed=5)
    choices = client.complete(PROMPT, **args, extra={"ignore_eos": True})
    assert [c.finish_reason for c in choices] == ["length"] * 3
    assert all(7 <= c.completion_tokens <= 8 for c in choices)  # read back from the text: a merge may make one fewer


def test_the_same_seed_gives_the_same_text(server):
    _, _, client = server
    args = dict(max_tokens=12, temperature=0.8, top_p=0.95, stop=["("], seed=11)
    assert client.complete(PROMPT, **args)[0].text == client.complete(PROMPT, **args)[0].text


def test_log_probs_come_with_the_tokens(server):
    _, _, client = server
    (choice,) = client.complete(PROMPT, max_tokens=6, temperature=0.0, top_p=1.0, logprobs=1, seed=1)
    assert choice.tokens and len(choice.tokens) == len(choice.token_logprobs)
    assert all(lp is None or lp <= 0 for lp in choice.token_logprobs)


def test_the_probe_tells_what_llama_cpp_supports(server):
    api, url, _ = server
    found = probe(api, url)
    rows = {cap: (result, note) for cap, result, note in found}
    table = format_table(found)
    assert "capability" in table.splitlines()[0]
    assert {"models", "completion", "n", "seed", "logprobs", "echo"} <= rows.keys()
    assert rows["completion"][0].lower().startswith(("ok", "yes"))
    assert rows["models"][0] == "ok"
    assert rows["n"][0] == "yes" and rows["seed"][0] == "deterministic" and rows["logprobs"][0] == "yes"
    assert rows["usage"][0] == "one choice" and "/tokenize" in rows["usage"][1]  # ggml-org/llama.cpp#27318
    assert rows["echo"][0] == "no"  # no prompt log-probs: a scoring run starts llama-cpp-python's server instead
    assert rows["fim tokens"][0] == "yes" and "/tokenize" in rows["fim tokens"][1]
    text_markers = {cap: r for cap, r, _ in probe(api, url, fim_tokens=("<fim_prefix>", "<|fim_middle|>"))}
    assert text_markers["fim tokens"] == "warning"  # StarCoder's markers are text to Qwen's tokenizer


def test_the_probe_finds_tokenize_at_the_root_when_the_base_url_ends_in_v1(server):
    api, url, _ = server
    rows = {cap: (result, note) for cap, result, note in probe(api.model_copy(update={"route": "/completions"}),
                                                                 f"{url}/v1")}  # fmt: skip
    assert rows["completion"][0] == "ok"
    assert rows["fim tokens"][0] == "yes" and "/tokenize" in rows["fim tokens"][1]  # not /v1/tokenize: a 404


def test_the_fim_prompt_reaches_the_model_with_its_markers_as_single_tokens(server):
    api, _, client = server
    prompt = name_prompt("FIM", "Return the largest value in a list of numbers.", NameGen())
    plain = prompt
    for marker in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"):
        assert prompt.count(marker) == 1
        plain = plain.replace(marker, "")

    def prompt_tokens(text: str) -> int:
        data, _ = client.request({"model": api.model, "prompt": text, "max_tokens": 1, "temperature": 0.0})
        return data["usage"]["prompt_tokens"]

    # what the model was fed: the three markers add exactly three tokens, one each
    assert prompt_tokens(prompt) - prompt_tokens(plain) == 3
    # the measurement (Qwen adds no BOS): <|fim_prefix|> def ' ' <|fim_suffix|> ():\n <|fim_middle|>
    assert prompt_tokens("<|fim_prefix|>def <|fim_suffix|>():\n<|fim_middle|>") == 6
