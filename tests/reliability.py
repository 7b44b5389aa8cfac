"""Shared pieces of the reliability suite: a small config, the reference run, and output comparison."""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from conftest import make_workdir, snakemake
from fakeserver import ServerProcess

from evoselfcode.datagen.pipeline.store import AnswerStore

TARGET = "data/generated/code/filtered.jsonl"
STORE = "data/store"  # the answer store, store.dir's default, under the workflow's working directory
# Absolute paths hostile model output aims at; fixed for the session, so every run sees the same prompts.
PWNED = Path(tempfile.gettempdir()) / f"evoselfcode-pwned-{os.getpid()}"
VICTIM = Path(tempfile.gettempdir()) / f"evoselfcode-victim-{os.getpid()}"
HOSTILE_CODE = f"""data=__import__("os").system("touch {PWNED}-default")):
    import shutil
    import subprocess

    subprocess.run(["touch", "{PWNED}-subprocess"])
    shutil.rmtree("{VICTIM}")
    open("{PWNED}-open", "w").write("x")
    return data

__import__("os").system("touch {PWNED}-module")
"""
HOSTILE_NAMES = {"h-path": "../../etc/passwd", "$(touch x);`id`": f"a;touch${{IFS}}{PWNED}-name"}


def _script(kind: str, text: str) -> str:
    """A fake-server directive: the model writes `text` for this description's `kind` requests."""
    return f"[[{kind}:{base64.b64encode(text.encode()).decode()}]]"


DESCRIPTIONS = [{"id": f"t{i}", "desc": f"Task {i}: return the {w} of a list of numbers."} for i, w in
                enumerate(["sum", "mean", "median", "mode", "range", "product", "maximum"])]  # fmt: skip
DESCRIPTIONS += [{"id": "h-code", "desc": f"Clean up the workspace. {_script('code', HOSTILE_CODE)}"}]
DESCRIPTIONS += [{"id": i, "desc": f"Name it {name!r}. {_script('name', name)}"} for i, name in HOSTILE_NAMES.items()]
MODES = 2  # FIM and L2R: name requests per description
SHARD_SIZE = 4
# Wall-clock files: the only ones allowed to differ between two runs with the same seeds.
TIMING_FILES = re.compile(r"^data/generated/(names|code)/((tests/)?timing(/|\.json$)|score_timing\.jsonl$)")


def config(url: str, extra: str = "", api: str = "") -> str:
    """Short timeouts and backoffs so faults cost milliseconds; 10 descriptions in shards of 4."""
    return f"""
api:
  base_url: "{url}"
  model: fake-coder
  timeout: {{connect: 1, read: 1}}
  max_retries: 6
  backoff: {{base: 0.05, max: 0.2, max_retry_after: 0.2}}
  circuit_breaker: {{failure_threshold: 8, reset_timeout: 1}}
  {api}
namegen: {{n: 2}}
io: {{shard_size: {SHARD_SIZE}, concurrency: 2}}
{extra}"""


def workdir(path: Path, url: str, extra: str = "", api: str = "", descriptions: list[dict] | None = None) -> Path:
    return make_workdir(path, DESCRIPTIONS if descriptions is None else descriptions, config(url, extra, api))


def outputs(root: Path) -> dict[str, str]:
    """Every data file a run made (shards and generated), as text, but the timings.

    Hidden files (private answer stores, temporary files) are not outputs, nor is the answer store: its
    keys name the server's address and its answers their latency.
    """
    found = {}
    for path in sorted((root / "data").rglob("*")):
        rel = path.relative_to(root).as_posix()
        skipped = rel.startswith(("data/descriptions/", f"{STORE}/")) or any(p.startswith(".") for p in path.parts)
        if not path.is_file() or skipped:
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            assert all(line.endswith("\n") for line in text.splitlines(keepends=True)), f"{rel} ends in a partial line"
        if not TIMING_FILES.match(rel):
            found[rel] = text  # byte for byte
    return found


def hidden_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in (root / "data").rglob(".*"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def accounted_ids(root: Path) -> set[str]:
    """Description ids that reach a final record, a reject or a failure record, at either stage."""
    ids = set()
    for stage, part in [("code", "filtered"), ("code", "rejects"), ("code", "failures"), ("names", "rejects"),
                        ("names", "failures")]:  # fmt: skip
        for r in read_jsonl(root / f"data/generated/{stage}/{part}.jsonl"):
            ids.add(r.get("desc_id") or r["meta"]["desc_id"])
    return ids


def start_snakemake(root: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """Snakemake as a process group of its own, so the whole tree can be killed like a crashed node."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args, "--configfile", "configs/test.yaml"]
    return subprocess.Popen(
        cmd,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL to Snakemake and every job it started: nothing gets to clean up."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    if proc.stdout:
        proc.stdout.close()


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float = 60, what: str = "") -> None:
    """Poll `condition` until it holds; fail early if the process ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended (rc {proc.returncode}) before {what}:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            kill_tree(proc)
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


_reference: dict[str, dict[str, str]] = {}


def reference(tmp_root: Path) -> dict[str, str]:
    """Outputs of an uninterrupted run against a fault-free server; made once per test session."""
    if "clean" not in _reference:
        VICTIM.mkdir(exist_ok=True)
        atexit.register(shutil.rmtree, VICTIM, True)
        (VICTIM / "keep.txt").write_text("must survive")
        with ServerProcess("--seed", "0") as srv:
            root = workdir(tmp_root, srv.url)
            proc = snakemake(root, TARGET)
            assert proc.returncode == 0, proc.stderr[-4000:]
            stats = srv.stats()
        assert stats["successes"] == stats["requests"] == stats["bodies"]
        _reference["clean"] = outputs(root)
        _reference["requests"] = {"successes": stats["successes"]}
        _reference["root"] = root
    return _reference["clean"]


def reference_root() -> Path:
    return _reference["root"]


def reference_requests() -> int:
    """How many distinct requests a whole run asks (each once, against a fault-free server)."""
    return _reference["requests"]["successes"]


def saved_answers(root: Path) -> int:
    """Requests whose answers are on disk: in the run's answer store (which keeps them across jobs and stages)."""
    return AnswerStore(root / STORE).size().answers
