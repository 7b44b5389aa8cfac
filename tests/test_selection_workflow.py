"""Choosing by agreement through Snakemake: scripted candidates and tests on the fake server."""

import base64
import json

import pytest
from conftest import make_workdir, snakemake
from fakeserver import FakeServer, Options

from evoselfcode.datagen.readers import read_jsonl

pytestmark = pytest.mark.workflow

RIGHT = "n):\n    return 1 if n <= 1 else n * factorial(n - 1)\n"
WRONG = "n):\n    return 100 if n == 5 else n\n"  # passes the wrong assert below, fails the right ones
# right asserts, one wrong one (5! is 120) that only the wrong candidate passes, and one that anything passes
TESTS = "3) == 6\nassert factorial(0) == 1\nassert factorial(5) == 100\nassert factorial(1) == 1\n"
TARGET = "data/generated/code/filtered.jsonl"


def b64(*texts: str) -> str:
    return ",".join(base64.b64encode(t.encode()).decode() for t in texts)


# three code samples of one name: the right function twice (an exact duplicate: a vote), the wrong one once
DESC = f"Return the factorial of n. [[name:{b64('factorial(n):')}]] [[code:{b64(RIGHT, RIGHT, WRONG)}]] " \
       f"[[tests:{b64(TESTS)}]]"  # fmt: skip
CONFIG = {
    "api": {"timeout": {"read": 5}, "backoff": {"base": 0.05, "max": 0.2}},
    "namegen": {"n": 1, "select": {"per_desc": 1}},
    "codegen": {"n": 3},
    "tests": {"n": 1},
    "decontamination": {"enabled": False},
    "io": {"concurrency": 2},
}


def run(tmp_path, name: str, url: str, selection: str = "agreement"):
    (tmp_path / name).mkdir()
    config = {**CONFIG, "api": {**CONFIG["api"], "base_url": url}, "tests": {"n": 1, "selection": selection}}
    workdir = make_workdir(tmp_path / name, [{"id": "fact", "desc": DESC}], json.dumps(config))
    proc = snakemake(workdir, TARGET)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir


def code(workdir, part: str) -> list[dict]:
    return [r for p in sorted((workdir / "data/generated/code" / part).glob("*.jsonl")) for r in read_jsonl(p)]


@pytest.fixture(scope="module")
def server():
    with FakeServer(Options(seed=2)) as srv:
        yield srv


def test_the_agreeing_right_candidates_win_over_a_wrong_one_that_passes_a_wrong_assert(tmp_path, server):
    workdir = run(tmp_path, "agreement", server.url)
    kept = list(read_jsonl(workdir / TARGET))
    assert [r["code"] for r in kept] == ["def factorial(" + RIGHT]
    tests = kept[0]["meta"]["tests"]
    assert (tests["group_size"], tests["candidates"], tests["evidence"]) == (2, 3, "asserts")  # the duplicate votes
    assert tests["non_discriminating"] == 1 and tests["wrong"] == 0  # factorial(1) == 1: even `return n` passes
    assert kept[0]["tests"] == ["assert factorial(3) == 6", "assert factorial(0) == 1"]
    (loser,) = code(workdir, "tests/rejects")
    assert (loser["reason"], loser["code"], loser["desc"]) == ("outvoted", "def factorial(" + WRONG, DESC)
    assert loser["outcomes"] == ["fail", "fail", "pass", "pass"]  # it passed the wrong assert, and lost
    assert [r["reason"] for r in code(workdir, "rejects")] == ["duplicate"]
    (chosen,) = code(workdir, "tests/selection")
    assert (chosen["candidates"], chosen["duplicates"], chosen["winner_size"], chosen["kept"]) == (3, 1, 2, 1)
    metrics = json.loads((workdir / "data/generated/code/metrics.json").read_text())
    assert metrics["selection"]["non_discriminating"] == 1 and metrics["reasons"] == {"duplicate": 1, "outvoted": 1}
    assert metrics["accounting"]["adds_up"]


def test_per_function_judges_each_alone_and_keeps_the_wrong_one_too(tmp_path, server):
    workdir = run(tmp_path, "per_function", server.url, selection="per_function")
    kept = sorted(r["code"] for r in read_jsonl(workdir / TARGET))
    # the wrong one passes 2 of 4 (its wrong assert, and the one anything passes): execution.min_pass_rate 0.5
    assert kept == sorted(["def factorial(" + RIGHT, "def factorial(" + WRONG])
    assert code(workdir, "tests/rejects") == []


def test_the_same_seeds_write_the_same_files(tmp_path, server):
    first, second = run(tmp_path, "one", server.url), run(tmp_path, "two", server.url)
    files = ("code/filtered.jsonl", "code/rejects.jsonl", "code/metrics.json", "names/filtered.jsonl")
    for name in files:
        assert (first / "data/generated" / name).read_bytes() == (second / "data/generated" / name).read_bytes()
