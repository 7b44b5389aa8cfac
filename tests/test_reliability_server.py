"""Server down, hung, crashed and back; failures that outlast their retries and the failure budget."""

import socket
import time

import pytest
from conftest import snakemake
from fakeserver import ServerProcess
from reliability import TARGET, outputs, read_jsonl, reference, reference_requests, workdir

pytestmark = pytest.mark.workflow

BOUND_S = 60  # a job must give up well within this, however the server misbehaves


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(root, *args, **kwargs):
    started = time.monotonic()
    proc = snakemake(root, *args, **kwargs)
    return proc, time.monotonic() - started


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return reference(tmp_path_factory.mktemp("reference"))


def test_down_then_hung_then_back(tmp_path, clean):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    root = workdir(tmp_path, url)

    proc, took = timed(root, TARGET)  # nothing listens on the port
    assert proc.returncode != 0 and took < BOUND_S
    assert f"circuit open for {url}" in proc.stderr and "connection to" in proc.stderr

    with ServerProcess("--hold-after", "5", port=port) as hung:  # answers 5 requests, then never again
        proc, took = timed(root, TARGET)
        answered = hung.stats()["successes"]
        hung.kill()
    assert proc.returncode != 0 and took < BOUND_S
    assert f"circuit open for {url}" in proc.stderr and "within 1s" in proc.stderr
    assert answered == 5

    with ServerProcess(port=port) as back:
        proc = snakemake(root, TARGET)
        stats = back.stats()
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert outputs(root) == clean
    assert stats["successes"] == reference_requests() - answered  # the 5 answers came from the answer store


BROKEN = [{"id": f"ok{i}", "desc": f"Return the {w} of a list."} for i, w in enumerate(["sum", "mean", "median"])]
BROKEN += [{"id": "broken", "desc": "This one always fails. [[always:500]]"}]
BUDGET = "api: {{max_retries: 2}}\nio: {{max_failure_rate: {rate}, shard_size: 4}}"


def test_failures_outlasting_retries_are_recorded_and_the_budget_decides(tmp_path):
    with ServerProcess() as srv:
        root = workdir(tmp_path, srv.url, descriptions=BROKEN)
        (root / "configs/budget.yaml").write_text(BUDGET.format(rate=0.2))
        configs = ("configs/test.yaml", "configs/budget.yaml")
        proc = snakemake(root, "data/generated/names/failures.jsonl", configs=configs)
        assert proc.returncode != 0  # 2 of 8 requests failed: 25% > 20%
        assert "2 of 8 names requests failed after retries, more than io.max_failure_rate=0.2" in proc.stderr
        assert f"ServerError: {srv.url}/v1/completions answered 500" in proc.stderr
        first = srv.stats()

        (root / "configs/budget.yaml").write_text(BUDGET.format(rate=0.3))
        proc = snakemake(root, "data/generated/names/failures.jsonl", configs=configs)
        assert proc.returncode == 0, proc.stderr[-4000:]
        second = srv.stats()
    assert first["requests"] == 6 + 2 * 3  # 6 answered at once; 2 failing, each tried 1 + max_retries times
    assert second["requests"] - first["requests"] == 2 * 3  # the 6 answers came from the answer store
    failures = read_jsonl(root / "data/generated/names/failures.jsonl")
    assert sorted((f["desc_id"], f["mode"], f["error"]) for f in failures) == [
        ("broken", "FIM", "ServerError"),
        ("broken", "L2R", "ServerError"),
    ]
    assert all("answered 500" in f["message"] and srv.url in f["message"] for f in failures)
    raw = read_jsonl(root / "data/generated/names/raw/00000.jsonl")
    assert {r["desc_id"] for r in raw} == {"ok0", "ok1", "ok2"}  # with the failures: every description
