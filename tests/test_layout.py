"""The output layout (`evoselfcode/layout.py`): the paths the rules use, the optional stages' switches, and the
schema of every file a finished run writes."""

import os
import re
from pathlib import Path

import pytest
from conftest import ROOT, make_workdir, snakemake
from fakeserver import FakeServer, Options

from evoselfcode import tools
from evoselfcode.config import Config
from evoselfcode.layout import STATE_DIR, Layout, Names, schema_of, schemas, timing_files

DESCRIPTIONS = [{"id": f"l{i}", "desc": f"Task {i}: return the {w} of a list of numbers."}
                for i, w in enumerate(["sum", "mean", "median", "maximum"])]  # fmt: skip
RULES = [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]


def config(**sections) -> Config:
    return Config.model_validate(sections)


def test_the_default_config_lays_out_the_documented_paths():
    run = Layout.of(config())
    assert run.names.raw("{shard}") == "data/generated/names/raw/{shard}.jsonl"
    assert run.names.filtered() == "data/generated/names/filtered.jsonl"
    assert run.code.tested("{shard}") == "data/generated/code/tested/{shard}.jsonl"
    assert run.tests.selection("{shard}") == "data/generated/code/tests/selection/{shard}.jsonl"
    assert run.code.score_timing() == "data/generated/code/score_timing.jsonl"
    assert run.code.metrics_json == "data/generated/code/metrics.json"
    assert run.names.timing_json == "data/generated/names/timing.json"
    assert run.shards.descriptions("{shard}") == "data/shards/{shard}.jsonl"
    assert run.shards.contaminated("{shard}") == "data/shards/contaminated/{shard}.jsonl"
    assert run.shards.quarantine() == "data/shards/quarantine.jsonl"
    assert run.shards.benchmark_indexes == "data/shards/benchmarks"
    assert (run.report, run.dataset) == ("data/generated/report", "data/generated/dataset")
    assert run.plot("ab_test") == "data/generated/report/ab_test.svg"
    assert run.log("generate_code", "{shard}") == "logs/generate_code/{shard}.log"
    assert run.log("merge_code") == "logs/merge_code/all.log"
    assert run.benchmark("score_code") == "benchmarks/score_code/all.tsv"
    assert run.server_log == "logs/embedded_server.log"
    assert Path(".evoselfcode") == STATE_DIR


def test_a_run_of_its_own_keeps_everything_in_its_folders():
    io = {"shards_dir": "data/own/x/shards", "out_names_dir": "data/own/x/names", "out_code_dir": "data/own/x/code",
          "logs_dir": "data/own/x/logs"}  # fmt: skip
    run = Layout.of(config(io=io))
    assert run.benchmark("generate_names", "{shard}") == "data/own/x/logs/benchmarks/generate_names/{shard}.tsv"
    assert (run.report, run.dataset) == ("data/own/x/report", "data/own/x/dataset")
    assert run.code.part("{part}") == "data/own/x/code/{part}.jsonl"  # merge_code_parts' wildcard
    assert Layout.under("out", config(io=io)).code.filtered() == "out/code/filtered.jsonl"


@pytest.mark.parametrize("tests", [True, False])
@pytest.mark.parametrize("scoring", [True, False])
def test_the_optional_stages_decide_the_inputs_of_the_rules_after_them(tests, scoring):
    run = Layout.of(config(tests={"enabled": tests}, scoring={"enabled": scoring}))
    assert (run.stages.tests, run.stages.scoring) == (tests, scoring)
    assert run.kept("7") == f"data/generated/code/{'tested' if tests else 'filtered'}/7.jsonl"
    expected = ["data/generated/code/tests/rejects/0.jsonl", "data/generated/code/tests/rejects/1.jsonl"]
    assert run.tests_files("rejects", ["0", "1"]) == (expected if tests else [])
    assert run.final_records() == f"data/generated/code/{'scored' if scoring else 'filtered'}.jsonl"
    assert run.scores() == (["data/generated/code/scored.jsonl"] if scoring else [])


def test_a_folder_names_only_its_declared_files():
    assert Names("n").rejects("3") == "n/rejects/3.jsonl"
    with pytest.raises(AttributeError, match="no file 'tested'"):
        Names("n").tested("3")


def test_the_rules_build_every_path_from_the_layout_and_read_no_switch_themselves():
    for path in RULES:
        text = path.read_text()
        literal = [s for s in re.findall(r"\"([^\"\n]*)\"", text) if re.search(r"\.(jsonl|json|log|tsv|svg)$", s)]
        assert literal == [], f"{path.name}: paths written out instead of asked of the layout: {literal}"
        assert not re.search(r"CFG\.(tests|scoring)\b", text), f"{path.name} reads a switch, not RUN.stages"
        assert not re.search(r"\bos\.path\.", text) or path.name == "common.smk", path.name


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("data/generated/code/score_timing.jsonl", "timing"),
        ("data/generated/code/score_rejects.jsonl", "code/score_rejects"),
        ("data/generated/code/tested/00000.jsonl", "code/tested"),
        ("data/generated/code/tests/selection/00000.jsonl", "tests/selection"),
        ("data/shards/contaminated/00001.jsonl", "contaminated"),
        ("data/own/x/names/rejects.jsonl", "names/rejects"),
    ],
)
def test_the_schema_of_a_file_is_the_one_its_place_declares(path, schema):
    assert schema_of(path) == schema == tools.detect_schema(path)


@pytest.mark.parametrize(
    ("path", "schema"),
    [("x/mycode/failures.jsonl", "failures"), ("failures.jsonl", "failures"), ("runs/a/timing/00002.jsonl", "timing"),
     ("runs/a/quarantine.jsonl", "quarantine"), ("runs/a/contaminated/00000.jsonl", "contaminated")],
)  # fmt: skip
def test_in_folders_named_otherwise_a_file_whose_name_means_one_schema_everywhere_is_known(path, schema):
    assert schema_of(path) == schema == tools.detect_schema(path)  # io.out_code_dir or io.shards_dir of the user's


@pytest.mark.parametrize(
    "path", ["data/generated/code/metrics.json", "data/generated/names/timing.json", "notes/raw.jsonl",
             "data/generated/names/tested/00000.jsonl", "data/generated/code/scored/00000.jsonl"]
)  # fmt: skip
def test_a_file_the_layout_does_not_declare_has_no_schema(path):
    assert schema_of(path) is None


def test_every_schema_the_layout_names_can_be_validated():
    assert schemas() == set(tools.SCHEMAS)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A run with every stage on (tests and scoring) against the fake server."""
    with FakeServer(Options(seed=3)) as server:
        extra = f'api: {{base_url: "{server.url}", timeout: {{read: 5}}}}\nnamegen: {{n: 2}}\n'
        extra += "io: {shard_size: 3, concurrency: 4}\nscoring: {enabled: true}\n"
        workdir = make_workdir(tmp_path_factory.mktemp("layout"), DESCRIPTIONS, extra)
        proc = snakemake(workdir)
        assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir


def written(root: Path, *folders: str) -> set[str]:
    """Every file under the run's `folders`, relative to its work folder."""
    return {p.relative_to(root).as_posix() for f in folders for p in (root / f).rglob("*") if p.is_file()}


@pytest.mark.workflow
def test_every_file_of_a_finished_run_is_one_the_layout_names(finished):
    cfg = config(scoring={"enabled": True})
    run = Layout.of(cfg)
    shards = sorted(p.stem for p in (finished / "data/shards").glob("*.jsonl") if p.stem.isdigit())
    assert len(shards) == 2
    named = {run.shards.quarantine(), run.names.metrics_json, run.names.timing_json, run.code.metrics_json,
             run.code.timing_json, run.server_log}  # fmt: skip
    for shard in shards:
        named |= {run.shards.descriptions(shard), run.shards.contaminated(shard)}
    for folder in (run.names, run.code, run.tests):
        named |= {folder.part(part, shard) for part in folder.PARTS for shard in shards}
        named |= {folder.part(part) for part in (*folder.MERGED, *folder.FILES)}
    named |= {run.code.filtered(), run.code.rejects()}  # merge_code's
    named |= {run.plot(p) for p in ("ab_test", "name_rejects", "code_funnel", "code_lengths", "perplexity")}
    outputs = written(finished, "data/generated", "data/shards")
    index = {f for f in outputs if f.startswith(run.shards.benchmark_indexes + "/")}
    dataset = {f for f in outputs if f.startswith(run.dataset + "/")}
    assert len(index) == 1 and {"README.md"} <= {os.path.relpath(f, run.dataset) for f in dataset}
    assert outputs - index - dataset <= named, sorted(outputs - index - dataset - named)
    logs = written(finished, "logs", "benchmarks")
    rules = {"generate_names", "filter_names", "generate_code", "filter_code", "generate_tests", "execute_tests"}
    assert {run.log(rule, shard) for rule in rules for shard in shards} <= logs
    assert {run.log(r) for r in ("merge_code", "score_code", "plot_metrics", "export_dataset")} <= logs


@pytest.mark.workflow
def test_every_records_file_of_a_finished_run_has_its_schema_and_holds_it(finished):
    files = sorted(p for f in ("data/generated", "data/shards") for p in (finished / f).rglob("*.jsonl"))
    assert any("tests/selection" in str(p) for p in files) and any(p.name == "score_timing.jsonl" for p in files)
    for path in files:
        schema = tools.detect_schema(path)
        assert tools.validate(path, schema)[1] == [], path
    assert all(schema_of(p) is None for p in (finished / "data/generated").rglob("*.json"))


@pytest.mark.workflow
def test_the_store_command_finds_every_request_timing_of_a_run(finished):
    found = {p.relative_to(finished).as_posix() for p in timing_files(finished / "data/generated")}
    assert {f for f in found if "/tests/" in f} and "data/generated/code/score_timing.jsonl" in found
    assert all(tools.detect_schema(finished / f) == "timing" for f in found)
    assert len([f for f in found if "/names/" in f]) == 2  # one per shard
