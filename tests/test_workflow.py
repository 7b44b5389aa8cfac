"""The workflow as users run it (Snakemake as a process) against the deterministic fake server."""

import ast
import json
import re
import shutil
import subprocess
import sys
from collections import Counter

import pytest
from conftest import make_workdir, snakemake
from fakeserver import FakeServer, Options

from evoselfcode.config import Execution
from evoselfcode.datagen.checks import funnel_stages
from evoselfcode.datagen.readers import read_jsonl
from evoselfcode.datagen.sandbox import Job, run_jobs
from evoselfcode.datagen.schemas import CodeRecord, NameCandidate, NameSample
from evoselfcode.datagen.utils.hashing import ast_fingerprint

pytestmark = pytest.mark.workflow

DESCRIPTIONS = [{"id": f"t{i}", "desc": f"Task {i}: return the {w} of a list of numbers."} for i, w in
                enumerate(["sum", "mean", "median", "mode", "range", "product", "maximum"])]  # fmt: skip
TARGET = "data/generated/code/filtered.jsonl"


def config(url: str, extra: str = "") -> str:
    return f"""
api: {{base_url: "{url}", timeout: {{read: 5}}, backoff: {{base: 0.05, max: 0.2}}}}
namegen: {{n: 2}}
io: {{shard_size: 3, concurrency: 4}}
{extra}"""


def planned(proc) -> dict[str, int]:
    """Jobs per rule from a dry run's job stats table."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


@pytest.fixture(scope="module")
def server():
    with FakeServer(Options(seed=1)) as srv:
        yield srv


@pytest.fixture(scope="module")
def done(tmp_path_factory, server):
    workdir = make_workdir(tmp_path_factory.mktemp("wf"), DESCRIPTIONS, config(server.url))
    proc = snakemake(workdir, TARGET)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir


def test_dry_run_of_the_production_config_plans_every_target_and_sends_nothing(tmp_path, server):
    workdir = make_workdir(tmp_path, DESCRIPTIONS * 1, config(server.url))
    before = server.stats()["requests"]
    jobs = planned(snakemake(workdir, "-n", TARGET, configs=("configs/datagen.yaml",)))
    assert jobs["generate_names"] == jobs["generate_code"] == jobs["filter_code"] == 1  # shard_size 1000
    assert {"split_descriptions", "filter_names", "names_metrics", "merge_code", "merge_names"} <= jobs.keys()
    jobs = planned(snakemake(workdir, "-n", TARGET))
    assert jobs["generate_names"] == 3  # 7 descriptions, shards of 3
    assert server.stats()["requests"] == before
    assert not (workdir / "data/generated").exists()


def test_outputs_hold_every_description_in_both_modes(done):
    samples = [NameSample.model_validate(r) for r in read_jsonl(done / "data/generated/names/raw.jsonl")]
    assert {(s.desc_id, s.mode) for s in samples} == {(d["id"], m) for d in DESCRIPTIONS for m in ("FIM", "L2R")}
    assert len(samples) == len(DESCRIPTIONS) * 2 * 2
    kept = [NameCandidate.model_validate(r) for r in read_jsonl(done / "data/generated/names/filtered.jsonl")]
    assert {k.desc_id for k in kept} == {d["id"] for d in DESCRIPTIONS}


def test_final_records_parse_and_are_named_as_recorded(done):
    records = [CodeRecord.model_validate(r) for r in read_jsonl(done / TARGET)]
    assert records
    for r in records:
        tree = ast.parse(r.code)
        assert [n.name for n in tree.body] == [r.func_name]
        assert r.source in ("FIM", "L2R")


def test_no_two_kept_functions_share_a_body_up_to_names(done):
    records = [CodeRecord.model_validate(r) for r in read_jsonl(done / TARGET)]
    assert len({ast_fingerprint(r.code) for r in records}) == len(records)
    # The fake model writes four bodies under many names: copies are exact duplicates whatever their name
    # (before, near dedup caught them, as near_duplicate), and none is left for near dedup.
    reasons = Counter(r["reason"] for r in read_jsonl(done / "data/generated/code/rejects.jsonl"))
    assert reasons["duplicate"] > 0 and reasons["near_duplicate"] == 0, reasons


def test_metrics_add_up(done):
    names = json.loads((done / "data/generated/names/metrics.json").read_text())
    assert names["accounting"]["ok"]
    assert names["accounting"]["FIM"]["sampled"] == names["accounting"]["L2R"]["sampled"] == len(DESCRIPTIONS) * 2
    code = json.loads((done / "data/generated/code/metrics.json").read_text())
    raw = list(read_jsonl(done / "data/generated/code/raw.jsonl"))
    last_stage = code["funnel"][funnel_stages()[-1]]  # the file's keys are sorted by name
    assert code["accounting"] == {"generated": len(raw), "kept": last_stage, "rejected": len(raw) - last_stage,
                                  "adds_up": True}  # fmt: skip


def test_timings_sit_apart_from_the_data_one_per_request(done):
    timing = ("data/generated/names/timing.json", "data/generated/code/timing.json")
    assert snakemake(done, *timing).returncode == 0
    names = json.loads((done / timing[0]).read_text())["by_mode"]
    assert {m: names[m]["requests"] for m in names} == {"FIM": len(DESCRIPTIONS), "L2R": len(DESCRIPTIONS)}
    kept = list(read_jsonl(done / "data/generated/names/filtered.jsonl"))
    assert sum(names[m]["kept"] for m in names) == len(kept)
    code = json.loads((done / timing[1]).read_text())["by_mode"]
    assert sum(code[m]["kept"] for m in code) == len(list(read_jsonl(done / TARGET)))
    raw = [r for p in sorted((done / "data/generated/code/raw").glob("*.jsonl")) for r in read_jsonl(p)]
    tests = json.loads((done / timing[1]).read_text())["tests"]
    assert tests["requests"] == len({r["desc_id"] for r in raw}) > 0  # one test request per description
    assert all(v["latency_s"]["max"] >= v["latency_s"]["p50"] > 0 for v in [*names.values(), *code.values()])
    assert not any("latency" in r for r in read_jsonl(done / "data/generated/names/raw.jsonl"))


def test_a_second_run_does_nothing(done):
    assert planned(snakemake(done, "-n", TARGET)) == {}


def test_appending_descriptions_runs_only_the_new_and_changed_shards(tmp_path, server):
    workdir = make_workdir(tmp_path, DESCRIPTIONS[:6], config(server.url))  # two full shards of 3
    assert snakemake(workdir, TARGET).returncode == 0
    with open(workdir / "data/descriptions/sample.jsonl", "a") as fh:
        fh.write(json.dumps(DESCRIPTIONS[6]) + "\n")
    jobs = planned(snakemake(workdir, "-n", TARGET))
    assert jobs["split_descriptions"] == jobs["generate_names"] == jobs["generate_code"] == 1
    assert jobs["merge_code"] == 1


@pytest.mark.parametrize(
    ("change", "reruns", "keeps"),
    [
        ("io: {concurrency: 9}\napi: {max_retries: 2}", set(), set()),
        ("codegen: {temperature: 0.7}", {"generate_code", "filter_code", "merge_code"}, {"generate_names"}),
        ("filters: {min_code_len: 5}", {"filter_code", "merge_code"}, {"generate_code", "filter_names"}),
        ("filters: {dedup: {threshold: 0.9}}", {"filter_code", "merge_code"}, {"generate_code", "filter_names"}),
        ("namegen: {temperature: 0.1}", {"generate_names", "generate_code"}, {"split_descriptions"}),
        ("tests: {temperature: 0.5}", {"generate_tests", "execute_tests", "merge_code"}, {"generate_code"}),
        ("execution: {min_pass_rate: 0.9}", {"execute_tests", "merge_code"}, {"generate_tests", "filter_code"}),
        ("store: {enabled: false, dir: elsewhere}", set(), set()),
    ],
)
def test_a_setting_reruns_only_what_depends_on_it(done, change, reruns, keeps):
    (done / "configs/change.yaml").write_text(change)
    jobs = planned(snakemake(done, "-n", TARGET, configs=("configs/test.yaml", "configs/change.yaml")))
    assert reruns <= jobs.keys(), jobs
    assert not keeps & jobs.keys(), jobs


def test_kept_functions_passed_their_generated_tests_in_the_sandbox(done):
    records = [CodeRecord.model_validate(r) for r in read_jsonl(done / TARGET)]
    assert records and all(r.tests for r in records)
    outcomes = run_jobs([Job(r.code, tuple(r.tests)) for r in records], Execution(), workers=2)
    assert all(set(o) == {"pass"} for o in outcomes)  # run again, each kept test passes
    assert all(r.meta.model_extra["tests"]["passed"] == len(r.tests) for r in records)
    rejects = [r for p in sorted((done / "data/generated/code/tests/rejects").glob("*.jsonl")) for r in read_jsonl(p)]
    assert {r["reason"] for r in rejects} <= {"outvoted", "no_evidence", "tests_failed"} and rejects
    assert all(r["desc"] for r in rejects)
    metrics = json.loads((done / "data/generated/code/metrics.json").read_text())
    across = sum(1 for r in read_jsonl(done / "data/generated/code/rejects.jsonl") if r.get("scope") == "global")
    assert funnel_stages()[-2:] == ["tested", "unique_across_shards"]
    assert metrics["funnel"]["tested"] == len(records) + across and metrics["funnel"]["unique_across_shards"] == len(
        records
    )
    execution = metrics["execution"]
    assert execution["functions"] - execution["passed"] == sum(execution["reasons"].values()) == len(rejects)
    assert execution["passed"] >= len(records)  # the global dedup comes after the tests
    asked = [t for p in sorted((done / "data/generated/code/tests/raw").glob("*.jsonl")) for t in read_jsonl(p)]
    assert metrics["completion_tokens"]["tests"] == sum(t["tokens"] for t in asked) > 0  # every test request's
    selection = metrics["selection"]  # tests.selection: agreement, the default
    assert selection["selection"] == "agreement" and selection["kept"] == execution["passed"]
    assert selection["asserts"] > selection["wrong"] + selection["non_discriminating"] > 0


def test_same_seeds_same_tests_outcomes_and_files(done, tmp_path, server):
    again = make_workdir(tmp_path, DESCRIPTIONS, config(server.url))
    assert snakemake(again, TARGET).returncode == 0
    out = "data/generated/code"
    files = [TARGET, f"{out}/metrics.json", f"{out}/rejects.jsonl",
             *(p.relative_to(done).as_posix() for p in sorted((done / out / "tests").glob("*/*.jsonl"))
               if "timing" not in p.parts)]  # fmt: skip
    assert len(files) > 6
    assert [(again / f).read_bytes() for f in files] == [(done / f).read_bytes() for f in files]


def test_with_tests_disabled_the_dag_is_as_before(tmp_path, server):
    workdir = make_workdir(tmp_path, DESCRIPTIONS, config(server.url, "tests: {enabled: false}"))
    jobs = planned(snakemake(workdir, "-n", TARGET))
    assert "generate_tests" not in jobs and "execute_tests" not in jobs and jobs["merge_code"] == 1


def test_deleted_outputs_are_made_again_from_the_answer_store_without_a_request(done, server, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(done, again, symlinks=True)
    before = {p.relative_to(again): p.read_bytes() for p in (again / "data/generated").rglob("*.jsonl")
              if "timing" not in p.name and "timing" not in p.parent.name}  # fmt: skip
    shutil.rmtree(again / "data/generated")
    asked = server.stats()["requests"]
    proc = snakemake(again, TARGET)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert server.stats()["requests"] == asked  # every answer came from data/store
    after = {p.relative_to(again): p.read_bytes() for p in (again / "data/generated").rglob("*.jsonl")
             if "timing" not in p.name and "timing" not in p.parent.name}  # fmt: skip
    assert after == before
    timings = [r for p in (again / "data/generated").rglob("timing/*.jsonl") for r in read_jsonl(p)]
    assert timings and all(t["resumed"] and t["key"] for t in timings)

    cmd = [sys.executable, "-m", "evoselfcode", "store", "--config", "configs/datagen.yaml", "--config",
           "configs/test.yaml"]  # fmt: skip
    shown = subprocess.run(cmd, cwd=again, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    answers = len({t["key"] for t in timings})
    assert f"data/store: {answers} answers" in shown.stdout
    assert f"{len(timings)} answered requests, {len(timings)} from the store, 0 asked (100% from the store)" in (
        shown.stdout
    )
