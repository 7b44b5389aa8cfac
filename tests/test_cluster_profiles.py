"""The cluster profiles as a new user first meets them: the shipped placeholders and missing storage credentials
stop a run before any job with one line naming what to set; a dry run says what it did without (Snakemake as a
process, no cluster and no bucket needed)."""

import os
import subprocess
import sys
import time

import pytest
from conftest import make_workdir

from evoselfcode.workflow import image_problem, profile_image, storage_problems

pytest.importorskip("snakemake_executor_plugin_kubernetes", reason="the cluster extra is not installed: '.[cluster]'")
pytest.importorskip("snakemake_storage_plugin_s3", reason="the cluster extra is not installed: '.[cluster]'")

pytestmark = pytest.mark.workflow

DESCRIPTIONS = [{"id": f"c{i}", "desc": f"Task {i}: return the {w} of a list of numbers."} for i, w in
                enumerate(["sum", "mean", "median"])]  # fmt: skip
# a stop that waits on the network (a credentials lookup, a bucket) hangs for longer; 2-7 s is Snakemake's start-up
HANG = 30
FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def run(workdir, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """Snakemake with profiles/kubernetes as shipped, in a shell without any AWS credentials (and no ~/.aws)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAKEMAKE_STORAGE_S3_"))}
    clean |= {"HOME": str(workdir), "AWS_EC2_METADATA_DISABLED": "true", **(env or {})}
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/kubernetes", *args]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300, env=clean)
    return proc, time.monotonic() - started


@pytest.fixture
def workdir(tmp_path):
    return make_workdir(tmp_path, DESCRIPTIONS)


def stop_line(proc) -> str:
    """The one line of the stop, which names every key to set."""
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if "not ready for a real run" in line]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "NoCredentialsError" not in proc.stderr
    return lines[0]


def test_without_credentials_the_kubernetes_profile_stops_before_any_job_naming_each_key(workdir):
    proc, seconds = run(workdir)
    line = stop_line(proc)
    assert seconds < HANG, f"{seconds:.1f} s"
    assert "container-image (still ghcr.io/CHANGE_ME/evoselfcode:0.1.0" in line
    assert "default-storage-prefix (still s3://CHANGE_ME/evoselfcode" in line
    assert "S3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in line
    assert not (workdir / "data/shards").exists()  # stopped before the input was even split or indexed
    assert "Building DAG" not in proc.stderr + proc.stdout


def test_with_credentials_but_placeholders_it_names_only_the_placeholders(workdir):
    proc, seconds = run(workdir, env=FAKE_KEYS)
    line = stop_line(proc)
    assert seconds < HANG, f"{seconds:.1f} s"
    assert "container-image (still" in line and "default-storage-prefix (still" in line
    assert "S3 credentials" not in line


def test_credentials_given_to_the_plugin_count(workdir):
    keys = {"SNAKEMAKE_STORAGE_S3_ACCESS_KEY": "testing", "SNAKEMAKE_STORAGE_S3_SECRET_KEY": "testing"}
    line = stop_line(run(workdir, env=keys)[0])
    assert "S3 credentials" not in line and "default-storage-prefix" in line


def test_a_dry_run_without_credentials_says_what_it_skipped_and_plans(workdir):
    proc, _ = run(workdir, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "NoCredentialsError" not in out
    said = [line for line in proc.stderr.splitlines() if line.startswith("dry run without the default storage")]
    assert len(said) == 1 and "S3 credentials" in said[0] and "default-storage-prefix" in said[0]
    assert "This was a dry-run" in out and "generate_code" in out
    assert "s3://" not in out.replace(said[0], "")  # planned from local paths, nothing asked of a bucket


def test_storage_problems_name_the_placeholder_prefix_and_missing_credentials():
    asked = []

    def credentials(answer):
        return lambda: asked.append(answer) or answer

    assert storage_problems(None, None, credentials(False)) == [] and asked == []  # no default storage: nothing
    assert storage_problems("s3", "s3://my-bucket/x", credentials(True)) == []
    both = storage_problems("s3", "s3://CHANGE_ME/evoselfcode", credentials(False))
    assert [p.split(" ")[0] for p in both] == ["default-storage-prefix", "S3"]
    assert storage_problems("gcs", "gcs://CHANGE_ME/x", credentials(False))[0].startswith("default-storage-prefix")
    assert asked == [True, False]  # credentials are looked up for S3 only


def test_the_image_comes_from_the_command_line_or_the_profile(tmp_path):
    profile = tmp_path / "p"
    profile.mkdir()
    (profile / "config.yaml").write_text("container-image: ghcr.io/CHANGE_ME/x:1\n")
    assert profile_image(["snakemake", "--profile", str(profile)], {}) == "ghcr.io/CHANGE_ME/x:1"
    assert profile_image(["snakemake"], {"SNAKEMAKE_PROFILE": str(profile)}) == "ghcr.io/CHANGE_ME/x:1"
    assert profile_image(["snakemake", f"--profile={profile}", "--container-image", "me/img:2"], {}) == "me/img:2"
    assert profile_image(["snakemake"], {}) is None
    assert image_problem("ghcr.io/CHANGE_ME/x:1") and not image_problem("me/img:2") and not image_problem(None)
