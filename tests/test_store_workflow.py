"""Every answer is asked once: settings changes after a finished run, through Snakemake and the fake server."""

import json
import shutil

import pytest
from conftest import make_workdir, snakemake
from fakeserver import FakeServer, Options

from evoselfcode.datagen.pipeline.store import AnswerStore
from evoselfcode.datagen.readers import read_jsonl

pytestmark = pytest.mark.workflow

DESCRIPTIONS = [{"id": f"s{i}", "desc": f"Task {i}: return the {w} of a list of numbers."} for i, w in
                enumerate(["sum", "mean", "median", "maximum", "minimum", "product"])]  # fmt: skip
TARGET = "data/generated/code/filtered.jsonl"
BASE = {
    "api": {"timeout": {"read": 5}, "backoff": {"base": 0.05, "max": 0.2}},
    "namegen": {"n": 2, "select": {"per_desc": 4}},  # every kept name goes on: a stricter filter only drops
    "io": {"shard_size": 3, "concurrency": 4},
}


def merged(base: dict, change: dict) -> dict:
    out = json.loads(json.dumps(base))
    for key, value in change.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def config_text(url: str, change: dict) -> str:
    return json.dumps(merged(merged(BASE, {"api": {"base_url": url}}), change))  # YAML reads JSON


def data_files(workdir) -> dict[str, bytes]:
    """The run's data and metrics files, which must not depend on where an answer came from (timings do)."""
    root = workdir / "data/generated"
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".jsonl", ".json") and "timing" not in p.name and "timing" not in p.parts
    }


def timings(workdir, part: str) -> list[dict]:
    return [r for p in sorted((workdir / "data/generated" / part).glob("*.jsonl")) for r in read_jsonl(p)]


def run(workdir, server) -> int:
    """Snakemake to the target; the completion requests it sent."""
    before = server.stats()["requests"]
    proc = snakemake(workdir, TARGET)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return server.stats()["requests"] - before


@pytest.fixture(scope="module")
def server():
    with FakeServer(Options(seed=3)) as srv:
        yield srv


@pytest.fixture(scope="module")
def finished(tmp_path_factory, server):
    workdir = make_workdir(tmp_path_factory.mktemp("store"), DESCRIPTIONS, config_text(server.url, {}))
    assert run(workdir, server) > 0
    return workdir


def rerun_with(finished, tmp_path, server, change: dict):
    """The finished run, copied (store, outputs, Snakemake's records) and run again with `change`."""
    workdir = tmp_path / "changed"
    shutil.copytree(finished, workdir, symlinks=True)
    (workdir / "configs/test.yaml").write_text(config_text(server.url, change))
    return workdir, run(workdir, server)


@pytest.mark.parametrize(
    ("change", "fewer_names"),
    [
        ({"filters": {"name_min_len": 11}}, True),  # a name filter
        ({"filters": {"min_code_len": 200}}, False),  # a code filter
        ({"execution": {"min_pass_rate": 0.9}}, False),  # a test threshold
        ({"namegen": {"select": {"per_desc": 1}}}, True),  # the selection
        ({"io": {"shard_size": 2, "concurrency": 4}}, False),  # the sharding
    ],
    ids=["name-filter", "code-filter", "test-threshold", "selection", "shard-size"],
)
def test_a_change_that_builds_no_new_request_asks_nothing_and_writes_what_a_fresh_run_writes(
    finished, tmp_path, server, change, fewer_names
):
    stored = set(AnswerStore(finished / "data/store").keys())
    changed, asked = rerun_with(finished, tmp_path, server, change)
    assert asked == len(used(changed) - stored)  # only requests never asked before
    assert all(t["key"] in stored for p in ("names/timing", "code/timing") for t in timings(changed, p))
    # per-function tests follow the shard's dedup: where other copies are kept, their tests are new requests
    # fewer names: a description whose tests showed a dropped name's signature gets tests for the one it has now
    new_tests = [t for t in timings(changed, "code/tests/timing") if t["key"] not in stored]
    assert asked == (len({t["desc_id"] for t in new_tests}) if fewer_names else 0)
    (tmp_path / "fresh").mkdir()
    fresh = make_workdir(tmp_path / "fresh", DESCRIPTIONS, config_text(server.url, change))
    assert run(fresh, server) > 0
    assert data_files(changed) == data_files(fresh)
    assert data_files(changed) != data_files(finished) or "execution" in change  # the change did something


def test_a_new_code_temperature_asks_the_code_requests_and_what_follows_them_only(finished, tmp_path, server):
    stored = set(AnswerStore(finished / "data/store").keys())
    changed, asked = rerun_with(finished, tmp_path, server, {"codegen": {"temperature": 0.9}})
    names, code = timings(changed, "names/timing"), timings(changed, "code/timing")
    assert names and all(t["key"] in stored for t in names)
    assert code and not any(t["key"] in stored for t in code)
    assert asked == len(used(changed) - stored) >= len(code)


def test_another_model_reuses_no_answer(finished, tmp_path, server):
    stored = set(AnswerStore(finished / "data/store").keys())
    changed, asked = rerun_with(finished, tmp_path, server, {"api": {"model": "another-coder"}})
    every = used(changed)
    assert every and not every & stored
    assert asked == len(every)


def test_the_store_command_shows_the_answers_and_prunes_what_no_output_uses(finished, tmp_path, server):
    import subprocess
    import sys

    changed, _ = rerun_with(finished, tmp_path, server, {"namegen": {"select": {"per_desc": 1}}})
    cmd = [sys.executable, "-m", "evoselfcode", "store", "--config", "configs/datagen.yaml",
           "--config", "configs/test.yaml"]  # fmt: skip
    shown = subprocess.run(cmd, cwd=changed, capture_output=True, text=True, check=True).stdout
    every = [t for p in ("names/timing", "code/timing", "code/tests/timing") for t in timings(changed, p)]
    assert f"{len(every)} answered requests, {sum(t['resumed'] for t in every)} from the store" in shown
    before = int(shown.split(": ", 1)[1].split(" answers")[0])
    pruned = subprocess.run([*cmd, "--prune"], cwd=changed, capture_output=True, text=True, check=True).stdout
    assert f"pruned {before - len(used(changed))} answers" in pruned  # the code requests of names now unselected
    assert before > len(used(changed))
    assert run(changed, server) == 0  # what the outputs use stays


def used(workdir) -> set[str]:
    return {t["key"] for p in ("names/timing", "code/timing", "code/tests/timing") for t in timings(workdir, p)}


def test_two_runs_at_once_and_a_kill_mid_write_leave_a_store_a_third_run_reads_right(tmp_path):
    from reliability import kill_tree, start_snakemake, wait_for

    store = tmp_path / "shared-store"
    change = {"store": {"dir": str(store)}, "io": {"shard_size": 2, "concurrency": 4}}
    with FakeServer(Options(seed=3, latency_s=0.05)) as srv:
        dirs = []
        for name in ("a", "b", "killed", "third"):
            (tmp_path / name).mkdir()
            dirs.append(make_workdir(tmp_path / name, DESCRIPTIONS, config_text(srv.url, change)))
        a, b, killed, third = dirs
        # two runs with different targets write the same answers into one store at once
        runs = [
            start_snakemake(a, "-j", "4", TARGET),
            start_snakemake(b, "-j", "4", "data/generated/names/metrics.json"),
        ]
        victim = start_snakemake(killed, "-j", "4", TARGET)
        wait_for(lambda: len(list(store.glob("answers/*/*/*.json"))) > 10, victim, what="answers in the store")
        kill_tree(victim)  # mid-write: some of its answers are in flight, maybe half-written aside
        for proc in runs:
            out = proc.communicate(timeout=600)[0]
            assert proc.returncode == 0, out[-3000:]
        assert run(third, srv) == 0  # every answer was stored by the others
    with FakeServer(Options(seed=3)) as srv:  # the reference: an empty store of its own
        (tmp_path / "fresh").mkdir()
        fresh = make_workdir(tmp_path / "fresh", DESCRIPTIONS, config_text(srv.url, change | {"store": {}}))
        assert run(fresh, srv) > 0
    assert data_files(third) == data_files(fresh) == data_files(a)


def test_a_scoring_job_killed_mid_way_resumes_without_asking_what_it_scored(tmp_path):
    from fakeserver import ServerProcess
    from reliability import kill_tree, start_snakemake, wait_for

    scored = "data/generated/code/scored.jsonl"
    change = {"scoring": {"enabled": True}, "api": {"model": "fake-coder"}}
    with ServerProcess("--seed", "3") as srv:
        (tmp_path / "reference").mkdir()
        reference = make_workdir(tmp_path / "reference", DESCRIPTIONS, config_text(srv.url, change))
        assert snakemake(reference, scored).returncode == 0
        scores = sum(1 for _ in read_jsonl(reference / "data/generated/code/score_timing.jsonl"))
        assert scores >= 2
        before_scoring = srv.stats()["successes"] - scores
    with ServerProcess("--seed", "3", "--hold-after", str(before_scoring + 1)) as srv:
        (tmp_path / "killed").mkdir()
        root = make_workdir(tmp_path / "killed", DESCRIPTIONS, config_text(srv.url, change))
        proc = start_snakemake(root, scored)
        store = AnswerStore(root / "data/store")
        wait_for(lambda: store.size().answers >= before_scoring + 1 and srv.stats()["held"] > 0, proc,
                 what="a score answered and the next held")  # fmt: skip
        kill_tree(proc)
        srv.release()
        assert snakemake(root, "--unlock", scored).returncode == 0
        proc = snakemake(root, scored, "--rerun-incomplete")
        assert proc.returncode == 0, proc.stderr[-3000:]
        stats = srv.stats()
    assert stats["max_successes_per_body"] == 1  # nothing answered before the kill was asked again
    assert (root / scored).read_bytes() == (reference / scored).read_bytes()
