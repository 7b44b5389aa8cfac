"""The real workflow (Snakemake as a process) against the real embedded llama.cpp server."""

import ast
import json
import shutil

import pytest
from conftest import make_workdir, snakemake

from evoselfcode.datagen.readers import read_jsonl
from evoselfcode.datagen.schemas import CodeRecord, NameCandidate, NameSample

pytestmark = [pytest.mark.embedded, pytest.mark.workflow]

DESCRIPTIONS = [
    {"id": "gcd", "desc": "Compute the greatest common divisor of two integers with the Euclidean algorithm."},
    {"id": "palindrome", "desc": "Check whether a string is a palindrome, ignoring case."},
    {"id": "bsearch", "desc": "Return the index of a target in a sorted list using binary search, or -1."},
    {"id": "primes", "desc": "Return all prime numbers up to n using the sieve of Eratosthenes."},
    {"id": "reverse", "desc": "Reverse the order of the words in a sentence."},
]

TARGET = "data/quickstart/code/filtered.jsonl"  # configs/local.yaml's folder
CONFIGS = ("configs/local.yaml", "configs/test.yaml")
CONFIG = """
namegen: {n: 2}
codegen: {max_new_tokens: 128, n: 2}
io: {shard_size: 3, concurrency: 2}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("embedded"), DESCRIPTIONS, CONFIG)
    proc = snakemake(workdir, TARGET, configs=CONFIGS)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir


def test_every_stage_output_exists_per_shard_and_merged(run):
    for stage in ("names", "code"):
        for part in ("raw", "filtered", "rejects", "failures"):
            assert (run / f"data/quickstart/{stage}/{part}/00000.jsonl").exists()
            assert (run / f"data/quickstart/{stage}/{part}/00001.jsonl").exists()
    for path in ("names/raw.jsonl", "names/filtered.jsonl", "names/metrics.json", "code/filtered.jsonl"):
        assert (run / "data/quickstart" / path).exists(), path
    assert (run / "data/quickstart/logs/generate_names/00000.log").read_text().strip()


def test_names_come_from_both_modes_and_match_the_schema(run):
    samples = [NameSample.model_validate(r) for r in read_jsonl(run / "data/quickstart/names/raw.jsonl")]
    assert {s.mode for s in samples} == {"FIM", "L2R"}
    assert len(samples) == len(DESCRIPTIONS) * 2 * 2  # descriptions x modes x n
    kept = [NameCandidate.model_validate(r) for r in read_jsonl(run / "data/quickstart/names/filtered.jsonl")]
    assert {k.source for k in kept} == {"FIM", "L2R"}, "both arms of the A/B give usable names"
    assert all(k.func_name.isidentifier() for k in kept)


def test_final_records_are_valid_functions_named_as_recorded(run):
    records = list(read_jsonl(run / "data/quickstart/code/filtered.jsonl"))
    for record in records:
        CodeRecord.model_validate(record)
        assert record["source"] in {"FIM", "L2R"}
        assert {"params", "seed"} <= record["meta"].keys()
        tree = ast.parse(record["code"])
        assert [n.name for n in tree.body if isinstance(n, ast.FunctionDef)] == [record["func_name"]]


def test_the_embedded_server_is_stopped_after_the_run(run):
    assert not (run / ".evoselfcode/embedded.json").exists()


def test_code_metrics_account_for_every_raw_sample(run):
    metrics = json.loads((run / "data/quickstart/code/metrics.json").read_text())
    raw = list(read_jsonl(run / "data/quickstart/code/raw.jsonl"))
    assert metrics["funnel"]["generated"] == len(raw)
    assert metrics["accounting"]["adds_up"]


def test_a_rerun_on_a_new_server_start_answers_every_request_from_the_store(run, tmp_path):
    # the embedded server starts on another port each time: its answers are known by its weights, not its address
    again = tmp_path / "again"
    shutil.copytree(run, again, symlinks=True)
    shutil.rmtree(again / "data/quickstart/code")
    shutil.rmtree(again / "data/quickstart/names")
    proc = snakemake(again, TARGET, configs=CONFIGS)
    assert proc.returncode == 0, proc.stderr[-4000:]
    timings = [r for p in (again / "data/quickstart").rglob("timing/*.jsonl") for r in read_jsonl(p)]
    assert timings and all(t["resumed"] for t in timings)
    assert (again / TARGET).read_bytes() == (run / TARGET).read_bytes()
