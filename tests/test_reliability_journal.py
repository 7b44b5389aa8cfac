"""The request journal and the atomic writer after a kill cut a write short (the workflow tests cannot aim a
SIGKILL at the middle of one write, so these write the leftovers a kill leaves and then resume)."""

from pathlib import Path

import pytest
from evoselfcode.datagen.pipeline.journal import Journal

from evoselfcode.clients.base import Choice, CompletionClient
from evoselfcode.config import load_config
from evoselfcode.datagen.pipeline.runner import FailureBudgetExceeded
from evoselfcode.datagen.pipeline.steps import filter_names_step, generate_names, journal_path
from evoselfcode.datagen.pipeline.testgen import execute_tests_step, generate_tests_step
from evoselfcode.datagen.readers import read_jsonl
from evoselfcode.datagen.schemas import CodeRecord, Description
from evoselfcode.datagen.writers import write_jsonl

ROOT = Path(__file__).resolve().parents[1]


# the kill came mid-line, or, between the write calls of a long line, inside a character ("é" is two bytes)
@pytest.mark.parametrize("tail", [b'{"key": "b", "choices": [{"text": "cut sh',
                                  '{"key": "b", "choices": [{"text": "caf\u00e9'.encode()[:-1]])  # fmt: skip
def test_an_answer_after_a_line_cut_short_by_a_kill_is_kept(tmp_path, tail):
    path = tmp_path / ".00000.journal.jsonl"
    journal = Journal(path)
    journal.record("a", [Choice(text="first")])
    journal.close()
    with open(path, "ab") as fh:
        fh.write(tail)
    journal = Journal(path)
    assert journal.get("b") is None  # asked again
    journal.record("b", [Choice(text="second")])
    journal.close()
    resumed = Journal(path)
    assert [c.text for c in resumed.get("a")] == ["first"]
    assert [c.text for c in resumed.get("b")] == ["second"]


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


class CountingClient(CompletionClient):
    def __init__(self):
        self.calls = 0

    def complete(self, prompt, *, n=1, **params):
        self.calls += 1
        return [Choice(text=f"count_words_{i}", finish_reason="stop") for i in range(n)]


def test_a_finished_generation_job_keeps_its_answers_until_its_filter_step(tmp_path):
    # A kill between a job's end and Snakemake recording it makes --rerun-incomplete run the job again.
    cfg = load_config(ROOT / "configs/datagen.yaml")
    shard = tmp_path / "shards/00000.jsonl"
    shard.parent.mkdir()
    write_jsonl(shard, [Description(id=f"d{i}", desc=f"count the words of text {i}") for i in range(3)])
    raw, failures, timing = (str(tmp_path / f"names/{part}/00000.jsonl") for part in ("raw", "failures", "timing"))
    client = CountingClient()
    generate_names(cfg, client, str(shard), raw, failures, timing)
    asked, answers = client.calls, Path(raw).read_text()
    assert asked == 3 * len(cfg.namegen.modes) and journal_path(raw).exists()

    generate_names(cfg, client, str(shard), raw, failures, timing)  # the rerun
    assert client.calls == asked and Path(raw).read_text() == answers

    filter_names_step(cfg, raw, str(tmp_path / "names/filtered/00000.jsonl"), str(tmp_path / "rejects.jsonl"))
    assert not journal_path(raw).exists()


class DownAfter(CompletionClient):
    """Writes one assert per function, until `answers` requests are answered; then the server is down."""

    def __init__(self, answers: int | None = None):
        self.calls, self.answers = 0, answers

    def complete(self, prompt, *, n=1, **params):
        self.calls += 1
        if self.answers is not None and self.calls > self.answers:
            raise ConnectionError("the server went away")
        return [Choice(text="1, 2) == 3\n", finish_reason="stop") for _ in range(n)]


def test_a_failed_test_generation_job_asks_again_only_what_was_not_answered(tmp_path):
    cfg = load_config(ROOT / "configs/datagen.yaml")
    cfg = cfg.model_copy(update={"io": cfg.io.model_copy(update={"concurrency": 1})})  # answered in order
    kept = tmp_path / "code/filtered/00000.jsonl"
    kept.parent.mkdir(parents=True)
    write_jsonl(kept, [CodeRecord(desc="add two numbers", func_name=f"add{i}", source="L2R",
                                  code=f"def add{i}(a, b):\n    return a + b\n",
                                  meta={"desc_id": f"d{i}", "params": {}, "seed": 1, "sample_index": 0})
                       for i in range(4)])  # fmt: skip
    raw, failures, timing = (str(tmp_path / f"code/tests/{part}/00000.jsonl") for part in ("raw", "failures", "timing"))
    with pytest.raises(FailureBudgetExceeded):
        generate_tests_step(cfg, DownAfter(answers=2), str(kept), raw, failures, timing)
    assert not Path(raw).exists() and journal_path(raw).exists()

    client = DownAfter()
    generate_tests_step(cfg, client, str(kept), raw, failures, timing)  # the rerun
    assert client.calls == 2
    out = tmp_path / "code/tested/00000.jsonl"
    execute_tests_step(cfg, raw, str(out), str(tmp_path / "code/tests/rejects/00000.jsonl"), workers=1)
    assert [r["tests"] for r in read_jsonl(out)] == [[f"assert add{i}(1, 2) == 3"] for i in range(4)]
    assert not journal_path(raw).exists()
