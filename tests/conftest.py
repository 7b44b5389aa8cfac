import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _in_project_root(monkeypatch):
    """Tests read the shipped configs/ and sample data by their paths from the project root."""
    monkeypatch.chdir(ROOT)
    yield


@pytest.fixture(autouse=True)
def _fresh_breakers():
    """Circuit breakers and rate limiters are shared per base URL in a process: one test's must not reach the next."""
    from evoselfcode.clients.transport import reset_shared_state

    reset_shared_state()
    yield
    reset_shared_state()


def _embedded_server(tmp_path_factory, *, echo: bool):
    from evoselfcode import embedded
    from evoselfcode.config import Embedded

    tmp = tmp_path_factory.mktemp("embedded_server")
    cfg = Embedded(n_threads=2, cache_dir=os.path.expanduser("~/.cache/evoselfcode"))
    url = embedded.start(cfg, echo=echo, log_path=tmp / "server.log", state_file=tmp / "state.json")
    try:
        yield url
    finally:
        embedded.stop(tmp / "state.json")


@pytest.fixture(scope="session")
def embedded_url(tmp_path_factory):
    """The base URL of the real embedded server a run starts (llama.cpp's native one, Qwen2.5-Coder-0.5B)."""
    yield from _embedded_server(tmp_path_factory, echo=False)


@pytest.fixture(scope="session")
def echo_url(tmp_path_factory):
    """The base URL of the real embedded server a scoring run starts (llama-cpp-python's, with prompt log-probs)."""
    yield from _embedded_server(tmp_path_factory, echo=True)


def pytest_configure(config):
    os.environ.setdefault("PYTHONHASHSEED", "0")


def make_workdir(dest: Path, descriptions: list[dict] | None = None, config: str = "") -> Path:
    """A copy of the workflow (Snakefile, rules, configs) in `dest`, with its own inputs and overrides."""
    import json
    import shutil

    for item in ("Snakefile", "rules", "configs", "profiles", "report"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / item)
    if descriptions is not None:
        (dest / "data/descriptions").mkdir(parents=True)
        with open(dest / "data/descriptions/sample.jsonl", "w") as fh:
            fh.writelines(json.dumps(d) + "\n" for d in descriptions)
    (dest / "configs/test.yaml").write_text(config)
    return dest


def snakemake(workdir: Path, *args: str, configs=("configs/test.yaml",), timeout: float = 900, env: dict | None = None):
    """Run Snakemake as a process in `workdir`, as a user would, with `configs` over configs/datagen.yaml."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args, "--configfile", *configs]
    return subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
