"""Hostile generated code through the whole workflow: the run goes on, each function has a stable reason, no harm.

The fake server "writes" each function and its tests as scripted by the description (`[[code:B64]]`,
`[[tests:B64]]`), so the hostile code passes the static checks and reaches the sandbox as model output would.
"""

import base64
import json
from pathlib import Path

import pytest
from conftest import make_workdir, snakemake
from fakeserver import FakeServer, Options
from test_reliability_faults import leaks

from evoselfcode.datagen.readers import read_jsonl
from evoselfcode.datagen.sandbox import INSTALL_HINT

pytestmark = pytest.mark.workflow
SECRET = "sk-evo-sandbox-3b9e17c4a0d2f685"


def scripted(desc: str, body: str, tests: str) -> str:
    b64 = base64.b64encode
    return f"{desc} [[code:{b64(body.encode()).decode()}]] [[tests:{b64(tests.encode()).decode()}]]"


def hostile(outside, port: int) -> dict[str, tuple[str, str]]:
    """Per case: the function after `def name(`, the tests after `assert name(` and its first parameter by keyword."""
    return {
        "deletes files": (f"):\n    import shutil\n    shutil.rmtree({str(outside)!r})\n    return 1\n", ") == 1\n"),
        "writes outside": (f"):\n    with open({str(outside / 'keep.txt')!r}, 'w') as fh:\n"
                           "        fh.write('pwned')\n    return 1\n", ") == 1\n"),
        "kills its parent": ("):\n    import os\n    import signal\n    os.kill(os.getppid(), signal.SIGKILL)\n"
                             "    os.kill(1, signal.SIGKILL)\n    return 1\n", ") == 1\n"),
        "forks without end": ("):\n    import os\n    while True:\n        os.fork()\n", ") is None\n"),
        "allocates without end": ("):\n    blocks = []\n    while True:\n        blocks.append(bytearray(10**8))\n",
                                  ") is None\n"),
        "loops forever": ("):\n    count = 0\n    while True:\n        count += 1\n", ") is None\n"),
        "sleeps": ("):\n    import time\n    time.sleep(3600)\n    return 1\n", ") == 1\n"),
        "calls the model server": (f"):\n    import socket\n    s = socket.create_connection(('127.0.0.1', {port}))\n"
                                   "    s.sendall(b'POST /v1/completions')\n    return s.recv(100)\n", ") == b''\n"),
        "reads the API key": ("):\n    import os\n    return os.environ['QWEN_API_KEY'][:3]\n", ") == 'sk-'\n"),
        "is right": ("a, b):\n    total = a + b\n    return total\n", "1, b=2) == 3\n"),
    }  # fmt: skip


def test_hostile_code_is_rejected_with_stable_reasons_and_harms_nothing(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    with FakeServer(Options(seed=5)) as srv:
        cases = hostile(outside, srv.port)
        descriptions = [{"id": f"h{i}", "desc": scripted(f"Hostile case {i}: {name}.", *cases[name])}
                        for i, name in enumerate(cases)]  # fmt: skip
        config = f"""
api: {{base_url: "{srv.url}", timeout: {{read: 5}}}}
namegen: {{n: 1, select: {{per_desc: 1}}}}
codegen: {{n: 1}}
filters: {{dedup: {{near: false}}}}
execution: {{timeout_s: 2.0, memory_mb: 256}}
io: {{shard_size: 5, concurrency: 4}}
"""
        (tmp_path / "wf").mkdir()
        workdir = make_workdir(tmp_path / "wf", descriptions, config)
        proc = snakemake(workdir, "data/generated/code/filtered.jsonl", env={"QWEN_API_KEY": SECRET})
    assert proc.returncode == 0, proc.stderr[-4000:]
    code = workdir / "data/generated/code"
    by_case = {r["desc_id"]: r for r in read_jsonl(code / "rejects.jsonl")}
    reasons = {name: by_case[f"h{i}"]["reason"] for i, name in enumerate(cases) if f"h{i}" in by_case}
    assert reasons == {
        "deletes files": "exec_error:FileNotFoundError",
        "writes outside": "exec_error:FileNotFoundError",
        "forks without end": "exec_error:BlockingIOError",
        "allocates without end": "exec_error:MemoryError",
        "loops forever": "exec_timeout",
        "sleeps": "exec_timeout",
        "calls the model server": "exec_error:ConnectionRefusedError",  # the sandbox's own loopback
        "reads the API key": "exec_error:KeyError",
    }
    # the sandbox's PID 1 ignores the kills (its own namespace's init): the function goes on and returns 1
    kept = [r["meta"]["desc_id"] for r in read_jsonl(code / "filtered.jsonl")]
    assert kept == [f"h{list(cases).index('kills its parent')}", f"h{list(cases).index('is right')}"]
    assert (outside / "keep.txt").read_text() == "precious"
    assert not leaks(workdir, proc.stdout + proc.stderr, SECRET)
    metrics = json.loads((code / "metrics.json").read_text())
    assert metrics["accounting"]["adds_up"]


def test_a_missing_bubblewrap_stops_the_run_before_any_request_and_a_dry_run_still_works(tmp_path):
    path = tmp_path / "bin"  # the system's programs but bwrap
    path.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for program in Path(directory).iterdir() if Path(directory).is_dir() else ():
            if program.name != "bwrap" and not (path / program.name).exists():
                (path / program.name).symlink_to(program)
    with FakeServer(Options(seed=5)) as srv:
        config = f'api: {{base_url: "{srv.url}"}}\nnamegen: {{n: 1, select: {{per_desc: 1}}}}\n'
        (tmp_path / "wf").mkdir()
        workdir = make_workdir(tmp_path / "wf", [{"id": "d0", "desc": "Add two numbers."}], config)
        env = {"PATH": str(path)}
        dry = snakemake(workdir, "-n", "data/generated/code/filtered.jsonl", env=env)
        run = snakemake(workdir, "data/generated/code/filtered.jsonl", env=env)
        requests = srv.stats()["requests"]
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert run.returncode != 0 and INSTALL_HINT in " ".join(run.stderr.split()), run.stderr[-2000:]
    assert requests == 0
