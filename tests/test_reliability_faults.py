"""The whole workflow against a faulty server that also demands an API key: same data as a clean run, no leaks."""

from pathlib import Path

import pytest
from conftest import snakemake
from fakeserver import ServerProcess
from reliability import DESCRIPTIONS, TARGET, accounted_ids, outputs, read_jsonl, reference, workdir

pytestmark = pytest.mark.workflow

# The mix: 10% 500, 5% 429, 2% connection reset, 1% stall (past the 1 s read timeout), 1% broken JSON;
# each kind is also acted out once on the first requests, so a short run is sure to meet all of them.
FAULTS = ("--error-rate", "0.10", "--rate-429", "0.05", "--reset-rate", "0.02", "--stall-rate", "0.01",
          "--invalid-json-rate", "0.01", "--retry-after", "0.1", "--stall-s", "1.5", "--each-fault-first")  # fmt: skip
KEY = "sk-evo-test-7f3a9c2e51d04b68"
WRONG_KEY = "sk-evo-wrong-0c41d9e7b2a85f13"
AUTH = 'headers: {Authorization: "Bearer ${EVO_TEST_API_KEY}"}'


def leaks(root: Path, captured: str, secret: str) -> list[str]:
    """Every file under the run's directory (data/, logs/, .snakemake/, ...) and the captured output holding it."""
    files = [p for p in root.rglob("*") if p.is_file()]
    found = [p.relative_to(root).as_posix() for p in files if secret.encode() in p.read_bytes()]
    return found + (["captured output"] if secret in captured else [])


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return reference(tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="module")
def faulty(tmp_path_factory, clean):
    with ServerProcess("--seed", "7", *FAULTS, "--require-header", f"Authorization: Bearer {KEY}") as srv:
        root = workdir(tmp_path_factory.mktemp("faulty"), srv.url, api=AUTH)
        proc = snakemake(root, TARGET, env={"EVO_TEST_API_KEY": KEY})
        stats = srv.stats()
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root, proc, stats


def test_outputs_equal_a_fault_free_run(faulty, clean):
    root, _, _ = faulty
    assert outputs(root) == clean


def test_every_fault_kind_was_met_and_retried(faulty):
    _, _, stats = faulty
    assert {"server_error", "rate_limited", "reset", "stall", "invalid_json"} <= stats["faults"].keys()
    assert stats["requests"] > stats["successes"] == stats["bodies"]


def test_every_description_is_accounted_for_and_nothing_failed(faulty):
    root, _, _ = faulty
    assert accounted_ids(root) == {d["id"] for d in DESCRIPTIONS}
    assert not read_jsonl(root / "data/generated/names/failures.jsonl")
    assert not read_jsonl(root / "data/generated/code/failures.jsonl")


def test_the_api_key_is_in_no_file_and_no_output(faulty):
    root, proc, _ = faulty
    assert not leaks(root, proc.stdout + proc.stderr, KEY)


def test_a_rejected_key_fails_the_job_without_echoing_it(tmp_path):
    # the server's 401 body repeats the credentials it got, as some real servers do
    with ServerProcess("--require-header", f"Authorization: Bearer {KEY}") as srv:
        root = workdir(tmp_path, srv.url, api=AUTH)
        proc = snakemake(root, "data/generated/names/raw/00000.jsonl", env={"EVO_TEST_API_KEY": WRONG_KEY})
        stats = srv.stats()
    assert proc.returncode != 0
    assert stats["refused"] == 8  # 401 is not retried: 4 descriptions x 2 modes, once each
    assert "401" in proc.stderr and "api.headers" in proc.stderr and "io.max_failure_rate" in proc.stderr
    assert not leaks(root, proc.stdout + proc.stderr, WRONG_KEY)
