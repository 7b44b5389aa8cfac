"""The workflow with scoring on, against the real embedded server: scored.jsonl is valid and finite."""

from __future__ import annotations

import math

import pytest
from conftest import make_workdir, snakemake

from evoselfcode.datagen.readers import read_jsonl
from evoselfcode.datagen.schemas import CodeRecord, ScoredRecord

pytestmark = [pytest.mark.embedded, pytest.mark.workflow]

DESCRIPTIONS = [
    {"id": "gcd", "desc": "Compute the greatest common divisor of two integers with the Euclidean algorithm."},
    {"id": "palindrome", "desc": "Check whether a string is a palindrome, ignoring case."},
    {"id": "reverse", "desc": "Reverse the order of the words in a sentence."},
]

# log-probs over the whole vocabulary are slow on llama.cpp: few, short functions
CONFIG = """
namegen: {n: 1}
codegen: {max_new_tokens: 96}
filters: {min_code_len: 10}
scoring: {enabled: true}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("scoring"), DESCRIPTIONS, CONFIG)
    proc = snakemake(workdir, configs=("configs/local.yaml", "configs/test.yaml"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir


def test_every_kept_function_is_scored_with_a_finite_perplexity(run):
    code = run / "data/quickstart/code"
    kept = [CodeRecord.model_validate(r) for r in read_jsonl(code / "filtered.jsonl")]
    scored = [ScoredRecord.model_validate(r) for r in read_jsonl(code / "scored.jsonl")]
    assert kept, "the embedded model kept no function to score"
    assert [s.model_dump(exclude={"score"}) for s in scored] == [k.model_dump() for k in kept]
    for s in scored:
        assert math.isfinite(s.score.ppl) and s.score.ppl > 1
        assert s.score.ppl == pytest.approx(math.exp(-s.score.mean_logprob))
        assert s.score.tokens > 0
    assert list(read_jsonl(code / "score_rejects.jsonl")) == list(read_jsonl(code / "score_failures.jsonl")) == []
    assert (run / "data/quickstart/logs/score_code/all.log").read_text().strip()
