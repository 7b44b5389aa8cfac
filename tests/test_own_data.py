"""A user's own descriptions as `make run DESCS=my.txt` runs them (Snakemake as a process, the fake server):
repeated lines, a run that keeps nothing, the run's own folders, formatted code, next commands that work."""

import base64
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, make_workdir, snakemake
from fakeserver import FakeServer, Options

from evoselfcode.datagen.readers import read_jsonl as _read_jsonl
from evoselfcode.datagen.utils.ruff import ruff_format

pytestmark = pytest.mark.workflow


def read_jsonl(path) -> list[dict]:
    return list(_read_jsonl(path))


VENV = Path(sys.executable).parent.parent
MY_TXT = (
    "Return the sum of a list of numbers.\n"
    "Reverse a string.\n"
    "Return the sum of a list of numbers.\n"
    "\n"
    "Count the vowels in a word.\n"
    "Reverse a string.\n"
    "Return the sum of a list of numbers.\n"
)


def config(url: str, extra: str = "") -> str:
    return f"""
api: {{base_url: "{url}", timeout: {{read: 5}}, backoff: {{base: 0.05, max: 0.2}}}}
namegen: {{n: 2}}
io: {{shard_size: 2, concurrency: 2}}
{extra}"""


def make_run_args(*variables: str) -> list[str]:
    """The Snakemake arguments `make run VAR=...` passes, read from `make -n`."""
    out = subprocess.run(["make", "-n", "run", *variables, f"VENV={VENV}"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return shlex.split([line for line in out.splitlines() if "snakemake" in line][-1])[1:]


def make_run_config(descs: str) -> list[str]:
    """The `--config io=...` that `make run DESCS=...` passes."""
    words = make_run_args(f"DESCS={descs}")
    return words[words.index("--config") :]


@pytest.fixture(scope="module")
def server():
    with FakeServer(Options(seed=2)) as srv:
        yield srv


@pytest.fixture(scope="module")
def own(tmp_path_factory, server):
    workdir = make_workdir(tmp_path_factory.mktemp("own"), [], config(server.url))
    (workdir / "my.txt").write_text(MY_TXT)
    proc = snakemake(workdir, *make_run_config("my.txt"), env={"EVOSELFCODE_MAKE_VARS": "DESCS=my.txt"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir, proc


def test_a_txt_file_with_repeated_lines_runs_and_accounts_for_every_line(own):
    workdir, proc = own
    lines = [line for line in MY_TXT.splitlines() if line.strip()]
    shards = [r for p in sorted((workdir / "data/own/my/shards").glob("0*.jsonl")) for r in read_jsonl(p)]
    aside = read_jsonl(workdir / "data/own/my/shards/quarantine.jsonl")
    assert sorted(r["desc"] for r in shards) == sorted(set(lines))
    assert [(r["line"], r["reason"]) for r in aside] == [(3, "repeated_desc"), (6, "repeated_desc"),
                                                         (7, "repeated_desc")]  # fmt: skip
    assert len(shards) + len(aside) == len(lines)
    names = json.loads((workdir / "data/own/my/names/metrics.json").read_text())
    assert names["descriptions"] == 3 and names["repeated_descriptions"] == 3 and names["quarantined_input_lines"] == 0
    assert "  input      3 repeated descriptions set aside (repeated_desc)\n" in proc.stderr


def test_an_own_run_writes_and_logs_only_into_its_own_folder(own):
    workdir, _ = own
    assert (workdir / "data/own/my/logs/generate_names/00000.log").read_text().strip()
    assert (workdir / "data/own/my/dataset/README.md").exists()
    assert not (workdir / "logs").exists() and not (workdir / "data/generated").exists()
    # besides its folder, only the answer store, which every run shares by design (answers are keyed by request)
    assert sorted(p.name for p in (workdir / "data").iterdir() if p.name != "descriptions") == ["own", "store"]


def test_every_reject_record_carries_its_description(own):
    workdir, _ = own
    code = workdir / "data/own/my/code"
    rejects = read_jsonl(workdir / "data/own/my/names/rejects.jsonl") + read_jsonl(code / "rejects.jsonl")
    rejects += [r for p in sorted((code / "tests/rejects").glob("*.jsonl")) for r in read_jsonl(p)]
    assert rejects and {r["reason"] for r in rejects} & {"outvoted", "no_evidence", "tests_failed", "no_tests"}
    assert [r for r in rejects if not r.get("desc")] == []


def test_the_summary_names_next_commands_that_work_for_this_run(own):
    workdir, proc = own
    tail = proc.stderr[proc.stderr.index("EvoSelfCode: ") :]
    assert "Outputs: data/own/my/code/filtered.jsonl" in tail
    assert "  make report DESCS=my.txt\n" in tail
    stats = [line.strip() for line in tail.splitlines() if " stats " in line][0]
    run = subprocess.run(shlex.split(stats), cwd=workdir, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_make_run_passes_settings_of_ones_own_with_config(tmp_path, server):
    # the wall: a bad line stopped `make run DESCS=` with no way to set io.on_bad_line
    workdir = make_workdir(tmp_path, [], config(server.url))
    (workdir / "bad.txt").write_text("Sum a list.\n" + "x" * 5000 + "\nReverse a string.\n")
    (workdir / "my.yaml").write_text(f"api: {{base_url: '{server.url}'}}\nio: {{on_bad_line: skip}}\n")
    args = make_run_args("DESCS=bad.txt", "CONFIG=my.yaml")
    assert args[:5] == ["--profile", "profiles/local", "--configfile", "configs/local.yaml", "my.yaml"]
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args, "-n"], cwd=workdir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    without = [a if a != "my.yaml" else "configs/test.yaml" for a in args]  # the same server, no on_bad_line
    proc = subprocess.run([sys.executable, "-m", "snakemake", *without, "-n"], cwd=workdir, capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode != 0 and "bad.txt:2: desc_too_long" in proc.stdout + proc.stderr  # -n: stdout


def test_kept_functions_are_formatted_and_raw_records_keep_the_models_text(tmp_path, server):
    # the model continues `def name(` with a space, as Qwen does ("def f( x):"); [[code:...]] makes it write that
    body = " values):\n    total=0\n    for v in values :\n        total+=v*2\n    return total\n"
    directive = f"[[code:{base64.b64encode(body.encode()).decode()}]]"
    descs = [{"id": f"f{i}", "desc": f"Task {i}: double each value and add them up {directive}"} for i in range(2)]
    workdir = make_workdir(tmp_path, descs, config(server.url, "tests: {enabled: false}"))
    proc = snakemake(workdir, "data/generated/code/filtered.jsonl")
    assert proc.returncode == 0, proc.stderr[-4000:]
    kept = read_jsonl(workdir / "data/generated/code/filtered.jsonl")
    raw = {(r["desc_id"], r["func_name"]): r for r in read_jsonl(workdir / "data/generated/code/raw.jsonl")}
    assert kept
    for record in kept:
        original = raw[record["meta"]["desc_id"], record["func_name"]]
        assert original["code"].startswith(f"def {record['func_name']}( values):")  # the model's text, as written
        assert record["code"] == ruff_format([original["code"]])[0] != original["code"]
        assert record["code"].startswith(f"def {record['func_name']}(values):\n    total = 0\n")


def test_a_run_that_keeps_nothing_finishes_with_its_summary_and_an_empty_dataset(tmp_path, server):
    datasets = pytest.importorskip("datasets")
    import pyarrow.parquet as pq

    never_parses = base64.b64encode(b" x):\n    return (x +\n").decode()
    broken = f"[[code:{never_parses}]]"
    descs = [{"id": f"z{i}", "desc": f"Task {i}: add one to a number {broken}"} for i in range(3)]
    workdir = make_workdir(tmp_path, descs, config(server.url))
    proc = snakemake(workdir)  # the default target, as `make run`
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "functions  0 kept of" in proc.stderr and "  why none   all " in proc.stderr
    assert "Dataset: data/generated/dataset/ (empty: its card says why" in proc.stderr and "Next:" in proc.stderr
    folder = workdir / "data/generated/dataset"
    assert "**This dataset is empty**: all " in (folder / "README.md").read_text()
    # datasets makes no in-memory split of zero rows ("corresponds to no data"); streamed, it loads, typed, empty
    ds = datasets.load_dataset(str(folder), split="train", streaming=True)
    assert list(ds) == [] and {"desc", "func_name", "code", "meta", "tests"} <= set(ds.features)
    table = pq.read_table(folder / "data")
    assert table.num_rows == 0 and table.schema.names == list(ds.features)
