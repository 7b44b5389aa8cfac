"""Scoring kept functions with the model's own log-probs, against the deterministic fake server."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import make_workdir, snakemake
from fakeserver import FakeServer, Options, token_logprob, tokenize

from evoselfcode.clients import make_scorer
from evoselfcode.clients.base import ScoringClient
from evoselfcode.clients.errors import ScoringUnsupported
from evoselfcode.config import Config
from evoselfcode.datagen.pipeline.driver import run_stage
from evoselfcode.datagen.pipeline.scoring import HIGH_PERPLEXITY, SCORE, scored_span, split_by_ppl
from evoselfcode.datagen.pipeline.store import AnswerStore
from evoselfcode.datagen.prompts import code_prompt
from evoselfcode.datagen.readers import read_jsonl
from evoselfcode.datagen.schemas import CodeRecord, ScoredRecord
from evoselfcode.datagen.writers import write_jsonl

BODIES = [
    "a, b):\n    while b:\n        a, b = b, a % b\n    return a",
    "s):\n    s = s.lower()\n    return s == s[::-1]",
    "items, target):\n    lo, hi = 0, len(items) - 1\n    while lo <= hi:\n        mid = (lo + hi) // 2\n"
    "        if items[mid] == target:\n            return mid\n        if items[mid] < target:\n"
    "            lo = mid + 1\n        else:\n            hi = mid - 1\n    return -1",
    "text):\n    return ' '.join(reversed(text.split()))",
    "n):\n    return [p for p in range(2, n + 1) if all(p % d for d in range(2, p))]",
]
NAMES = ["gcd", "is_palindrome", "binary_search", "reverse_words", "primes_up_to"]


# Codes end in a newline, as kept functions do: the fake server tokenizes the echo and its one generated token
# together, so a trailing word would merge with the generated token (real servers tokenize them apart).
def record(i: int, *, desc: str | None = None, code: str | None = None) -> CodeRecord:
    name = NAMES[i % len(NAMES)]
    return CodeRecord(
        desc=desc or f"Task {i}: {name.replace('_', ' ')}.",
        func_name=name,
        source="L2R" if i % 2 else "FIM",
        code=code or f"def {name}({BODIES[i % len(BODIES)]}\n",
        meta={"desc_id": f"d{i}", "params": {"temperature": 0.2}, "seed": 42, "sample_index": 0},
    )


def cfg_for(url: str, store: str, **sections) -> Config:
    base = {
        "api": {"base_url": url, "model": "fake-coder", "max_retries": 1, "backoff": {"base": 0.01, "max": 0.02}},
        "io": {"concurrency": 4},
        # never the project's data/store: a test must not answer from another test's run
        "store": {"dir": store},
    }
    return Config.model_validate({**base, **sections})


def expected_logprobs(prompt: str, text: str) -> list[float]:
    """What the fake server gives the tokens of `text` after `prompt`: one log-prob per token, from its predecessor."""
    full = tokenize(prompt + text)
    out, pos = [], 0
    for i, tok in enumerate(full):
        if pos + len(tok) > len(prompt):
            out.append(token_logprob(full[i - 1] if i else "", tok))
        pos += len(tok)
    return out


@pytest.fixture
def server(request):
    with FakeServer(getattr(request, "param", None) or Options()) as srv:
        yield srv


def score(srv: FakeServer, records, store, **sections):
    """The scoring stage as `score_step` runs it: kept, rejects (by scoring.max_ppl) and failures."""
    cfg = cfg_for(srv.url, str(store), **sections)
    client = make_scorer(cfg.api, base_url=srv.url, concurrency=cfg.io.concurrency)
    try:
        result = run_stage(SCORE, records, cfg, client, AnswerStore(cfg.store.dir))
    finally:
        client.close()
    split = split_by_ppl(result.records, cfg.scoring.max_ppl)
    return SimpleNamespace(kept=split.kept, rejects=split.rejects, failures=result.failures, timings=result.timings)


def test_the_scored_text_is_the_code_after_the_prompts_head():
    cfg = Config()
    r = record(0)
    prompt, text = scored_span(r, cfg.codegen)
    assert prompt == code_prompt(r.desc, r.func_name, cfg.codegen)
    assert prompt.endswith("def gcd(") and prompt + text == prompt[: -len("def gcd(")] + r.code


def test_code_without_the_head_is_scored_whole_in_the_heads_place():
    cfg = Config()
    r = record(0, code="@cache\ndef gcd(a, b):\n    return a")
    prompt, text = scored_span(r, cfg.codegen)
    assert text == r.code
    assert prompt + "def gcd(" == code_prompt(r.desc, r.func_name, cfg.codegen)


def test_scores_are_the_servers_log_probs_of_the_function_tokens(server, tmp_path):
    records = [record(i) for i in range(5)] + [record(5, code="@cache\ndef gcd(a, b):\n    return a\n")]
    out = score(server, records, tmp_path)
    assert not out.failures and not out.rejects
    cg = Config().codegen
    for r, s in zip(records, out.kept, strict=True):
        lps = expected_logprobs(*scored_span(r, cg))
        assert s.score.tokens == len(lps)
        assert s.score.mean_logprob == pytest.approx(sum(lps) / len(lps))
        assert s.score.ppl == pytest.approx(math.exp(-s.score.mean_logprob))
        assert s.score.ppl > 1
        assert s.model_dump(exclude={"score"}) == r.model_dump()


@pytest.mark.parametrize("server", [Options(latency_s=0.05)], indirect=True)
def test_a_score_request_times_how_long_its_answer_took(server, tmp_path):
    out = score(server, [record(i) for i in range(3)], tmp_path)
    assert [t.desc_id for t in out.timings] == ["d0", "d1", "d2"]
    assert all(0.05 <= t.latency < 5 for t in out.timings), out.timings  # the server takes 50 ms per answer


def test_output_keeps_the_input_order_under_concurrency(server, tmp_path):
    records = [record(i, desc=f"Task number {i}") for i in range(24)]
    out = score(server, records, tmp_path, io={"concurrency": 8})
    assert [(s.meta.desc_id, s.func_name) for s in out.kept] == [(r.meta.desc_id, r.func_name) for r in records]


def test_max_ppl_drops_the_worst_into_rejects_with_a_reason(server, tmp_path):
    records = [record(i) for i in range(5)]
    ppls = sorted(s.score.ppl for s in score(server, records, tmp_path / "a").kept)
    threshold = (ppls[1] + ppls[2]) / 2
    out = score(server, records, tmp_path / "b", scoring={"enabled": True, "max_ppl": threshold})
    assert len(out.kept) == 2 and len(out.rejects) == 3
    assert all(s.score.ppl <= threshold for s in out.kept)
    assert all(r.reason == HIGH_PERPLEXITY and r.score.ppl > threshold and r.max_ppl == threshold for r in out.rejects)
    assert {r.meta.desc_id for r in out.rejects} | {s.meta.desc_id for s in out.kept} == {f"d{i}" for i in range(5)}


def test_a_request_failing_after_retries_becomes_a_failure_with_its_cause(server, tmp_path):
    records = [record(0), record(1, desc="[[always:500]] Task 1"), record(2)]
    out = score(server, records, tmp_path)
    assert [s.meta.desc_id for s in out.kept] == ["d0", "d2"]
    (failure,) = out.failures
    assert (failure.stage, failure.desc_id, failure.mode, failure.func_name) == ("score", "d1", "L2R", "is_palindrome")
    assert failure.sample_index == 0
    assert failure.error == "ServerError"
    assert "500" in failure.message


@pytest.mark.parametrize("server", [Options(logprobs="missing"), Options(logprobs="error")], indirect=True)
def test_a_server_that_cannot_score_fails_the_step_once_and_clearly(server, tmp_path):
    records = [record(i, desc=f"Task number {i}") for i in range(20)]
    with pytest.raises(ScoringUnsupported, match="set scoring.enabled: false"):
        score(server, records, tmp_path, io={"concurrency": 4})
    assert server.stats()["requests"] <= 4  # the ones already in flight; nothing after the first answer


class StopsAfter(ScoringClient):
    """Scores like `inner` for `answers` requests, then raises `error` (Ctrl-C, or a server that stops scoring)."""

    def __init__(self, inner: ScoringClient, answers: int, error: BaseException):
        self.inner, self.answers, self.error, self.asked = inner, answers, error, []
        self.transport = inner.transport  # the same server identity as the real client's

    def token_logprobs(self, text, *, prompt="", **kwargs):
        if len(self.asked) >= self.answers:
            raise self.error
        self.asked.append(text)
        return self.inner.token_logprobs(text, prompt=prompt, **kwargs)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), ScoringUnsupported("the server stopped scoring", url="x")])
def test_a_killed_scoring_job_resumes_without_asking_the_scored_ones_again(server, tmp_path, error):
    records = [record(i, desc=f"Task number {i}") for i in range(8)]
    cfg = cfg_for(server.url, str(tmp_path / "store"), io={"concurrency": 1})  # in order: the first 3 are answered
    real = make_scorer(cfg.api, base_url=server.url, concurrency=1)
    try:
        with pytest.raises(type(error)):
            run_stage(SCORE, records, cfg, StopsAfter(real, 3, error), AnswerStore(cfg.store.dir))
        assert AnswerStore(cfg.store.dir).size().answers == 3

        rerun = StopsAfter(real, len(records), RuntimeError("asked more than once"))
        result = run_stage(SCORE, records, cfg, rerun, AnswerStore(cfg.store.dir))
    finally:
        real.close()
    assert rerun.asked == [scored_span(r, cfg.codegen)[1] for r in records[3:]]
    assert [t.resumed for t in result.timings] == [True] * 3 + [False] * 5
    assert result.from_store == 3 and not result.failures
    whole = score(server, records, tmp_path / "whole")  # an uninterrupted run, with a store of its own
    assert result.records == whole.kept


def _write_cli_inputs(tmp_path, url: str, max_ppl: float | None = None):
    records = [record(i) for i in range(4)]
    write_jsonl(tmp_path / "filtered.jsonl", records)
    config = tmp_path / "config.json"
    sections = cfg_for(url, str(tmp_path / "store"), scoring={"enabled": True, "max_ppl": max_ppl}).model_dump(
        mode="json"
    )
    config.write_text(json.dumps(sections))
    args = [sys.executable, "-m", "evoselfcode", "score", str(tmp_path / "filtered.jsonl"), "--config", str(config)]
    paths = [f"--{k}={tmp_path / k}.jsonl" for k in ("out", "rejects", "failures", "timing")]
    return records, [*args, *paths, "--log", str(tmp_path / "score.log")]


# as a process, as the rule runs it: logging is set up once per process
def test_the_cli_step_writes_scored_records_rejects_and_failures(tmp_path, server):
    records, args = _write_cli_inputs(tmp_path, server.url, max_ppl=1e9)
    assert subprocess.run(args, capture_output=True).returncode == 0
    scored = [ScoredRecord.model_validate(r) for r in read_jsonl(tmp_path / "out.jsonl")]
    assert [s.func_name for s in scored] == [r.func_name for r in records]
    assert list(read_jsonl(tmp_path / "rejects.jsonl")) == list(read_jsonl(tmp_path / "failures.jsonl")) == []
    assert "scored 4 of 4 functions" in (tmp_path / "score.log").read_text()
    timings = read_jsonl(tmp_path / "timing.jsonl")
    assert [(t["desc_id"], t["func_name"], t["resumed"]) for t in timings] == [
        (r.meta.desc_id, r.func_name, False) for r in records
    ]
    assert all(AnswerStore(tmp_path / "store").get(t["key"]) for t in timings)  # what `store --prune` keeps

    asked = server.stats()["requests"]
    assert subprocess.run(args, capture_output=True).returncode == 0  # a rerun: every score from the store
    assert server.stats()["requests"] == asked
    assert [ScoredRecord.model_validate(r) for r in read_jsonl(tmp_path / "out.jsonl")] == scored
    assert all(t["resumed"] for t in read_jsonl(tmp_path / "timing.jsonl"))


@pytest.mark.parametrize("server", [Options(logprobs="missing")], indirect=True)
def test_the_cli_step_fails_with_the_fix_in_its_log(tmp_path, server):
    _, args = _write_cli_inputs(tmp_path, server.url)
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "set scoring.enabled: false" in proc.stderr
    log = (tmp_path / "score.log").read_text()
    assert "ERROR" in log and "set scoring.enabled: false" in log
    assert not (tmp_path / "out.jsonl").exists()


def _planned(proc) -> set[str]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set((proc.stdout + proc.stderr).split("Job stats:", 1)[1].split("\n\n", 1)[0].split())


@pytest.mark.workflow
def test_the_default_target_scores_only_when_scoring_is_enabled(tmp_path):
    descriptions = [{"id": "a", "desc": "Add two numbers."}]
    workdir = make_workdir(tmp_path, descriptions, 'api: {base_url: "http://127.0.0.1:9"}\n')
    assert "score_code" not in _planned(snakemake(workdir, "-n"))
    assert "score_code" in _planned(snakemake(workdir, "-n", "data/generated/code/scored.jsonl"))
    (workdir / "configs/test.yaml").write_text('api: {base_url: "http://127.0.0.1:9"}\nscoring: {enabled: true}\n')
    assert "score_code" in _planned(snakemake(workdir, "-n"))
