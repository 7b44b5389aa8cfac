"""The storage path profiles/kubernetes depends on: S3 as the default storage, against a local moto server.

The local executor stands in for Kubernetes: every input and output but the description file (a local()
input, read when the DAG is built) goes through the storage plugin to the bucket.
"""

import json
import socket
import subprocess
import sys
import time
import uuid

import pytest
from conftest import make_workdir, snakemake
from fakeserver import FakeServer, Options

from evoselfcode.datagen.schemas import CodeRecord

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server", reason="moto[server] is not installed: pip install -e '.[dev]'")
pytest.importorskip("snakemake_storage_plugin_s3", reason="the S3 storage plugin is not installed: '.[cluster]'")

pytestmark = [pytest.mark.s3, pytest.mark.workflow]

# moto accepts any key; set them so neither boto3 nor the plugin looks for real credentials.
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
DESCRIPTIONS = [{"id": f"k{i}", "desc": f"Task {i}: return the {w} of a list of numbers."} for i, w in
                enumerate(["sum", "mean", "median", "maximum", "product"])]  # fmt: skip
TARGET = "data/generated/code/filtered.jsonl"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def s3(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_ENV["AWS_DEFAULT_REGION"],
    )


@pytest.fixture(scope="module")
def done(tmp_path_factory, endpoint, s3):
    bucket = f"evoselfcode-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    with FakeServer(Options(seed=1)) as server:
        config = f"""
api: {{base_url: "{server.url}", timeout: {{read: 10}}, backoff: {{base: 0.05, max: 0.2}}}}
namegen: {{n: 2}}
io: {{shard_size: 3, concurrency: 4}}
"""
        workdir = make_workdir(tmp_path_factory.mktemp("s3"), DESCRIPTIONS, config)
        storage = (
            *("--default-storage-provider", "s3", "--default-storage-prefix", f"s3://{bucket}/evoselfcode"),
            f"--storage-s3-endpoint-url={endpoint}",  # one token: the option takes several values
        )
        proc = snakemake(workdir, TARGET, *storage, timeout=600, env=AWS_ENV)
        assert proc.returncode == 0, proc.stderr[-5000:]
        rerun = snakemake(workdir, "-n", TARGET, *storage, timeout=300, env=AWS_ENV)
    return workdir, bucket, rerun


def read_object(s3, bucket: str, key: str) -> str:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def test_outputs_land_in_the_bucket_and_validate(done, s3):
    _, bucket, _ = done
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, MaxKeys=1000)["Contents"]}
    for path in (TARGET, "data/generated/code/metrics.json", "data/generated/names/metrics.json",
                 "data/shards/00000.jsonl", "data/shards/00001.jsonl", "logs/merge_code/all.log"):  # fmt: skip
        assert f"evoselfcode/{path}" in keys, sorted(keys)
    lines = read_object(s3, bucket, f"evoselfcode/{TARGET}").splitlines()
    records = [CodeRecord.model_validate(json.loads(line)) for line in lines]
    assert records and {r.source for r in records} <= {"FIM", "L2R"}
    # the description file and the benchmark index stay local inputs: read (the index built) where the DAG is built
    assert "evoselfcode/data/descriptions/sample.jsonl" not in keys
    assert not [key for key in keys if "shards/benchmarks/" in key]


def test_outputs_are_not_left_in_the_working_directory(done):
    workdir, _, _ = done
    assert not (workdir / "data/generated").exists()
    assert [p.name for p in (workdir / "data/shards").iterdir()] == ["benchmarks"]  # the index only


def test_a_second_run_finds_everything_in_the_bucket(done):
    _, _, rerun = done
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Nothing to be done" in rerun.stdout + rerun.stderr


def test_the_kubernetes_profile_plans_the_workflow_on_s3(tmp_path, endpoint, s3):
    # a dry run with profiles/kubernetes as shipped, but this bucket and endpoint: no pod is started
    bucket = f"evoselfcode-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    workdir = make_workdir(tmp_path, DESCRIPTIONS, "io: {shard_size: 3}")
    proc = snakemake(
        workdir,
        *("--profile", "profiles/kubernetes", "-n", TARGET, "--default-storage-prefix", f"s3://{bucket}/k8s"),
        f"--storage-s3-endpoint-url={endpoint}",
        timeout=300,
        env=AWS_ENV,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert f"s3://{bucket}/k8s/data/generated/code/filtered.jsonl" in out
    assert "generate_code                  2" in out
