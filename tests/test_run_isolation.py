"""Runs do not share files: the quick start (profiles/local, configs/local.yaml) and a production-config run each
write their own folders, so neither's failed jobs (whose outputs Snakemake removes) touch the other's files."""

import hashlib
import socket

import pytest
from conftest import make_workdir, snakemake
from fakeserver import FakeServer, Options

pytestmark = pytest.mark.workflow

DESCRIPTIONS = [{"id": f"q{i}", "desc": f"Task {i}: return the {w} of a list of numbers."} for i, w in
                enumerate(["sum", "mean", "median", "maximum", "product"])]  # fmt: skip
# The quick start as `make run` starts it, its server swapped for the fake one (the profile's configfile is
# replaced by a --configfile, so configs/local.yaml is named again first).
QUICK = ("--profile", "profiles/local")
QUICK_CONFIGS = ("configs/local.yaml", "configs/server.yaml")
PROD_CONFIGS = ("configs/datagen.yaml", "configs/server.yaml")


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once the socket is closed


def use_server(workdir, url: str) -> None:
    (workdir / "configs/server.yaml").write_text(
        f"api: {{base_url: '{url}', max_retries: 0, timeout: {{read: 5}}, backoff: {{base: 0.05, max: 0.1}}}}\n"
        "namegen: {n: 2}\nio: {shard_size: 2}\n"
    )


def files(workdir, *folders: str) -> dict[str, str]:
    """Every file under the folders (hidden ones too: the journals), with a digest of its bytes."""
    found = {}
    for folder in folders:
        for path in sorted((workdir / folder).rglob("*")):
            if path.is_file():
                found[str(path.relative_to(workdir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def server():
    with FakeServer(Options(seed=4)) as srv:
        yield srv


def test_the_quick_start_and_a_production_run_leave_each_others_files_untouched(tmp_path, server):
    workdir = make_workdir(tmp_path, DESCRIPTIONS)
    use_server(workdir, server.url)
    quick = snakemake(workdir, *QUICK, configs=QUICK_CONFIGS)
    assert quick.returncode == 0, quick.stderr[-3000:]
    quick_files = files(workdir, "data/quickstart")
    assert "data/quickstart/shards/00000.jsonl" in quick_files and "data/quickstart/dataset/README.md" in quick_files
    assert not (workdir / "data/shards").exists() and not (workdir / "data/generated").exists()
    assert not (workdir / "logs").exists()  # the quick start's logs are in data/quickstart/logs

    prod = snakemake(workdir, configs=PROD_CONFIGS)
    assert prod.returncode == 0, prod.stderr[-3000:]
    assert files(workdir, "data/quickstart") == quick_files
    prod_files = files(workdir, "data/shards", "data/generated", "logs")
    assert "data/shards/00000.jsonl" in prod_files and "data/generated/code/filtered.jsonl" in prod_files

    # production again, its server gone: its shards are split again, its generation jobs fail mid-way and
    # Snakemake removes their outputs, all in production's folders
    use_server(workdir, closed_port_url())
    failed = snakemake(workdir, "--forceall", "--keep-going", configs=PROD_CONFIGS)
    assert failed.returncode != 0 and "generate_names" in failed.stderr
    assert not (workdir / "data/generated/names/raw/00000.jsonl").exists()  # removed: the failed job's output
    assert files(workdir, "data/quickstart") == quick_files
    prod_files = files(workdir, "data/shards", "data/generated", "logs")

    # and the other way round: the quick start fails mid-way beside production's files
    quick_failed = snakemake(workdir, *QUICK, "--forceall", "--keep-going", configs=QUICK_CONFIGS)
    assert quick_failed.returncode != 0 and "generate_names" in quick_failed.stderr
    assert not (workdir / "data/quickstart/names/raw/00000.jsonl").exists()
    assert files(workdir, "data/shards", "data/generated", "logs") == prod_files
