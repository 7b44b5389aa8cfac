"""Crash and resume: SIGKILL the whole Snakemake process tree at several points, rerun with --rerun-incomplete.

One story, told once: kill during name generation, rerun and kill during code generation, rerun and kill during
test generation, rerun and kill during test execution, rerun and kill during the final merge, rerun to the end
(each rerun after `snakemake --unlock`, as Snakemake asks after a kill).
The server answers a set number of requests and then holds the rest unanswered, so at each kill exactly
those answers exist, and the answer store must have kept every one of them.
"""

import json

import pytest
from conftest import snakemake
from fakeserver import ServerProcess
from reliability import (
    DESCRIPTIONS,
    MODES,
    TARGET,
    hidden_files,
    kill_tree,
    outputs,
    reference,
    reference_requests,
    saved_answers,
    start_snakemake,
    wait_for,
    workdir,
)

pytestmark = pytest.mark.workflow

NAME_REQUESTS = len(DESCRIPTIONS) * MODES
ANSWERED_BEFORE_KILL = 3  # per stage


def code_requests(clean: dict[str, str]) -> int:
    """One code request per selected name: the distinct names of the reference's raw code samples."""
    return len(
        {(r["desc_id"], r["func_name"]) for r in map(json.loads, clean["data/generated/code/raw.jsonl"].splitlines())}
    )


def rerun(root, *args):
    """What a user does after a crash: release Snakemake's stale lock, then rerun the incomplete jobs."""
    unlock = snakemake(root, "--unlock", TARGET)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    return start_snakemake(root, TARGET, "--rerun-incomplete")


def kill_when_held(root, srv, proc, answered: int) -> None:
    """Kill once the server holds a request after `answered` answers and every answer is on disk."""
    held = srv.stats()["held"]

    def ready() -> bool:
        return saved_answers(root) >= answered and srv.stats()["held"] > held

    wait_for(ready, proc, what=f"{answered} answers saved and the server holding the next")
    kill_tree(proc)


def after_kill(root, srv) -> dict:
    return {"outputs": outputs(root), "hidden": hidden_files(root), "stats": srv.stats(), "saved": saved_answers(root)}


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    clean = reference(tmp_path_factory.mktemp("reference"))
    seen = {}
    with ServerProcess("--seed", "0", "--hold-after", str(ANSWERED_BEFORE_KILL)) as srv:
        root = workdir(tmp_path_factory.mktemp("crash"), srv.url)

        proc = start_snakemake(root, TARGET)
        kill_when_held(root, srv, proc, ANSWERED_BEFORE_KILL)
        seen["names"] = after_kill(root, srv)

        srv.hold(NAME_REQUESTS + ANSWERED_BEFORE_KILL)
        proc = rerun(root)
        kill_when_held(root, srv, proc, NAME_REQUESTS + ANSWERED_BEFORE_KILL)
        seen["code"] = after_kill(root, srv)

        # the third kill comes once one test request is answered after every name and code request
        before_tests = NAME_REQUESTS + code_requests(clean)
        srv.hold(before_tests + 1)
        proc = rerun(root)
        kill_when_held(root, srv, proc, before_tests + 1)
        seen["tests"] = after_kill(root, srv)

        srv.release()
        proc = rerun(root)
        wait_for(lambda: any((root / "logs/execute_tests").glob("*.log")), proc, what="a test execution job")
        kill_tree(proc)
        seen["execute"] = after_kill(root, srv)

        proc = rerun(root)
        wait_for(lambda: (root / "logs/merge_code/all.log").exists(), proc, what="the final merge")
        kill_tree(proc)
        seen["merge"] = after_kill(root, srv)

        proc = rerun(root)
        log = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, log[-4000:]
        seen["end"] = after_kill(root, srv)
    return clean, seen


@pytest.mark.parametrize("point", ["names", "code", "tests", "execute", "merge"])
def test_a_kill_leaves_no_file_that_looks_complete_but_is_not(story, point):
    clean, seen = story
    files = seen[point]["outputs"]
    assert files, "the kill came before anything was written"
    assert {name: clean.get(name) for name in files} == files


def test_the_store_holds_the_answers_at_each_generation_kill(story):
    _, seen = story
    assert seen["names"]["saved"] == ANSWERED_BEFORE_KILL  # every answer the server gave, and only those
    assert seen["code"]["saved"] == NAME_REQUESTS + ANSWERED_BEFORE_KILL  # the second kill came during code generation
    assert not any(f.endswith(".answers") for point in ("names", "code") for f in seen[point]["hidden"])  # shared
    assert "data/generated/code/raw.jsonl" not in seen["code"]["outputs"]
    assert seen["code"]["stats"]["held"] > seen["names"]["stats"]["held"] > 0  # killed while waiting on the server
    assert seen["tests"]["saved"] == seen["tests"]["stats"]["successes"] > seen["code"]["saved"]


def test_the_final_outputs_equal_an_uninterrupted_run(story):
    clean, seen = story
    assert seen["end"]["outputs"] == clean
    assert not [f for f in seen["end"]["hidden"] if f.endswith(".answers")]


def test_no_request_answered_before_a_kill_is_asked_again(story):
    _, seen = story
    stats = seen["end"]["stats"]
    assert stats["max_successes_per_body"] == 1
    assert stats["successes"] == reference_requests()
    assert seen["merge"]["stats"]["successes"] == stats["successes"]  # the rerun after the merge asked nothing
