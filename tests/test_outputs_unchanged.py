"""The quick start's data outputs on the fake server are the bytes recorded in tests/data/outputs_unchanged.json.

A refactor that means to change no behaviour must leave this test green. When outputs change on purpose, record
them again and commit the new file with the change that explains it:
    EVOSELFCODE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_outputs_unchanged.py -q -p no:cacheprovider

The run is `make run`'s (profiles/local, configs/local.yaml) on the first descriptions of the sample file (two
shards), with the fake server in place of the embedded model, and asks for `code/scored.jsonl` too. Compared:
every file under data/quickstart/ but the logs, the timing files (wall-clock) and Snakemake's own markers. Two
kinds of file carry what two equal runs need not share, and are compared without it: the dataset card names the
package version, the fake server's address (its port is the system's choice) and the config's digest (which holds
the address); a Parquet file names the pyarrow version that wrote it, so its schema and rows are compared.
"""

import hashlib
import json
import os
import re

import pyarrow.parquet as pq
import pytest
from conftest import ROOT, make_workdir, snakemake
from fakeserver import FakeServer, Options

from evoselfcode import __version__

pytestmark = pytest.mark.workflow

GOLDEN = ROOT / "tests/data/outputs_unchanged.json"
UPDATE = os.environ.get("EVOSELFCODE_UPDATE_GOLDEN") == "1"
OUT = "data/quickstart"  # configs/local.yaml's folders
DESCRIPTIONS = [json.loads(line) for line in (ROOT / "data/descriptions/sample.jsonl").read_text().splitlines()[:20]]
LEFT_OUT = re.compile(r"^logs/|(^|/)timing(/|\.json$)|score_timing\.jsonl$|\.snakemake_timestamp$")


def digest(path, rel: str) -> str:
    """sha256 of the file's bytes, or of what two equal runs share (the card, a Parquet file)."""
    if rel.endswith(".parquet"):
        meta = pq.ParquetFile(path).metadata
        table = pq.read_table(path)
        shared = {
            "schema": table.schema.to_string(show_schema_metadata=True),
            "row_groups": [meta.row_group(i).num_rows for i in range(meta.num_row_groups)],
            "compression": sorted({meta.row_group(0).column(c).compression for c in range(meta.num_columns)}),
            "rows": table.to_pylist(),
        }
        data = json.dumps(shared, sort_keys=True, default=repr).encode()
    elif rel == "dataset/README.md":
        text = path.read_text(encoding="utf-8").replace(__version__, "<version>")
        text = re.sub(r"config digest `[0-9a-f]{12}`", "config digest `<digest>`", text)
        data = re.sub(r"http://127\.0\.0\.1:\d+", "http://127.0.0.1:<port>", text).encode()
    else:
        data = path.read_bytes()
    return hashlib.sha256(data).hexdigest()


def outputs(workdir) -> dict[str, str]:
    root = workdir / OUT
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not LEFT_OUT.search(rel):
            found[rel] = digest(path, rel)
    return found


def quick_start(workdir, url: str):
    (workdir / "configs/server.yaml").write_text(f"api: {{base_url: '{url}', timeout: {{read: 10}}}}\n")
    return snakemake(
        workdir, "--profile", "profiles/local", "all", f"{OUT}/code/scored.jsonl",
        configs=("configs/local.yaml", "configs/server.yaml"),
    )  # fmt: skip


def test_the_quick_start_writes_the_recorded_outputs(tmp_path):
    workdir = make_workdir(tmp_path, DESCRIPTIONS)
    with FakeServer(Options(seed=7)) as server:
        proc = quick_start(workdir, server.url)
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = outputs(workdir)
    assert "code/filtered.jsonl" in found and "code/scored.jsonl" in found and "dataset/README.md" in found
    if UPDATE:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    recorded = json.loads(GOLDEN.read_text())
    assert sorted(found) == sorted(recorded), "a file appeared or went missing"
    changed = [rel for rel in recorded if found[rel] != recorded[rel]]
    assert not changed, f"outputs differ from {GOLDEN.name}: {changed}"
