"""The field-map endpoint client (TGI, vLLM's legacy /generate, custom maps), the probe, and the fake server CLI."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from fakeserver import FakeServer, Options

from evoselfcode.clients import make_client, make_scorer
from evoselfcode.clients.endpoint import EndpointClient, get_path, resolve_field_map
from evoselfcode.clients.errors import ResponseFormatError, ScoringUnsupported
from evoselfcode.clients.probe import format_table, probe
from evoselfcode.config import Api, ConfigError
from evoselfcode.datagen.pipeline.store import AnswerStore

CODE_ARGS = {"max_tokens": 64, "temperature": 0.2, "top_p": 1.0, "stop": ["\ndef ", "\nclass "]}


@pytest.fixture
def server():
    with FakeServer(Options()) as srv:
        yield srv


def endpoint_api(field_map, **extra) -> Api:
    return Api(mode="endpoint", field_map=field_map, model="fake-coder", max_retries=1,
               backoff={"base": 0.01, "max": 0.02}, **extra)  # fmt: skip


def test_tgi_preset_omits_top_p_1_fans_out_and_strips_stop(server):
    client = make_client(endpoint_api("tgi"), base_url=server.url, concurrency=2)
    assert isinstance(client, EndpointClient)
    choices = client.complete("def f(x):\n", n=3, seed=5, **CODE_ARGS)
    assert len(choices) == 3 and server.stats()["requests"] == 3
    bodies = [json.loads(b) for b in server.received]
    assert all("top_p" not in b["parameters"] and b["parameters"]["details"] for b in bodies)
    assert sorted(b["parameters"]["seed"] for b in bodies) == [5, 1_000_008, 2_000_011]
    for choice in choices:
        assert not any(choice.text.endswith(s) for s in CODE_ARGS["stop"])
        assert len(choice.tokens) == len(choice.token_logprobs) > 0
        assert choice.finish_reason in ("stop", "length")


def test_half_a_character_in_an_answer_becomes_a_replacement_character(server, tmp_path):
    # as in the OpenAI client (test_clients_openai): else the answer store cannot take the answer, on every resume
    text = "def f():\n    return '\udfff'\n"
    prompt = f"[[code:{base64.b64encode(text.encode('utf-8', 'surrogatepass')).decode()}]]\ndef f"
    client = make_client(endpoint_api("tgi"), base_url=server.url, concurrency=1)
    (choice,) = client.complete(prompt, n=1, seed=1, **{**CODE_ARGS, "stop": []})
    assert choice.text == "def f():\n    return '\ufffd'\n" and "\udfff" not in "".join(choice.tokens)
    AnswerStore(tmp_path).put("key", [choice])
    assert AnswerStore(tmp_path).get("key")[0].text == choice.text


def test_a_retry_sleeps_inside_the_callers_retry_wait(server):
    client, waits = make_client(endpoint_api("tgi"), base_url=server.url, concurrency=2), []

    @contextlib.contextmanager
    def retry_wait():
        waits.append(server.stats()["requests"])
        yield

    assert client.complete("[[fail:1:503]] def f(x):\n", seed=5, retry_wait=retry_wait, **CODE_ARGS)
    assert waits == [1] and server.stats()["requests"] == 2


def test_tgi_greedy_sends_do_sample_false_without_temperature(server):
    client = make_client(endpoint_api("tgi"), base_url=server.url, concurrency=2)
    client.complete("def g():\n", seed=1, **{**CODE_ARGS, "temperature": 0.0, "top_p": 0.9})
    params = json.loads(next(iter(server.received)))["parameters"]
    assert params["do_sample"] is False and "temperature" not in params and params["top_p"] == 0.9


def test_vllm_generate_preset_strips_the_echoed_prompt_and_honours_n(server):
    client = make_client(endpoint_api("vllm-generate"), base_url=server.url, concurrency=2)
    prompt = "def h(values):\n"
    choices = client.complete(prompt, n=2, seed=9, **CODE_ARGS)
    assert len(choices) == 2 and server.stats()["requests"] == 1
    assert all(not c.text.startswith(prompt) and c.text for c in choices)


def test_custom_field_map_and_its_errors(server):
    custom = {"preset": "vllm-generate", "text": "answer.text"}  # a wrong response path
    client = make_client(endpoint_api(custom), base_url=server.url, concurrency=2)
    with pytest.raises(ResponseFormatError, match="api.field_map.text"):
        client.complete("def k():\n", seed=1, **CODE_ARGS)
    with pytest.raises(ConfigError, match="api.field_map.promt: unknown key"):
        resolve_field_map({"promt": "inputs", "text": "generated_text"})
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve_field_map("tgl")
    assert get_path({"d": {"t": [{"x": 1}, {"x": 2}]}}, "d.t[].x") == [1, 2]
    with pytest.raises(ScoringUnsupported, match="scoring.enabled: false"):
        make_scorer(endpoint_api("tgi"), base_url=server.url, concurrency=1)


def test_probe_reports_capabilities():
    with FakeServer(Options()) as full:
        rows = {cap: (result, note) for cap, result, note in probe(Api(model="fake-coder"), full.url)}
    assert rows["models"][0] == "ok" and rows["n"][0] == "yes" and rows["seed"][0] == "deterministic"
    assert rows["logprobs"][0] == "yes" and rows["echo"][0] == "yes" and rows["fim tokens"][0] == "yes"
    assert rows["usage"][0] == "yes"
    like_llama = Options(single_choice=True, fim_tokens=False, models=("gemma",))
    with FakeServer(like_llama) as small:
        rows = {cap: (result, note) for cap, result, note in probe(Api(model="fake-coder"), small.url)}
    assert rows["models"][0] == "warning" and rows["n"][0] == "no" and rows["usage"][0] == "per choice"
    assert rows["fim tokens"][0] == "warning" and "emulated" in rows["fim tokens"][1]
    table = format_table([("models", "ok", "serves x"), ("n", "no", "fan out")])
    assert table.splitlines()[0].split() == ["capability", "result", "note"] and "fan out" in table


@pytest.mark.parametrize(("tokenize", "says"), [("ok", "/tokenize"), ("missing", "too low")])
def test_probe_tells_a_usage_that_counts_one_choice_of_n(tokenize, says):
    with FakeServer(Options(usage_of_one=True, tokenize=tokenize)) as server:
        rows = {cap: (result, note) for cap, result, note in probe(Api(model="fake-coder"), server.url)}
    assert rows["usage"][0] == "one choice" and says in rows["usage"][1]


def test_probe_asks_tokenize_at_the_root_under_a_v1_base_url():
    with FakeServer(Options(usage_of_one=True)) as server:  # llama.cpp's /tokenize, at the root only
        rows = {
            cap: (r, note) for cap, r, note in probe(Api(model="fake-coder", route="/completions"), f"{server.url}/v1")
        }
    assert rows["completion"][0] == "ok"
    assert rows["fim tokens"][0] == "yes" and "/tokenize" in rows["fim tokens"][1]  # not echo, after /v1/tokenize's 404


def test_probe_of_a_down_server_reports_errors_without_raising():
    rows = probe(Api(model="m", max_retries=0, timeout={"connect": 0.5, "read": 0.5}), "http://127.0.0.1:9")
    assert rows[0][1] == "error" and "127.0.0.1:9" in rows[0][2]
    assert rows[1][1] == "error" and all(r[1] == "skipped" for r in rows[2:])


def test_fakeserver_runs_as_a_process(tmp_path):
    script = Path(__file__).with_name("fakeserver.py")
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--seed", "3", "--error-rate", "0.3", "--single-choice",
         "--port-file", str(port_file)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("fakeserver listening on http://127.0.0.1:")
        url = line.split()[-1]
        assert url.endswith(f":{port_file.read_text().strip()}")
        api = Api(model="fake-coder", max_retries=8, backoff={"base": 0.01, "max": 0.02})
        client = make_client(api, base_url=url, concurrency=4)
        for i in range(10):
            assert len(client.complete(f"def t{i}", n=2, seed=i, max_tokens=8, temperature=0.4, top_p=0.9)) == 2
        served = requests.get(url + "/stats", timeout=5).json()
        assert served["successes"] == 20 and served["max_successes_per_body"] == 1
        assert served["faults"].get("server_error", 0) == client.stats()["retries_total"] > 0
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
