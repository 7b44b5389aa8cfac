"""The answer store: request keys, one checked file per answer, pruning, and the server's identity."""

import dataclasses
import os
import time
from pathlib import Path

import pytest
from fakeserver import FakeServer, Options

from evoselfcode.clients import make_client
from evoselfcode.clients.base import Choice
from evoselfcode.config import load_config
from evoselfcode.datagen.pipeline.store import TMP_SUFFIX, AnswerStore, _checksum, request_key, server_identity
from evoselfcode.datagen.writers import write_jsonl

PARAMS = {"max_tokens": 8, "temperature": 0.2, "top_p": 0.9, "n": 2, "seed": 1, "stop": ["\n"]}


def choices(text: str = "x") -> list[Choice]:
    return [
        Choice(text=f"{text}0", finish_reason="stop", tokens=("a", "b"), token_logprobs=(None, -0.5),
               usage={"completion_tokens": 2}, latency=0.25),
        Choice(text=f"{text}1 ✓", finish_reason="length"),
    ]  # fmt: skip


def key(**changes) -> str:
    args = {"server": "s", "route": "completions", "prompt": "def f", "params": PARAMS, **changes}
    return request_key(args["server"], args["route"], args["prompt"], args["params"])


def test_an_answer_comes_back_as_it_was_put(tmp_path):
    store, k = AnswerStore(tmp_path), key()
    assert store.get(k) is None
    store.put(k, choices())
    assert AnswerStore(tmp_path).get(k) == choices()  # another process's store reads it too
    assert store.path(k) == tmp_path / "answers" / k[:2] / k[2:4] / f"{k}.json"
    assert list(store.keys()) == [k]


def test_a_store_under_the_home_folder_is_there_not_in_a_folder_named_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    store, k = AnswerStore("~/answers-store"), key()
    store.put(k, choices())
    assert AnswerStore(tmp_path / "answers-store").get(k) == choices()
    assert not (tmp_path / "~").exists()


def test_everything_sent_is_part_of_the_key():
    base = key()
    assert base == key(params=dict(reversed(PARAMS.items())))  # the order of the parameters is not
    others = [key(server="t"), key(route="score"), key(prompt="def g"), key(params={**PARAMS, "seed": 2}),
              key(params={**PARAMS, "stop": []}), key(params={**PARAMS, "logprobs": 1})]  # fmt: skip
    assert len({base, *others}) == 1 + len(others)


def damage(path: Path, how: str, other_key: str) -> None:
    head, body = path.read_bytes().split(b"\n", 1)
    match how:
        case "wrong key":  # a file copied or renamed to another answer's name
            path.write_bytes(other_key.encode() + head[len(other_key) :] + b"\n" + body)
        case "wrong checksum":
            path.write_bytes(head + b"\n" + body.replace(b"x", b"changed", 1))
        case "truncated":
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        case "invalid utf-8":
            path.write_bytes(path.read_bytes().replace("✓".encode(), b"\xe2\x9c"))
        case "not a list":  # the right checksum over the wrong shape
            path.write_bytes(head.split(b" ")[0] + b" " + _checksum(b"{}").encode() + b"\n{}")
        case "empty":
            path.write_bytes(b"")


@pytest.mark.parametrize("how", ["wrong key", "wrong checksum", "truncated", "invalid utf-8", "not a list", "empty"])
def test_a_damaged_answer_reads_as_missing(tmp_path, how, caplog):
    store, k = AnswerStore(tmp_path), key()
    store.put(k, choices())
    damage(store.path(k), how, key(prompt="other"))
    assert store.get(k) is None
    assert "damaged stored answer" in caplog.text
    store.put(k, choices("y"))  # asked again: the new answer replaces the damaged one
    assert store.get(k) == choices("y")


def test_prune_keeps_the_used_answers_and_young_temporary_files(tmp_path):
    store = AnswerStore(tmp_path)
    used, unused = key(prompt="used"), key(prompt="unused")
    store.put(used, choices())
    store.put(unused, choices())
    old_tmp = store.path(used).with_name(f".{used}.1.1{TMP_SUFFIX}")
    young_tmp = store.path(used).with_name(f".{used}.2.2{TMP_SUFFIX}")
    for tmp in (old_tmp, young_tmp):
        tmp.write_text("{")
    hours_ago = time.time() - 2 * 3600
    os.utime(old_tmp, (hours_ago, hours_ago))

    assert store.size().answers == 2 and store.size().temporary == 2
    assert store.prune([used]) == 1
    assert store.get(used) == choices() and store.get(unused) is None
    assert not old_tmp.exists() and young_tmp.exists()  # the young one may be a write in progress
    assert store.size().temporary == 1


def test_size_counts_answers_and_their_bytes(tmp_path):
    store = AnswerStore(tmp_path)
    assert (store.size().answers, store.size().bytes, store.size().temporary) == (0, 0, 0)
    keys = [key(prompt=f"p{i}") for i in range(3)]
    for k in keys:
        store.put(k, choices())
    size = store.size()
    assert size.answers == 3 and size.bytes == sum(store.path(k).stat().st_size for k in keys)


def test_a_file_gone_while_pruning_or_counting_is_no_error(tmp_path, monkeypatch):
    # another job renames its temporary file, or prunes an answer, between listing the folder and reading the file
    store, k = AnswerStore(tmp_path), key()
    store.put(k, choices())
    gone = [store.path(k).with_name(f".{k}.9.9{TMP_SUFFIX}"), store.path(key(prompt="gone"))]
    listed = Path.glob

    def glob(self, pattern):
        yield from listed(self, pattern)
        if self == store.root / "answers":
            yield from gone

    monkeypatch.setattr(Path, "glob", glob)
    assert store.size().answers == 1
    assert store.prune([k]) == 0 and store.get(k) == choices()


def cfg_for(url: str, store_dir: Path, model: str = "fake-coder"):
    api = {"base_url": url, "model": model, "max_retries": 0, "timeout": {"connect": 0.5, "read": 0.5}}
    return load_config("configs/datagen.yaml", overrides={"api": api, "store": {"dir": str(store_dir)}})


def identity(url: str, store: AnswerStore, model: str = "fake-coder") -> str:
    cfg = cfg_for(url, store.root, model)
    client = make_client(cfg.api, base_url=url, concurrency=1)
    try:
        return server_identity(cfg, client, store)
    finally:
        client.close()


def test_the_servers_own_report_is_part_of_its_identity(tmp_path):
    store = AnswerStore(tmp_path)
    with FakeServer(Options(models=("fake-coder",))) as srv:
        url = srv.url
        first = identity(url, store)
        assert identity(url, store) == first
        assert identity(url, store, model="fake-coder-instruct") != first  # another configured model
    port = int(url.rsplit(":", 1)[1])
    # the same address and configuration, but the server reports another model list: other weights answer
    with FakeServer(Options(models=("fake-coder-v2",)), port=port):
        assert identity(url, store) != first
    # the report is about the configured model: other models the server also serves do not change it
    with FakeServer(Options(models=("fake-coder", "fake-coder-large")), port=port):
        assert identity(url, store) == first


def test_a_server_that_is_down_has_the_identity_recorded_when_it_was_up(tmp_path):
    store = AnswerStore(tmp_path)
    with FakeServer(Options()) as srv:
        url = srv.url
        up = identity(url, store)
    assert identity(url, store) == up  # nothing listens now: the report recorded before stands in
    assert identity(url, AnswerStore(tmp_path / "fresh")) != up  # no report recorded there


def test_credentials_in_the_address_are_no_part_of_the_identity(tmp_path):
    # a rotated password reaches the same server: its answers must stay in use (and no secret goes in a key)
    store = AnswerStore(tmp_path)
    with FakeServer(Options()) as srv:
        plain = identity(srv.url, store)
        for user in ("evo:hunter2", "evo:rotated-password"):
            url = srv.url.replace("http://", f"http://{user}@")
            assert identity(url, store) == plain


def test_an_embedded_server_is_known_by_its_weights_not_its_address(tmp_path, monkeypatch):
    from evoselfcode import embedded

    model = "qwen2.5-coder-0.5b"
    cfg = load_config(overrides={"api": {"base_url": "embedded", "model": model, "max_retries": 0},
                                 "embedded": {"model": model}})  # fmt: skip
    store = AnswerStore(tmp_path)

    def started() -> str:
        """The identity of a fresh start, on a new port (a fake server stands in for llama.cpp's)."""
        with FakeServer(Options(models=(model,))) as srv:
            client = make_client(cfg.api, base_url=srv.url, concurrency=1)
            try:
                return server_identity(cfg, client, store)
            finally:
                client.close()

    first = started()
    assert started() == first
    other = dataclasses.replace(embedded.PRESETS[model], sha256="0" * 64)
    monkeypatch.setitem(embedded.PRESETS, model, other)  # other weights under the same name
    assert started() != first


def test_the_store_command_prunes_what_no_run_used_and_reports_the_hit_rate(tmp_path):
    from evoselfcode.store_command import show_store

    cfg = load_config(overrides={"io": {"out_names_dir": str(tmp_path / "run/names"),
                                        "out_code_dir": str(tmp_path / "run/code")},
                                 "store": {"dir": str(tmp_path / "store")}})  # fmt: skip
    store = AnswerStore(cfg.store.dir)
    ours, theirs, nobodys = key(prompt="ours"), key(prompt="theirs"), key(prompt="nobody's")
    for k in (ours, theirs, nobodys):
        store.put(k, choices())
    timing = {"desc_id": "d", "mode": "FIM", "choices": 2, "latency": 0.1}
    write_jsonl(tmp_path / "run/names/timing/00000.jsonl", [{**timing, "key": ours, "resumed": True}])
    write_jsonl(tmp_path / "run/code/score_timing.jsonl", [{**timing, "key": None, "resumed": False}])
    write_jsonl(tmp_path / "other/code/timing/00000.jsonl", [{**timing, "key": theirs, "resumed": False}])

    shown = show_store(cfg).splitlines()
    assert shown[0].startswith(f"{cfg.store.dir}: 3 answers")
    assert shown[1] == "this run's last jobs: 2 answered requests, 1 from the store, 1 asked (50% from the store)"
    shown = show_store(cfg, prune=True, keep=[str(tmp_path / "other")])
    assert f"pruned 1 answers that no output of this run or of {tmp_path / 'other'} used" in shown
    assert sorted(store.keys()) == sorted([ours, theirs])
