"""Running generated functions with their assertions inside bubblewrap (DESIGN decision 7).

Each worker is one `bwrap` process, started once, whose PID 1 is `sandbox_runner` (standard library only,
run by the system interpreter): it forks one child per function, with rlimits and a seccomp filter, and
answers each job with one outcome per assertion. The sandbox has no network (`--unshare-all`), sees only
the system's read-only directories and a private, size-capped `/tmp`, gets a clean environment, and dies
with its parent. With `execution.sandbox: none-unsafe` the same runner runs as a plain process instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evoselfcode.config import Execution

log = logging.getLogger("evoselfcode.sandbox")
RUNNER = Path(__file__).with_name("sandbox_runner.py")
UNSAFE = "none-unsafe"
MB = 1024 * 1024
# Read-only in the sandbox: the system and the interpreter; never the project, home directories or /etc's secrets.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc/ld.so.cache", "/etc/alternatives")
INSTALL_HINT = (
    "bubblewrap (bwrap) is needed to run generated code in a sandbox and was not found: install it with "
    "`sudo apt-get install bubblewrap` (or `make sandbox`), or set execution.sandbox: none-unsafe to run "
    "the code without a sandbox (never with a model you do not control)"
)


class SandboxError(RuntimeError):
    """The sandbox could not start or a worker died: the job fails, nothing is recorded as a test outcome."""


@dataclass(frozen=True)
class Job:
    code: str
    tests: tuple[str, ...]


def interpreter() -> Path:
    """The system interpreter under the running one (a venv's python is a link to it): stdlib only."""
    return Path(os.path.realpath(sys.executable))


def bwrap_command(ex: Execution) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError(INSTALL_HINT)
    python = interpreter()
    binds = [a for d in (*SYSTEM_DIRS, sys.base_prefix) for a in ("--ro-bind-try", d, d)]
    return [
        bwrap, *binds,
        "--dev", "/dev", "--proc", "/proc", "--size", str(ex.tmp_mb * MB), "--tmpfs", "/tmp", "--chdir", "/tmp",
        "--unshare-all", "--die-with-parent", "--new-session", "--as-pid-1", "--cap-drop", "ALL",
        "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
        "--setenv", "PYTHONHASHSEED", "0",
        str(python), "-s", "-c", RUNNER.read_text(encoding="utf-8"),
    ]  # fmt: skip


def _limits(ex: Execution, sandboxed: bool, workdir: str) -> dict:
    return {"sandboxed": sandboxed, "workdir": workdir, "timeout_s": ex.timeout_s, "cpu_s": ex.cpu_s,
            "memory_mb": ex.memory_mb, "max_processes": ex.max_processes, "max_file_mb": ex.max_file_mb}  # fmt: skip


class _Worker:
    """One runner process, sandboxed or not, taking jobs one at a time."""

    def __init__(self, ex: Execution):
        self.sandboxed = ex.sandbox != UNSAFE
        self._scratch = None
        if self.sandboxed:
            command, env, workdir = bwrap_command(ex), {}, "/tmp"
        else:
            self._scratch = tempfile.TemporaryDirectory(prefix="evoselfcode-unsafe-")
            workdir = self._scratch.name
            command = [str(interpreter()), "-s", "-c", RUNNER.read_text(encoding="utf-8")]
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env, text=True,
            cwd=workdir,
        )  # fmt: skip
        self._send(_limits(ex, self.sandboxed, workdir))

    def _send(self, data: dict) -> None:
        try:
            self._proc.stdin.write(json.dumps(data) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise SandboxError(f"the sandbox worker stopped: {self._error()}") from None

    def _error(self) -> str:
        self._proc.wait()
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        return f"exit status {self._proc.returncode}" + (f": {text[-2000:]}" if text else "")

    def run(self, job: Job) -> list[str]:
        self._send({"code": job.code, "tests": list(job.tests)})
        line = self._proc.stdout.readline()
        if not line:
            raise SandboxError(f"the sandbox worker stopped: {self._error()}")
        return json.loads(line)["outcomes"]

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):  # it died already; run() said why
            self._proc.stdin.close()
        self._proc.wait()
        self._stderr.close()
        if self._scratch is not None:
            self._scratch.cleanup()


def run_jobs(jobs: Sequence[Job], ex: Execution, workers: int) -> list[list[str]]:
    """Each job's outcomes (one per assertion), in the order of `jobs`, by `workers` sandboxes at once."""
    if ex.sandbox == UNSAFE:
        log.warning("execution.sandbox is %s: generated code runs WITHOUT a sandbox, with this job's rights", UNSAFE)
    results: list[list[str] | None] = [None] * len(jobs)
    todo = deque(i for i, job in enumerate(jobs) if job.tests)
    for i, job in enumerate(jobs):
        if not job.tests:
            results[i] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            worker = _Worker(ex)
        except BaseException as exc:
            errors.append(exc)
            return
        try:
            while True:
                with lock:
                    if not todo or errors:
                        return
                    i = todo.popleft()
                results[i] = worker.run(jobs[i])
        except BaseException as exc:
            errors.append(exc)
        finally:
            worker.close()

    threads = [threading.Thread(target=work, name="sandbox") for _ in range(min(workers, len(todo)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]
