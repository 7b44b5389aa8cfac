"""Decontamination through the workflow (Snakemake as a process, the fake server): HumanEval's prompts given as
descriptions are set aside before any request, and a function the model copies from a HumanEval solution, its
names changed and a comment added, is removed; both are counted per benchmark and per stage."""

import base64
import json
import re

import pytest
from conftest import make_workdir, snakemake
from fakeserver import FakeServer, Options
from reliability import read_jsonl

from evoselfcode.config import Decontamination
from evoselfcode.datagen.benchmark_index import read_benchmarks

pytestmark = pytest.mark.workflow

TARGET = "data/generated/code/filtered.jsonl"
# HumanEval/0's solution as the model "writes" it after `def <name>(`: other names, a comment, no docstring
COPY = """values, limit):
    # compare every pair of readings
    for i, a in enumerate(values):
        for j, b in enumerate(values):
            if i != j:
                gap = abs(a - b)
                if gap < limit:
                    return True

    return False
"""
CLEAN = [{"id": f"t{i}", "desc": f"Task {i}: return the {w} of a list of numbers."} for i, w in
         enumerate(["sum", "median", "product"])]  # fmt: skip
CLEAN += [{"id": "copy", "desc": "Tell whether two sensor readings lie within a tolerance of each other. "
           f"[[code:{base64.b64encode(COPY.encode()).decode()}]]"}]  # fmt: skip
HUMANEVAL = [{"id": it.id, "desc": it.prompt} for it in read_benchmarks(Decontamination())]


def config(url: str) -> str:
    return f"""
api: {{base_url: "{url}", timeout: {{read: 5}}, backoff: {{base: 0.05, max: 0.2}}}}
namegen: {{n: 2}}
io: {{shard_size: 100, concurrency: 4}}
"""


def run(path, server, descriptions):
    root = make_workdir(path, descriptions, config(server.url))
    before = server.stats()["requests"]
    proc = snakemake(root, TARGET, "data/generated/code/timing.json")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return root, server.stats()["requests"] - before


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same clean descriptions alone, and with all of HumanEval's prompts among them."""
    with FakeServer(Options(seed=1)) as srv:
        clean = run(tmp_path_factory.mktemp("clean"), srv, CLEAN)
        mixed = run(tmp_path_factory.mktemp("mixed"), srv, HUMANEVAL[:80] + CLEAN + HUMANEVAL[80:])
    return clean, mixed


def test_humaneval_prompts_are_set_aside_before_any_request(runs):
    (_, clean_requests), (root, mixed_requests) = runs
    assert clean_requests > 0
    assert mixed_requests == clean_requests  # not one request for the 164 prompts
    set_aside = [r for p in sorted((root / "data/shards/contaminated").glob("*.jsonl")) for r in read_jsonl(p)]
    assert sorted(r["id"] for r in set_aside) == sorted(d["id"] for d in HUMANEVAL)
    assert {r["reason"] for r in set_aside} == {"contaminated:humaneval"}
    sent = [r["id"] for p in sorted((root / "data/shards").glob("*.jsonl")) for r in read_jsonl(p)]
    assert sent == [d["id"] for d in CLEAN]
    names = json.loads((root / "data/generated/names/metrics.json").read_text())
    assert names["descriptions"] == len(CLEAN) and names["contaminated_descriptions"] == {"humaneval": 164}


def test_a_copied_solution_is_removed_with_its_names_changed_and_a_comment_added(runs):
    for root, _ in runs:
        rejects = read_jsonl(root / "data/generated/code/rejects.jsonl")
        copies = [r for r in rejects if r["desc_id"] == "copy"]
        assert copies and {r["reason"] for r in copies} == {"contaminated:humaneval"}
        assert all("# compare every pair" in r["code"] and "has_close_elements" not in r["code"] for r in copies)
        kept = read_jsonl(root / TARGET)
        assert kept and not [r for r in kept if r["meta"]["desc_id"] == "copy"]
        metrics = json.loads((root / "data/generated/code/metrics.json").read_text())
        assert metrics["reasons"]["contaminated:humaneval"] == len(copies)
        assert metrics["funnel"]["ruff_clean"] - metrics["funnel"]["uncontaminated"] == len(copies)
        assert metrics["accounting"]["adds_up"]
    (clean, _), (mixed, _) = runs
    assert json.loads((clean / "data/generated/code/metrics.json").read_text())["decontamination"] == {
        "descriptions": {}, "functions": {"humaneval": len(copies)}}  # fmt: skip
    assert json.loads((mixed / "data/generated/code/metrics.json").read_text())["decontamination"] == {
        "descriptions": {"humaneval": 164}, "functions": {"humaneval": len(copies)}}  # fmt: skip


def test_the_index_is_built_once_and_touching_or_losing_it_reruns_no_check(runs):
    (root, _), _ = runs
    (index,) = (root / "data/shards/benchmarks").glob("index-*.json")
    built = index.read_bytes()
    assert [benchmark for benchmark, _ in json.loads(built)["items"]] == ["humaneval"] * 164
    proc = snakemake(root, "-n", TARGET)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
    index.touch()  # as a rebuild would leave it: its name says what it holds (ancient in its readers)
    proc = snakemake(root, "-n", TARGET)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
    index.unlink()  # the shards' checks stand: the benchmarks did not change
    proc = snakemake(root, TARGET)  # a real run (the server is gone: any job asking it would fail)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
    assert index.read_bytes() == built  # rebuilt when the workflow was parsed, the same


def test_a_lost_index_is_rebuilt_the_same_and_a_new_shard_reruns_no_other_shard(tmp_path):
    # Were the index a job's output, Snakemake would rebuild it for the new shard's check and then rerun every
    # job that reads it (ancient or not: a missing input it rebuilds), so every shard's requests again.
    descs = [{"id": f"n{i}", "desc": f"Return the {w} of a list of numbers."} for i, w in
             enumerate(["sum", "mean", "median", "mode", "range"])]  # fmt: skip
    with FakeServer(Options(seed=1)) as srv:
        root = make_workdir(tmp_path, descs[:4], config(srv.url).replace("shard_size: 100", "shard_size: 2"))
        proc = snakemake(root, TARGET)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        (index,) = (root / "data/shards/benchmarks").glob("index-*.json")
        built = index.read_bytes()
        done = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted((root / "data").rglob("0000[01].jsonl"))}
        assert len(done) > 10
        index.unlink()
        with open(root / "data/descriptions/sample.jsonl", "a") as fh:
            fh.write(json.dumps(descs[4]) + "\n")
        before = srv.stats()["requests"]
        ran = rules_run(snakemake(root, TARGET))
        requests = srv.stats()["requests"] - before
    assert ran.count("split_descriptions") == ran.count("generate_names") == ran.count("filter_code") == 1, ran
    assert index.read_bytes() == built
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in done} == done  # the two old shards: not one rewrite
    assert requests == requests_of(root, "00002") > 0  # the new shard's only


def requests_of(root, shard: str) -> int:
    """The requests one shard's jobs sent, from their timing files (one record a request)."""
    parts = ["names/timing", "code/timing", "code/tests/timing"]
    return sum(len(read_jsonl(root / f"data/generated/{part}/{shard}.jsonl")) for part in parts)


def rules_run(proc) -> list[str]:
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, re.M)


def test_a_changed_decontamination_setting_makes_a_new_index_and_reruns_the_checks_in_one_run(tmp_path):
    descs = [{"id": f"d{i}", "desc": f"Return the {w} of a list of numbers."} for i, w in enumerate(["sum", "max"])]
    settings = 'api: {base_url: "http://127.0.0.1:9"}\nio: {shard_size: 1}\n'  # split sends no request
    root = make_workdir(tmp_path, descs, settings)
    shards = ["data/shards/00000.jsonl", "data/shards/00001.jsonl"]
    assert rules_run(snakemake(root, *shards)) == ["split_descriptions"] * 2
    (root / "configs/test.yaml").write_text(settings + "decontamination: {min_words: 4}\n")
    assert rules_run(snakemake(root, *shards)) == ["split_descriptions"] * 2
    assert len(list((root / "data/shards/benchmarks").glob("index-*.json"))) == 2  # one per content
    (root / "configs/test.yaml").write_text(settings + "decontamination: {min_words: 4, desc_threshold: 0.6}\n")
    assert rules_run(snakemake(root, *shards)) == ["split_descriptions"] * 2  # the index holds no threshold


def test_a_user_benchmark_sets_aside_its_prompts_and_reruns_only_when_its_content_changes(tmp_path):
    bench = [{"task_id": 12, "text": "Write a function to sort a given matrix in ascending order according to the "
              "sum of its rows.", "code": "def sort_matrix(M):\n    return sorted(M, key=sum)\n"}]  # fmt: skip
    descs = [{"id": "mine", "desc": bench[0]["text"]}, {"id": "ok", "desc": "Reverse the words of a sentence."}]
    extra = ("decontamination: {benchmarks: [humaneval, {name: mbpp, path: data/mbpp.jsonl, prompt_field: text, "
             "solution_field: code, id_field: task_id}]}")  # fmt: skip
    root = make_workdir(tmp_path, descs, config("http://127.0.0.1:9") + extra)  # split sends no request
    mbpp = root / "data/mbpp.jsonl"
    mbpp.write_text("".join(json.dumps(r) + "\n" for r in bench))
    shard = "data/shards/00000.jsonl"
    proc = snakemake(root, shard)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert [r["id"] for r in read_jsonl(root / shard)] == ["ok"]
    (aside,) = read_jsonl(root / "data/shards/contaminated/00000.jsonl")
    assert (aside["id"], aside["reason"], aside["task_id"]) == ("mine", "contaminated:mbpp", "12")
    mbpp.touch()
    proc = snakemake(root, shard)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
    mbpp.write_text(mbpp.read_text().replace("sum of its rows", "product of its columns"))
    proc = snakemake(root, shard)  # a real run: a dry run does not show the split it reruns
    assert rules_run(proc) == ["split_descriptions"]
    assert [r["id"] for r in read_jsonl(root / shard)] == ["mine", "ok"]
