"""The answer store and the atomic writer after a kill cut a write short (the workflow tests cannot aim a
SIGKILL at the middle of one write, so these kill a writer there, or write the leftovers a kill leaves, and resume)."""

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from evoselfcode.clients.base import Choice, CompletionClient
from evoselfcode.config import load_config
from evoselfcode.datagen.pipeline.driver import private_store_dir
from evoselfcode.datagen.pipeline.runner import FailureBudgetExceeded, Request, run_requests
from evoselfcode.datagen.pipeline.selection import execute_tests_step
from evoselfcode.datagen.pipeline.steps import filter_names_step, final_record, generate_names
from evoselfcode.datagen.pipeline.store import TMP_SUFFIX, AnswerStore, request_key
from evoselfcode.datagen.pipeline.testgen import generate_tests_step
from evoselfcode.datagen.readers import read_jsonl
from evoselfcode.datagen.schemas import CodeSample, Description
from evoselfcode.datagen.writers import write_jsonl

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {"max_tokens": 8, "temperature": 0.0, "top_p": 1.0, "n": 1, "seed": 1}
REQUESTS = [Request(key=(f"d{i}",), prompt=f"p{i}", params=PARAMS) for i in range(3)]


class CountingClient(CompletionClient):
    def __init__(self):
        self.calls = []

    def complete(self, prompt, *, n=1, **params):
        self.calls.append(prompt)
        return [Choice(text=f"count_words_{i} for {prompt}", finish_reason="stop") for i in range(n)]


def _killed_while_writing(root: str, key: str) -> None:
    """A job SIGKILLed inside `put`, after its answer is on disk under the temporary name, before the rename."""
    os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
    AnswerStore(root).put(key, [Choice(text="never renamed")])


def test_a_kill_mid_write_leaves_a_temporary_file_and_no_answer(tmp_path):
    key = request_key("", REQUESTS[0].route, REQUESTS[0].prompt, PARAMS)
    writer = multiprocessing.get_context("fork").Process(target=_killed_while_writing, args=(str(tmp_path), key))
    writer.start()
    writer.join(30)
    assert writer.exitcode == -signal.SIGKILL
    store = AnswerStore(tmp_path)
    (left,) = [p.name for p in store.path(key).parent.iterdir()]
    assert left.startswith(f".{key}.{writer.pid}.") and left.endswith(TMP_SUFFIX)  # the writer's, under no real name
    assert store.get(key) is None and store.size().answers == 0 and store.size().temporary == 1

    client = CountingClient()
    out = run_requests(client, REQUESTS, concurrency=1, store=store)  # the rerun asks it
    assert client.calls == ["p0", "p1", "p2"] and not any(o.resumed for o in out)
    assert store.get(key)[0].text == "count_words_0 for p0"


@pytest.mark.parametrize("damage", ["truncated", "garbled", "cut inside a character"])
def test_a_damaged_answer_under_its_real_name_is_asked_again(tmp_path, damage):
    store = AnswerStore(tmp_path)
    run_requests(CountingClient(), REQUESTS, concurrency=1, store=store)
    path = store.path(run_requests(CountingClient(), REQUESTS[1:2], concurrency=1, store=store)[0].key)
    data = path.read_bytes()
    match damage:
        case "truncated":  # e.g. a file system that lost the tail of a write at a power cut
            path.write_bytes(data[: len(data) // 2])
        case "garbled":
            path.write_bytes(data.replace(b"count_words", b"count_wordz"))
        case "cut inside a character":
            path.write_bytes(data.replace(b"for p1", "for p1 \u00e9".encode()[:-1]))

    client = CountingClient()
    out = run_requests(client, REQUESTS, concurrency=1, store=store)
    assert client.calls == ["p1"]  # only the damaged one, never returned as it was
    assert [o.resumed for o in out] == [True, False, True]
    assert out[1].choices[0].text == "count_words_0 for p1" and store.get(out[1].key) == out[1].choices


def _put_many(root: str, key: str, text: str, times: int) -> None:
    store = AnswerStore(root)
    for _ in range(times):
        store.put(key, [Choice(text=text, tokens=tuple(text), token_logprobs=(-0.1,) * len(text))])


def test_two_processes_writing_the_same_answer_at_once_leave_a_valid_one(tmp_path):
    key = request_key("s", "completions", "p", PARAMS)
    ctx = multiprocessing.get_context("fork")
    texts = ["a" * 5000, "b" * 7000]  # different sizes: an interleaved or torn file would fail its checksum
    writers = [ctx.Process(target=_put_many, args=(str(tmp_path), key, text, 200)) for text in texts]
    for w in writers:
        w.start()
    store, seen = AnswerStore(tmp_path), set()
    while any(w.is_alive() for w in writers):
        if (got := store.get(key)) is not None:  # a reader meanwhile sees one whole answer or none
            seen.add(got[0].text)
    for w in writers:
        w.join(60)
        assert w.exitcode == 0
    assert store.get(key)[0].text in texts and seen <= set(texts)
    assert store.size().answers == 1 and store.size().temporary == 0


def test_a_temporary_file_left_by_a_killed_writer_is_cleared_by_the_next_write(tmp_path):
    out = tmp_path / "raw" / "00000.jsonl"
    out.parent.mkdir()
    stale = out.parent / ".00000.jsonl.k1ll3d.tmp"
    stale.write_text('{"half": ')
    other = out.parent / ".00001.jsonl.k1ll3d.tmp"  # another output's: not ours to touch
    other.write_text("{}")
    write_jsonl(out, [{"a": 1}])
    assert out.read_text() == '{"a": 1}\n'
    assert not stale.exists() and other.exists()


def config(tmp_path: Path, **store):
    return load_config(ROOT / "configs/datagen.yaml", overrides={"store": {"dir": str(tmp_path / "store"), **store}})


def name_job(tmp_path: Path) -> tuple[str, ...]:
    shard = tmp_path / "shards/00000.jsonl"
    shard.parent.mkdir(exist_ok=True)
    write_jsonl(shard, [Description(id=f"d{i}", desc=f"count the words of text {i}") for i in range(3)])
    return str(shard), *(str(tmp_path / f"names/{part}/00000.jsonl") for part in ("raw", "failures", "timing"))


@pytest.mark.parametrize("enabled", [True, False])
def test_a_finished_generation_job_keeps_its_answers_until_its_filter_step(tmp_path, enabled):
    # A kill between a job's end and Snakemake recording it makes --rerun-incomplete run the job again.
    cfg = config(tmp_path, enabled=enabled)
    shard, raw, failures, timing = name_job(tmp_path)
    client = CountingClient()
    generate_names(cfg, client, shard=shard, out=raw, failures=failures, timing=timing)
    asked, answers = len(client.calls), Path(raw).read_text()
    assert asked == 3 * len(cfg.namegen.modes)
    store = AnswerStore(cfg.store.dir if enabled else private_store_dir(raw))
    assert store.size().answers == asked
    assert private_store_dir(raw).exists() != enabled and (tmp_path / "store").exists() == enabled

    generate_names(cfg, client, shard=shard, out=raw, failures=failures, timing=timing)  # the rerun
    assert len(client.calls) == asked and Path(raw).read_text() == answers
    assert all(t["resumed"] for t in read_jsonl(timing))

    filter_names_step(
        cfg, raw=raw, out=str(tmp_path / "names/filtered/00000.jsonl"), rejects=str(tmp_path / "rejects.jsonl")
    )
    assert not private_store_dir(raw).exists()
    assert store.size().answers == (asked if enabled else 0)  # the shared store outlives the run


class DownAfter(CompletionClient):
    """Writes one assert per function, until `answers` requests are answered; then the server is down."""

    def __init__(self, answers: int | None = None):
        self.calls, self.answers = 0, answers

    def complete(self, prompt, *, n=1, **params):
        self.calls += 1
        if self.answers is not None and self.calls > self.answers:
            raise ConnectionError("the server went away")
        return [Choice(text="1, b=2) == 3\n", finish_reason="stop") for _ in range(n)]  # after `assert addN(a=`


@pytest.mark.parametrize("enabled", [True, False])
def test_a_failed_test_generation_job_asks_again_only_what_was_not_answered(tmp_path, enabled):
    cfg = config(tmp_path, enabled=enabled)
    cfg = cfg.model_copy(update={"io": cfg.io.model_copy(update={"concurrency": 1})})  # answered in order
    code = tmp_path / "code/raw/00000.jsonl"
    code.parent.mkdir(parents=True)
    samples = [
        CodeSample(
            desc_id=f"d{i}",
            desc="add two numbers",
            func_name=f"add{i}",
            source="L2R",
            sample_index=0,
            seed=1,
            completion="",
            code=f"def add{i}(a, b):\n    return a + b\n",
        )
        for i in range(4)
    ]
    write_jsonl(code, samples)  # fmt: skip
    raw, failures, timing = (str(tmp_path / f"code/tests/{part}/00000.jsonl") for part in ("raw", "failures", "timing"))
    with pytest.raises(FailureBudgetExceeded):
        generate_tests_step(cfg, DownAfter(answers=2), raw=str(code), out=raw, failures=failures, timing=timing)
    assert not Path(raw).exists()
    assert AnswerStore(cfg.store.dir if enabled else private_store_dir(raw)).size().answers == 2
    assert [(f["desc_id"], f["func_name"]) for f in read_jsonl(failures)] == [("d2", "add2"), ("d3", "add3")]

    client = DownAfter()
    generate_tests_step(cfg, client, raw=str(code), out=raw, failures=failures, timing=timing)  # the rerun
    assert client.calls == 2
    assert [t["resumed"] for t in read_jsonl(timing)] == [True, True, False, False]
    kept = tmp_path / "code/filtered/00000.jsonl"
    write_jsonl(kept, [final_record(s, cfg) for s in samples])
    out, rejects, chosen = (str(tmp_path / f"code/tests/{p}/00000.jsonl") for p in ("tested", "rejects", "selection"))
    static = str(tmp_path / "code/rejects/00000.jsonl")
    write_jsonl(static, [])
    execute_tests_step(cfg, kept=str(kept), static_rejects=static, tests=raw, out=out, rejects=rejects,
                       selection=chosen, workers=1)  # fmt: skip
    assert [r["tests"] for r in read_jsonl(out)] == [[f"assert add{i}(1, 2) == 3"] for i in range(4)]
    assert not private_store_dir(raw).exists()
