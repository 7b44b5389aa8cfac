"""The whole workflow on a real SLURM scheduler with profiles/slurm, against the fake server as a process.

The tests marked slurm need running daemons: `scripts/slurm-up.sh` (root, Debian) starts a single-node
cluster, `make test-slurm` wraps it; without them they are skipped.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import make_workdir, snakemake

from evoselfcode.datagen.pipeline.store import AnswerStore
from evoselfcode.datagen.readers import read_jsonl
from evoselfcode.datagen.schemas import CodeRecord, NameCandidate

pytestmark = pytest.mark.workflow

DESCRIPTIONS = [{"id": f"s{i}", "desc": f"Task {i}: return the {w} of a list of numbers."} for i, w in
                enumerate(["sum", "mean", "median", "maximum", "product"])]  # fmt: skip
TARGET = "data/generated/code/filtered.jsonl"


def slurm(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def partition() -> str:
    """The cluster's default partition, once a node in it is up; skips the module otherwise."""
    if shutil.which("sinfo") is None:
        pytest.skip("SLURM is not installed (no sinfo): run scripts/slurm-up.sh or make test-slurm")
    try:
        proc = slurm("sinfo", "-h", "-o", "%P %t")
    except subprocess.TimeoutExpired:
        pytest.skip("sinfo did not answer in 30 s: is slurmctld up? run scripts/slurm-up.sh")
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"SLURM daemons are not up (sinfo: {reason}): run scripts/slurm-up.sh")
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    usable = [p for p, state in rows if state.rstrip("*~#") in ("idle", "mix", "alloc")]
    if not usable:
        pytest.skip(f"no SLURM node is up (sinfo: {proc.stdout.strip()!r}): run scripts/slurm-up.sh")
    return next((p for p in usable if p.endswith("*")), usable[0]).rstrip("*")


@pytest.fixture(scope="module")
def server_url():
    script = Path(__file__).with_name("fakeserver.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--seed", "1"], stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("fakeserver listening on "), line
        yield line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def cluster_profile(workdir: Path, partition: str) -> None:
    """The shipped profile with this cluster's partition and an account (without slurmdbd any name works)."""
    path = workdir / "profiles/slurm/config.yaml"
    profile = yaml.safe_load(path.read_text())
    mine = {"slurm_partition": partition, "slurm_account": "evoselfcode"}  # the CHANGE_ME a user replaces
    pairs = [r.split("=", 1) for r in profile["default-resources"]]
    profile["default-resources"] = [f"{k}={mine.get(k, v)}" for k, v in pairs]
    path.write_text(yaml.safe_dump(profile, sort_keys=False))


@pytest.fixture(scope="module")
def done(tmp_path_factory, partition, server_url):
    config = f"""
api: {{base_url: "{server_url}", timeout: {{read: 10}}, backoff: {{base: 0.05, max: 0.2}}}}
namegen: {{n: 2}}
io: {{shard_size: 3, concurrency: 4}}
"""
    workdir = make_workdir(tmp_path_factory.mktemp("slurm"), DESCRIPTIONS, config)
    cluster_profile(workdir, partition)
    proc = snakemake(
        workdir,
        *("--profile", "profiles/slurm", TARGET),
        # a job takes seconds here: check soon, and keep the logs of jobs that succeeded to look at
        *("--slurm-init-seconds-before-status-checks", "1", "--slurm-keep-successful-logs"),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return workdir, proc


@pytest.mark.slurm
def test_outputs_exist_and_validate(done):
    workdir, _ = done
    records = [CodeRecord.model_validate(r) for r in read_jsonl(workdir / TARGET)]
    assert records and all(r.source in ("FIM", "L2R") for r in records)
    kept = [NameCandidate.model_validate(r) for r in read_jsonl(workdir / "data/generated/names/filtered.jsonl")]
    assert {k.desc_id for k in kept} == {d["id"] for d in DESCRIPTIONS}
    assert (workdir / "data/generated/code/metrics.json").exists()
    # every node's jobs wrote their answers to the one store on shared storage, keyed as the timings say
    timings = [r for p in (workdir / "data/generated").rglob("timing/*.jsonl") for r in read_jsonl(p)]
    store = AnswerStore(workdir / "data/store")
    assert timings and all(store.get(t["key"]) for t in timings)


@pytest.mark.slurm
def test_every_job_ran_as_a_slurm_job(done):
    workdir, _ = done
    # the plugin writes each job's log to <logdir>/rule_<rule>/[<wildcards>/]<SLURM job id>.log
    logs = list((workdir / "logs/slurm").rglob("*.log"))
    rules = {p.relative_to(workdir / "logs/slurm").parts[0].removeprefix("rule_") for p in logs}
    per_shard = {"split_descriptions", "generate_names", "filter_names", "generate_code", "filter_code"}
    per_shard |= {"generate_tests", "execute_tests"}
    assert per_shard | {"merge_code"} <= rules
    ids = {p.stem for p in logs}
    assert len(ids) == 2 * len(per_shard) + 2, ids  # 2 shards x the per-shard rules, plus quarantine and merge_code
    local = {"merge_names", "names_metrics", "merge_code_parts"}
    assert not local & rules  # localrules: seconds of I/O
    # slurmctld itself knows them as finished jobs (squeue shows them for MinJobAge after the end)
    queue = slurm("squeue", "-h", "--states=all", "-o", "%i|%T")
    states = dict(line.split("|") for line in queue.stdout.split())
    assert {states.get(i) for i in ids} == {"COMPLETED"}, (ids, states)


def test_the_profile_plans_every_job_without_a_cluster(tmp_path):
    # a dry run checks the profile's keys against Snakemake and the plugin; it submits nothing
    workdir = make_workdir(tmp_path, DESCRIPTIONS, "io: {shard_size: 3}")
    proc = snakemake(workdir, "--profile", "profiles/slurm", "-n", TARGET, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "generate_names                 2" in proc.stdout + proc.stderr
