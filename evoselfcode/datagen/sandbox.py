"""Running generated functions with their assertions inside bubblewrap.

`run_jobs` hands the jobs to workers, each one `bwrap` process whose PID 1 is `sandbox_runner`
(`execution.sandbox: none-unsafe`: the same runner as a plain process). What the sandbox allows, its time limits
and what the code can still forge: docs/architecture.md, "The sandbox".
"""

from __future__ import annotations

import ast
import contextlib
import functools
import json
import logging
import os
import platform
import select
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
from evoselfcode.datagen.sandbox_runner import OUTCOME, RECORDER, VALUE

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


HOST_SLACK_S = 30.0  # beyond the runner's own cap per job: starting a child, a busy machine
NO_USERNS_HINT = (
    "bubblewrap (bwrap) is installed but could not start a sandbox; it needs unprivileged user namespaces, "
    "which some systems disable (Ubuntu 24.04's AppArmor: `sysctl kernel.apparmor_restrict_unprivileged_userns=0` "
    "or an AppArmor profile for bwrap; elsewhere `sysctl kernel.unprivileged_userns_clone=1`), or set "
    "execution.sandbox: none-unsafe (never with a model you do not control)"
)


class SandboxError(RuntimeError):
    """The sandbox could not start or a worker died: the job fails, nothing is recorded as a test outcome."""


@dataclass(frozen=True)
class Job:
    code: str
    tests: tuple[str, ...]
    calls: str | None = None  # the function under test: the values its calls return are digested


@dataclass(frozen=True)
class Run:
    """A job's result: per assertion its outcome, and the digest of the values the function's calls returned."""

    outcomes: list[str]  # pass, fail, error:<Type>, timeout
    values: list[str | None]  # None: no call returned, or a value that is not plain data (see sandbox_runner)


class _Probe(ast.NodeTransformer):
    def __init__(self, name: str) -> None:
        self.name = name

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == self.name:
            return ast.Call(ast.Name(RECORDER, ast.Load()), [node], [])
        return node


def probed(test: str, name: str) -> str:
    """`test` with each call of `name` passed through the runner's recorder, which digests the value it returns."""
    try:
        return ast.unparse(ast.fix_missing_locations(_Probe(name).visit(ast.parse(test))))
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # it fails the same way in the sandbox
        return test


def interpreter() -> Path:
    """The system interpreter under the running one (a venv's python is a link to it): stdlib only."""
    return Path(os.path.realpath(sys.executable))


def bwrap_command(ex: Execution, *program: str) -> list[str]:
    """The bwrap command running `program` (by default the runner on the system interpreter) in a sandbox."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError(INSTALL_HINT)
    python = interpreter()
    binds = [a for d in (*SYSTEM_DIRS, sys.base_prefix) for a in ("--ro-bind-try", d, d)]
    return [
        bwrap, *binds,
        "--dev", "/dev", "--proc", "/proc", "--size", str(ex.tmp_mb * MB), "--tmpfs", "/tmp", "--chdir", "/tmp",
        # the root and /dev are tmpfs without a size cap, kept across jobs: only the capped /tmp takes files
        "--remount-ro", "/dev", "--remount-ro", "/",
        "--unshare-all", "--die-with-parent", "--new-session", "--as-pid-1", "--cap-drop", "ALL",
        "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
        "--setenv", "PYTHONHASHSEED", "0",
        *(program or (str(python), "-s", "-c", RUNNER.read_text(encoding="utf-8"))),
    ]  # fmt: skip


def sandbox_problem(ex: Execution) -> str | None:
    """Why the sandbox cannot start on this machine (checked before any request), or None when it can."""
    if ex.sandbox == UNSAFE:
        return None
    try:
        command = bwrap_command(ex, str(interpreter()), "-s", "-c", "pass")
    except SandboxError as exc:
        return str(exc)
    try:
        proc = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return f"{NO_USERNS_HINT}: `bwrap ... python -c pass` did not end within 60 s"
    if proc.returncode != 0:
        return f"{NO_USERNS_HINT}: bwrap said (exit status {proc.returncode}): {proc.stderr.strip()[-2000:]}"
    return None


@functools.cache
def _warn_unfiltered() -> None:
    if platform.machine() != "x86_64":
        log.warning(
            "on %s the sandbox has no seccomp filter against fork: a fork bomb is bounded only by "
            "RLIMIT_NPROC (execution.max_processes), which is not enforced for root",
            platform.machine(),
        )


def _limits(ex: Execution, sandboxed: bool, workdir: str) -> dict:
    return {"sandboxed": sandboxed, "workdir": workdir, "timeout_s": ex.timeout_s, "cpu_s": ex.cpu_s,
            "memory_mb": ex.memory_mb, "max_processes": ex.max_processes, "max_file_mb": ex.max_file_mb}  # fmt: skip


class _Worker:
    """One runner process, sandboxed or not, taking jobs one at a time."""

    def __init__(self, ex: Execution):
        self._ex = ex
        self._start()

    def _start(self) -> None:
        ex = self._ex
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

    def run(self, job: Job) -> Run:
        tests = [probed(t, job.calls) for t in job.tests] if job.calls else list(job.tests)
        self._send({"code": job.code, "tests": tests})
        budget = self._ex.timeout_s * (len(job.tests) + 1) + HOST_SLACK_S
        # one line answers one job, so nothing waits in stdout's buffer and select sees all there is
        if not select.select([self._proc.stdout], [], [], budget)[0]:
            log.warning("the sandbox worker did not answer within %.0f s: killed, its job's assertions time out, "
                        "a fresh worker goes on", budget)  # fmt: skip
            self._proc.kill()
            self.close()
            self._start()
            return Run(["timeout"] * len(job.tests), [None] * len(job.tests))
        line = self._proc.stdout.readline()
        if not line:
            raise SandboxError(f"the sandbox worker stopped: {self._error()}")
        run, last = _answer(line, len(job.tests))
        if last:  # it could not clean up after the job
            self.close()
            self._start()
        return run

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):  # it died already; run() said why
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # it does not end at the end of its input
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._stderr.close()
        if self._scratch is not None:
            self._scratch.cleanup()


def _answer(line: str, tests: int) -> tuple[Run, bool]:
    """The outcomes and values in a runner's answer, and whether the runner ends after it.

    An answer that does not fit its job is never recorded as outcomes: the step fails.
    """
    try:
        answer = json.loads(line)
        outcomes, values, last = answer["outcomes"], answer["values"], answer.get("last", False)
    except (ValueError, TypeError, KeyError, AttributeError):
        outcomes, values, last = None, None, None
    if not (isinstance(outcomes, list) and len(outcomes) == tests and isinstance(last, bool)
            and all(isinstance(o, str) and OUTCOME.fullmatch(o) for o in outcomes)
            and isinstance(values, list) and len(values) == tests
            and all(v is None or isinstance(v, str) and v != "-" and VALUE.fullmatch(v) for v in values)):  # fmt: skip
        raise SandboxError(f"the sandbox worker answered {line[:300]!r} to a job of {tests} assertions")
    return Run(outcomes, values), last


def run_jobs(jobs: Sequence[Job], ex: Execution, workers: int) -> list[list[str]]:
    """Each job's outcomes (one per assertion), in the order of `jobs`, by `workers` sandboxes at once."""
    return [run.outcomes for run in execute(jobs, ex, workers)]


def execute(jobs: Sequence[Job], ex: Execution, workers: int) -> list[Run]:
    """Each job's outcomes and values (one per assertion), in the order of `jobs`, by `workers` sandboxes at once."""
    _warn_unfiltered()
    if ex.sandbox == UNSAFE:
        log.warning("execution.sandbox is %s: generated code runs WITHOUT a sandbox, with this job's rights", UNSAFE)
    results: list[Run | None] = [None] * len(jobs)
    todo = deque(i for i, job in enumerate(jobs) if job.tests)
    for i, job in enumerate(jobs):
        if not job.tests:
            results[i] = Run([], [])
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
