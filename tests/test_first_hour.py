"""A new user's first hour: a run that says what it did, readable files, clear stops (Snakemake as a process)."""

import glob
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, make_workdir, snakemake
from fakeserver import FakeServer, Options

from evoselfcode.cli import main as cli_main
from evoselfcode.datagen.readers import read_jsonl

pytestmark = pytest.mark.workflow

DESCRIPTIONS = [{"id": f"t{i}", "desc": f"Task {i}: return the {w} of a list of numbers."} for i, w in
                enumerate(["sum", "mean", "median", "mode", "range"])]  # fmt: skip


def config(url: str) -> str:
    return f"""
api: {{base_url: "{url}", timeout: {{read: 5}}, backoff: {{base: 0.05, max: 0.2}}}}
namegen: {{n: 2}}
io: {{shard_size: 2, concurrency: 2}}
"""


@pytest.fixture(scope="module")
def server():
    with FakeServer(Options(seed=3)) as srv:
        yield srv


@pytest.fixture(scope="module")
def done(tmp_path_factory, server):
    """The default target, as `make run` builds it, under the usual umask 0022."""
    workdir = make_workdir(tmp_path_factory.mktemp("first"), DESCRIPTIONS, config(server.url))
    old = os.umask(0o022)
    try:
        proc = snakemake(workdir)
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir, proc


def readme_output_files() -> list[str]:
    """The paths in the README's output table, one example of each pattern (scoring's files need scoring on)."""
    text = (ROOT / "README.md").read_text()
    table = text.split("## Output files", 1)[1].strip().split("\n\n", 1)[0]
    paths = []
    for row in table.splitlines()[2:]:
        path = row.split("`")[1]
        if "scor" in path:
            continue
        path = path.replace("{shard}", "00000").replace("{rule}", "generate_names").replace("{digest}", "*")
        paths += [path.replace("{names,code}", part) for part in ("names", "code")] if "{names," in path else [path]
    return paths


def test_the_default_target_makes_every_file_of_the_readme_table(done):
    workdir, _ = done
    files = readme_output_files()
    assert len(files) >= 14
    assert [f for f in files if not glob.glob(str(workdir / f))] == []
    assert sorted(p.name for p in (workdir / "data/generated/report").iterdir())  # the plots of the report


def test_make_run_builds_the_default_target():
    out = subprocess.run(["make", "-n", "run", f"VENV={Path(sys.executable).parent.parent}"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    command = [line.strip() for line in out.splitlines() if "snakemake" in line][-1]
    assert command.endswith("snakemake --profile profiles/local"), command  # no file named: the default target


def test_outputs_are_readable_by_everyone_under_umask_0022(done):
    workdir, _ = done
    modes = {str(p.relative_to(workdir)): stat.S_IMODE(p.stat().st_mode)
             for p in (workdir / "data").rglob("*") if not p.name.startswith(".")}  # fmt: skip
    assert len(modes) > 20 and "data/generated/dataset" in modes
    wrong = {path: oct(mode) for path, mode in modes.items() if mode != (0o755 if (workdir / path).is_dir() else 0o644)}
    assert wrong == {}


def test_the_run_ends_with_a_summary_of_what_it_made(done):
    workdir, proc = done
    names = json.loads((workdir / "data/generated/names/metrics.json").read_text())
    kept = list(read_jsonl(workdir / "data/generated/code/filtered.jsonl"))
    raw = list(read_jsonl(workdir / "data/generated/code/raw.jsonl"))
    tail = proc.stderr[proc.stderr.index("EvoSelfCode: ") :]
    assert f"EvoSelfCode: {len(DESCRIPTIONS)} descriptions" in tail
    assert f"functions  {len(kept)} kept of {len(raw)} generated" in tail
    assert f"A/B        {names['verdict']}\n" in tail
    assert "Outputs: data/generated/code/filtered.jsonl" in tail and "Plots:   data/generated/report/" in tail
    assert "Dataset: data/generated/dataset/" in tail
    for command in ("evoselfcode stats data/generated/code/filtered.jsonl", "evoselfcode sample ", "--report"):
        assert command in tail
    assert len(tail.split("Complete log")[0].splitlines()) <= 14  # a few lines, not a screen
    assert "by agreement:" in tail and "asked of the server" in tail


def test_the_summary_command_prints_the_same(done, capsys, monkeypatch):
    workdir, proc = done
    monkeypatch.chdir(workdir)
    assert cli_main(["summary"]) == 0
    assert capsys.readouterr().out in proc.stderr


def test_the_summary_counts_failed_test_requests_and_names_their_folder(tmp_path):
    from evoselfcode.summary import summary

    names, code = tmp_path / "names", tmp_path / "code"
    (code / "tests/failures").mkdir(parents=True)
    names.mkdir()
    (names / "metrics.json").write_text(json.dumps({"descriptions": 1, "modes": {}, "verdict": None,
                                                    "failed_requests": 1}))  # fmt: skip
    # failed_requests: the code requests and the tests ones, as merge_code counts them
    (code / "metrics.json").write_text(json.dumps({"accounting": {"kept": 0, "generated": 0}, "by_source": {},
                                                   "failed_requests": 2}))  # fmt: skip
    (names / "failures.jsonl").write_text("{}\n")
    text = summary(names, code)
    assert f"3 requests after retries, in {names}/failures.jsonl, {code}/tests/failures\n" in text


def test_the_summary_names_the_input_set_aside_before_any_request(tmp_path):
    from evoselfcode.summary import summary

    names, code = tmp_path / "names", tmp_path / "code"
    names.mkdir()
    code.mkdir()
    metrics = {"descriptions": 7, "modes": {}, "verdict": None, "quarantined_input_lines": 2,
               "contaminated_descriptions": {"humaneval": 3, "mbpp": 1}}  # fmt: skip
    (names / "metrics.json").write_text(json.dumps(metrics))
    (code / "metrics.json").write_text(json.dumps({"accounting": {"kept": 0, "generated": 0}, "by_source": {}}))
    text = summary(names, code)
    assert "EvoSelfCode: 7 descriptions\n" in text
    assert "  input      2 lines quarantined (bad lines), 4 descriptions set aside (benchmark matches)\n" in text
    (names / "metrics.json").write_text(json.dumps({**metrics, "contaminated_descriptions": {}}))
    assert "  input      2 lines quarantined (bad lines)\n" in summary(names, code)  # no "0 set aside"


def test_a_long_job_shows_life_on_a_console_that_is_not_a_terminal(done):
    _, proc = done
    # the first progress line of each generation job, naming the job's log
    assert re.search(r"^\d\d:\d\d:\d\d logs/generate_names/00000\.log: 0/\d+ requests", proc.stderr, re.M)
    assert re.search(r"^\d\d:\d\d:\d\d logs/generate_code/00002\.log: ", proc.stderr, re.M)


def test_a_dry_run_or_another_target_prints_no_summary(tmp_path, server):
    workdir = make_workdir(tmp_path, DESCRIPTIONS, config(server.url))
    dry = snakemake(workdir, "-n")
    assert dry.returncode == 0 and "EvoSelfCode:" not in dry.stderr + dry.stdout
    shard = snakemake(workdir, "data/shards/00000.jsonl")
    assert shard.returncode == 0 and "EvoSelfCode:" not in shard.stderr


def no_job_ran(workdir) -> bool:
    """data/shards holds only the benchmark index, which parsing the workflow writes (rules/common.smk)."""
    return [p.name for p in (workdir / "data/shards").iterdir()] == ["benchmarks"]


def test_the_production_default_that_does_not_resolve_names_both_ways_out(tmp_path):
    # the trap: the local profile with a --configfile of one's own drops configs/local.yaml
    workdir = make_workdir(tmp_path, DESCRIPTIONS, "io: {input_desc_path: data/descriptions/sample.jsonl}\n")
    started = time.monotonic()
    proc = snakemake(workdir, "--profile", "profiles/local", configs=("configs/test.yaml",))
    assert proc.returncode != 0
    assert time.monotonic() - started < 120
    assert "api.base_url is still the production default http://qwen2code32-0" in proc.stderr
    assert "set api.base_url" in proc.stderr and "make run DESCS=" in proc.stderr
    assert "--configfile configs/local.yaml my.yaml" in proc.stderr
    assert no_job_ran(workdir)
    dry = snakemake(workdir, "-n", "--profile", "profiles/local", configs=("configs/test.yaml",))
    assert dry.returncode == 0, dry.stderr[-2000:]


def test_the_slurm_profile_refuses_to_submit_with_its_placeholders(tmp_path, server):
    workdir = make_workdir(tmp_path, DESCRIPTIONS, config(server.url))
    proc = snakemake(workdir, "--profile", "profiles/slurm", timeout=300)
    assert proc.returncode != 0
    assert "slurm_account=CHANGE_ME, slurm_partition=CHANGE_ME: set slurm_account and slurm_partition" in proc.stderr
    assert "a dry run (-n) works as it is" in proc.stderr
    assert "sbatch" not in proc.stderr and "Submitted" not in proc.stderr and no_job_ran(workdir)


def test_ctrl_c_ends_with_one_line_on_how_to_resume_and_no_traceback(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it, while requests are in flight."""
    with FakeServer(Options(seed=1, hold_after=0)) as held:  # answers nothing: jobs wait on it
        workdir = make_workdir(tmp_path, DESCRIPTIONS, config(held.url))
        cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "configs/test.yaml"]
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and held.stats()["held"] < 2:
            time.sleep(0.2)
        assert held.stats()["held"] >= 2
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err, err[-6000:]
    # each job that sees the Ctrl-C says so in one line; on a loaded machine Snakemake may stop one first
    # (Snakemake writes its own 'Terminating processes ...' and its newline apart: a job's line may land between)
    said = re.findall(r"([\w-]+): interrupted$", err, re.M)
    assert set(said) <= {"generate-names", "evoselfcode"}, err[-3000:]
    assert err.rstrip().splitlines()[-1].startswith("To resume, run the same command again"), err[-3000:]


def test_the_console_gets_a_progress_line_every_heartbeat_interval():
    import logging

    from evoselfcode.cli import HEARTBEAT_EVERY, _Every

    every = _Every(HEARTBEAT_EVERY)
    times = [0.0, 10.0, 29.0, 31.0, 50.0, 62.0, 200.0]
    passed = []
    for t in times:
        record = logging.LogRecord("evoselfcode.runner.progress", logging.INFO, "", 0, "x", None, None)
        record.created = t
        if every.filter(record):
            passed.append(t)
    assert HEARTBEAT_EVERY == 30.0 and passed == [0.0, 31.0, 62.0, 200.0]


def test_the_suggested_server_start_command_is_one_the_cli_takes(tmp_path):
    from evoselfcode import embedded
    from evoselfcode.cli import _parser
    from evoselfcode.config import Api

    with pytest.raises(embedded.EmbeddedServerError) as info:
        embedded.resolve_base_url(Api(base_url="embedded"), tmp_path / "state.json")
    suggested = str(info.value).split("start one with: ", 1)[1]
    words = suggested.split()
    assert words[:3] == ["python", "-m", "evoselfcode"]
    args = _parser().parse_args(words[3:])  # exits on a missing --config, as the old suggestion did
    assert (args.command, args.action) == ("server", "start") and all(Path(c).exists() for c in args.config)
