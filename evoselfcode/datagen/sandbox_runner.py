"""Runs functions with their assertions, one forked child per function: the program inside the sandbox.

Standard library only, and no import of the package: the sandbox runs it as `python -c SOURCE` with the system's
interpreter. The first stdin line holds the limits; then one job per line, `{"code", "tests"}`, answered with one
stdout line, `{"outcomes": [...], "values": [...], "last": false}`. What the outcomes and values are, the limits,
and what the code can forge: docs/architecture.md, "The sandbox".
"""

import contextlib
import ctypes
import hashlib
import json
import os
import platform
import random
import re
import resource
import select
import shutil
import signal
import sys
import time
from collections import Counter, OrderedDict, defaultdict

_NAME = re.compile(r"[^A-Za-z0-9_.]")
OUTCOME = re.compile(r"pass|fail|timeout|error:[A-Za-z0-9_.]{1,40}")  # what _outcome writes
VALUE = re.compile(r"-|[0-9a-f]{32}")  # an assertion's value digest, `-` for none
RECORDER = "__evo_value__"  # the tests call it around each call of the function under test
_MAX_DEPTH, _MAX_ITEMS = 32, 100_000  # deeper or larger values (and self-containing ones) are not digested
_MAPPINGS = (dict, OrderedDict, defaultdict, Counter)  # equal to each other as `==` sees them
# seccomp: fork, vfork and clone without CLONE_THREAD fail with EAGAIN (threads stay possible), clone3 with ENOSYS
# so that libc falls back to clone. As root, RLIMIT_NPROC is not enforced, so this is what stops a fork bomb.
_AUDIT_ARCH_X86_64, _ALLOW, _EAGAIN, _ENOSYS = 0xC000003E, 0x7FFF0000, 0x00050000 | 11, 0x00050000 | 38
_FILTER = [  # (code, jt, jf, k): classic BPF over struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6]}
    (0x20, 0, 0, 4),  # A = arch
    (0x15, 0, 9, _AUDIT_ARCH_X86_64),  # another architecture: allow (RLIMIT_NPROC still holds unless root)
    (0x20, 0, 0, 0),  # A = syscall number
    (0x35, 8, 0, 0x40000000),  # an x32-ABI number (nr | 0x40000000): EAGAIN, so it cannot fork around the rest
    (0x15, 7, 0, 57),  # fork -> EAGAIN
    (0x15, 6, 0, 58),  # vfork -> EAGAIN
    (0x15, 6, 0, 435),  # clone3 -> ENOSYS
    (0x15, 0, 3, 56),  # clone? else allow
    (0x20, 0, 0, 16),  # A = low word of clone's flags
    (0x45, 1, 2, 0x10000),  # CLONE_THREAD: allow, else EAGAIN
    (0x06, 0, 0, _ALLOW),
    (0x06, 0, 0, _ALLOW),
    (0x06, 0, 0, _EAGAIN),
    (0x06, 0, 0, _ENOSYS),
]


def _no_fork() -> None:
    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    if platform.machine() != "x86_64":
        return
    filters = (Filter * len(_FILTER))(*(Filter(*f) for f in _FILTER))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(Program(len(_FILTER), filters)), 0, 0):
        raise OSError(ctypes.get_errno(), "could not install the seccomp filter")  # PR_SET_NO_NEW_PRIVS, SECCOMP


def _not_dumpable() -> None:
    """Processes of the same user (the children) may no longer open this one's /proc/PID/fd or memory, nor trace it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0):  # PR_SET_DUMPABLE; inherited by the children, which is harmless
        raise OSError(ctypes.get_errno(), "could not make the sandbox runner non-dumpable")


def _empty(directory: str) -> bool:
    """Removes all a job left in `directory`, also what the code made unreadable (it runs as the runner's user).

    False when something is left (e.g. directories nested deeper than the recursion limit).
    """
    try:
        for root, dirs, _ in os.walk(directory):
            for name in dirs:
                path = os.path.join(root, name)
                if not os.path.islink(path):  # never follow a link the code made (without a sandbox: user's files)
                    with contextlib.suppress(OSError):
                        os.chmod(path, 0o700)
        for entry in os.scandir(directory):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
        return not os.listdir(directory)
    except (OSError, RecursionError):
        return False


def _digest(value, depth: int, budget: list) -> bytes | None:
    """A digest of `value` that equal values share, in any process; None for what cannot be digested.

    Only builtin types count (no user code runs here): any other object's repr may hold an address and its
    `__eq__` may say anything. Sets and mappings are sorted by their items' digests (hash order varies with
    PYTHONHASHSEED), integral floats count as ints (2.0 == 2) and other floats are cut to 12 digits, so that
    two ways of summing agree.
    """
    budget[0] -= 1
    if budget[0] < 0 or depth > _MAX_DEPTH:
        return None
    kind = type(value)
    if value is None:
        data = b"n"
    elif kind is bool:
        data = b"b1" if value else b"b0"
    elif kind is int:
        data = b"i" + format(value, "x").encode()  # hex: str() of a huge int raises
    elif kind is float:
        data = (b"i" + format(int(value), "x").encode() if value.is_integer()
                else b"f" + format(value, ".12g").encode())  # fmt: skip
    elif kind is complex:
        parts = [_digest(value.real, depth + 1, budget), _digest(value.imag, depth + 1, budget)]
        if value.imag == 0:
            return parts[0]
        data = b"c" + b"".join(parts)
    elif kind is str:
        data = b"s" + value.encode("utf-8", "surrogatepass")
    elif kind in (bytes, bytearray):
        data = b"y" + bytes(value)
    elif kind in (list, tuple, set, frozenset, *_MAPPINGS):
        items = [x for pair in value.items() for x in pair] if kind in _MAPPINGS else value
        parts = []
        for item in items:
            part = _digest(item, depth + 1, budget)
            if part is None:  # one item is enough: stop before walking the rest of a large value
                return None
            parts.append(part)
        if kind in (list, tuple):
            data = (b"l" if kind is list else b"t") + b"".join(parts)
        elif kind in _MAPPINGS:  # unordered, as == compares them: sorted by (key, value) pairs
            data = b"m" + b"".join(sorted(k + v for k, v in zip(parts[::2], parts[1::2], strict=True)))
        else:
            data = b"S" + b"".join(sorted(parts))
    else:
        return None
    return hashlib.sha256(data).digest()


def _recorder(values: list):
    """The function the tests wrap around each call: notes the value's digest, returns the value itself."""

    def record(value):
        try:
            values.append(_digest(value, 0, [_MAX_ITEMS]))
        except Exception:  # noqa: BLE001 (too deep for the interpreter, out of memory: not digested)
            values.append(None)
        return value

    return record


def _value(values: list) -> str:
    if not values or None in values:
        return "-"
    return hashlib.sha256(b"".join(values)).hexdigest()[:32]


def _limit(limits: dict) -> None:
    mb = 1024 * 1024
    # soft < hard: the soft CPU limit sends SIGXCPU (a `timeout`), the hard one SIGKILL to code that catches it
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
    for which, value in (
        (resource.RLIMIT_AS, limits["memory_mb"] * mb),
        (resource.RLIMIT_NPROC, limits["max_processes"]),
        (resource.RLIMIT_FSIZE, limits["max_file_mb"] * mb),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(which, (value, value))


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "pass"
    if isinstance(exc, AssertionError):
        return "fail"
    return "error:" + (_NAME.sub("", type(exc).__name__)[:40] or "Unknown")


def _child(code: str, tests: list, start: int, limits: dict, out: int) -> None:
    """In the forked child: define the function, run assertions `start`... and report `index outcome` lines."""
    os.setpgid(0, 0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.chdir(limits["workdir"])
    _limit(limits)
    _no_fork()
    random.seed(0)
    values: list = []
    namespace = {"__name__": "__sandbox__", RECORDER: _recorder(values)}
    try:
        exec(compile(code, "<function>", "exec"), namespace)
        failed = None
    except BaseException as exc:  # the function does not even load: every assertion gets its error
        failed = _outcome(exc)
    os.write(out, b"loaded\n")
    for i in range(start, len(tests)):
        outcome = failed
        values.clear()
        if outcome is None:
            try:
                exec(compile(tests[i], "<test>", "exec"), namespace)
                outcome = "pass"
            except BaseException as exc:
                outcome = _outcome(exc)
        os.write(out, f"{i} {outcome} {_value(values)}\n".encode())


def _death(status: int) -> str:
    """The outcome of an assertion whose child died before reporting it."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return "timeout"
        try:
            return f"error:{signal.Signals(sig).name}"
        except ValueError:  # a real-time signal has no name
            return f"error:Signal{sig}"
    return "error:Exit"


_LONGEST_REPORT = 128  # "<index> error:<Type> <digest>": the type is cut at 40 characters, the digest has 32


def _run_from(code: str, tests: list, start: int, limits: dict, outcomes: list, values: list, job_end: float) -> None:
    """One child for assertions `start`...; fills `outcomes` and `values` with what it reports, kills it when it
    overstays."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            _child(code, tests, start, limits, write)
        finally:
            os._exit(0)
    os.close(write)
    with contextlib.suppress(OSError):  # as the child does: its group exists before either one kills it
        os.setpgid(pid, pid)
    buffer, current, loaded = b"", start, False
    deadline = time.monotonic() + limits["timeout_s"]
    while True:
        wait = min(deadline, job_end) - time.monotonic()
        if wait <= 0 or not select.select([read], [], [], wait)[0]:
            _kill(pid)
            # stuck loading the function: every assertion would be, too; past the job's cap: the rest, too
            last = current + 1 if loaded and time.monotonic() < job_end else len(tests)
            for i in range(current, last):
                outcomes[i] = "timeout"
            break
        data = os.read(read, 4096)
        if not data:  # the child exited or closed the pipe: it may still run, so it goes first
            status = _kill(pid)
            if current < len(tests) and outcomes[current] is None:
                outcomes[current] = _death(status)
            break
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        buffer = buffer[-_LONGEST_REPORT:]  # a longer line is not a report: keep only what could end one
        for line in lines:
            if line == b"loaded":
                loaded = True
                continue
            fields = line.decode(errors="replace").split(" ")
            index, outcome, value = fields if len(fields) == 3 else ("", "", "")
            if (index != str(current) or current >= len(tests) or not OUTCOME.fullmatch(outcome)
                    or not VALUE.fullmatch(value)):  # fmt: skip
                continue  # the code wrote to the report pipe itself: not the outcome the runner waits for
            outcomes[current] = outcome
            values[current] = None if value == "-" else value
            current += 1
            deadline = time.monotonic() + limits["timeout_s"]  # the budget is per assertion
    os.close(read)


def _kill(pid: int) -> int:
    """Kills the child's process group and reaps the child: its wait status."""
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def run_job(code: str, tests: list, limits: dict) -> tuple[list, list]:
    """Each assertion's outcome and value digest."""
    outcomes, values = [None] * len(tests), [None] * len(tests)
    job_end = time.monotonic() + limits["timeout_s"] * (len(tests) + 1)
    while None in outcomes:
        start = outcomes.index(None)
        _run_from(code, tests, start, limits, outcomes, values, job_end)
        if outcomes[start] is None:  # the child went without reporting it: each round settles one at least
            outcomes[start] = "error:Exit"
        if limits["sandboxed"]:
            # the runner is the sandbox's PID 1: this ends whatever the child left behind (setsid, daemons)
            # and only inside the sandbox's own PID namespace
            with contextlib.suppress(ProcessLookupError):  # nothing left
                os.kill(-1, signal.SIGKILL)
    return outcomes, values


def main() -> None:
    limits = json.loads(sys.stdin.readline())
    if limits["sandboxed"] and os.getpid() != 1:
        raise SystemExit("sandbox_runner: sandboxed but not PID 1 of its own PID namespace")
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # PID 1 gets only the signals it handles: none from the code
    _not_dumpable()
    # every job starts from the same empty directory: its outcomes must not depend on the jobs before it
    base = limits["workdir"]
    limits["workdir"] = os.path.join(base, "job")
    for line in sys.stdin:
        job = json.loads(line)
        os.mkdir(limits["workdir"], 0o700)
        outcomes, values = run_job(job["code"], job["tests"], limits)
        if limits["sandboxed"]:
            while True:  # reap what the kill left (orphans come to PID 1)
                try:
                    if os.waitpid(-1, os.WNOHANG)[0] == 0:
                        break
                except ChildProcessError:
                    break
        clean = _empty(base)
        # `last`: this runner ends, and a fresh one (a fresh /tmp) takes the next job
        sys.stdout.write(json.dumps({"outcomes": outcomes, "values": values, "last": not clean}) + "\n")
        sys.stdout.flush()
        if not clean:
            return


if __name__ == "__main__":
    main()
