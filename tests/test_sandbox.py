"""Generated code runs in a real bubblewrap sandbox: hostile code gets a stable outcome and harms nothing outside."""

import logging
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from evoselfcode.config import Execution
from evoselfcode.datagen import sandbox
from evoselfcode.datagen.sandbox import INSTALL_HINT, Job, SandboxError, run_jobs, sandbox_problem

FAST = Execution(timeout_s=2.0, cpu_s=4, memory_mb=256)  # slack for a loaded CI machine
UNSAFE = FAST.model_copy(update={"sandbox": "none-unsafe"})
ADD = "def add(a, b):\n    return a + b\n"


def job(code: str, *tests: str) -> Job:
    return Job(textwrap.dedent(code), tests)


def test_each_assertion_gets_its_own_outcome():
    [outcomes] = run_jobs([job(ADD, "assert add(1, 2) == 3", "assert add(1, 2) == 4", "assert add(1, 'x') == 1",
                               "assert add(2, 2) == 4")], FAST, workers=1)  # fmt: skip
    assert outcomes == ["pass", "fail", "error:TypeError", "pass"]


def test_outcomes_come_back_in_job_order_from_several_workers():
    jobs = [job(f"def f():\n    return {i}\n", f"assert f() == {i}", f"assert f() == {i + 1}") for i in range(12)]
    assert run_jobs(jobs, FAST, workers=3) == [["pass", "fail"]] * 12


def test_a_function_that_does_not_load_fails_every_assertion_with_its_error():
    [outcomes] = run_jobs([job("def f(:\n", "assert f() == 1", "assert f() == 2")], FAST, workers=1)
    assert outcomes == ["error:SyntaxError", "error:SyntaxError"]


@pytest.fixture
def outside(tmp_path):
    """A directory of the host with a file and a secret in it, which no code in the sandbox may touch."""
    (tmp_path / "keep.txt").write_text("precious")
    (tmp_path / "secret.txt").write_text("s3cr3t-file")
    return tmp_path


def test_hostile_code_gets_stable_reasons_the_run_goes_on_and_nothing_outside_is_harmed(outside, monkeypatch):
    monkeypatch.setenv("QWEN_API_KEY", "s3cr3t-key")
    listener = socket.create_server(("127.0.0.1", 0))  # like the model server's port on this host
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    keep, secret = outside / "keep.txt", outside / "secret.txt"
    hostile = {
        "deletes files": job(f"""
            import os, shutil
            def f():
                shutil.rmtree({str(outside)!r})
                return 1
            """, "assert f() == 1"),
        "writes outside its directory": job("""
            def f(path):
                with open(path, "w") as fh:
                    fh.write("pwned")
                return 1
            """, f"assert f({str(keep)!r}) == 1", "assert f('/usr/pwned') == 1", "assert f('../../pwned') == 1",
            "assert f('mine.txt') == 1"),
        "kills its parent": job("""
            import os, signal
            def f():
                os.kill(os.getppid(), signal.SIGKILL)
                os.kill(1, signal.SIGKILL)
                os.kill(-1, signal.SIGKILL)
                return 1
            """, "assert f() == 1"),
        "forks without end": job("""
            import os
            def f():
                while True:
                    os.fork()
            """, "assert f() is None"),
        "allocates without end": job("""
            def f():
                blocks = []
                while True:
                    blocks.append(bytearray(10**7))
            """, "assert f() is None"),
        "loops forever": job("""
            def f(x):
                while True:
                    x += 1
            """, "assert f(1) == 2", "assert 1 + 1 == 2"),
        "sleeps": job("""
            import time
            def f():
                time.sleep(60)
            """, "assert f() is None", "assert 2 == 2"),
        "loops forever while loading": job("while True:\n    pass\n", "assert f() == 1", "assert f() == 2"),
        "connects to the host's port": job(f"""
            import socket
            def f():
                socket.create_connection(("127.0.0.1", {port}), timeout=1).sendall(b"{secret.read_text()}")
                return 1
            """, "assert f() == 1"),
        "connects to the internet": job("""
            import socket
            def f():
                socket.create_connection(("1.1.1.1", 80), timeout=1)
                return 1
            """, "assert f() == 1"),
        "reads the environment": job("""
            import os
            def f():
                return os.environ.get("QWEN_API_KEY")
            """, "assert f() == 's3cr3t-key'", "assert f() is None",
            "assert 'QWEN_API_KEY' not in open('/proc/1/environ').read()"),
        "reads a host file": job(f"""
            def f():
                return open({str(secret)!r}).read()
            """, "assert f() == 's3cr3t-file'"),
        "is fine": job(ADD, "assert add(2, 3) == 5"),
    }  # fmt: skip
    outcomes = dict(zip(hostile, run_jobs(list(hostile.values()), FAST, workers=2), strict=True))

    assert outcomes == {
        "deletes files": ["error:FileNotFoundError"],
        # the sandbox's root is read-only (EROFS): only its private /tmp takes files
        "writes outside its directory": ["error:FileNotFoundError", "error:OSError", "error:OSError", "pass"],
        "kills its parent": ["error:ProcessLookupError"],  # kill(-1) finds nothing it may kill; the others are ignored
        "forks without end": ["error:BlockingIOError"],
        "allocates without end": ["error:MemoryError"],
        "loops forever": ["timeout", "pass"],
        "sleeps": ["timeout", "pass"],
        "loops forever while loading": ["timeout", "timeout"],
        "connects to the host's port": ["error:ConnectionRefusedError"],
        "connects to the internet": ["error:OSError"],
        "reads the environment": ["fail", "pass", "error:PermissionError"],  # nor can it read PID 1's
        "reads a host file": ["error:FileNotFoundError"],
        "is fine": ["pass"],
    }
    assert keep.read_text() == "precious" and secret.exists()
    assert not os.path.exists("/usr/pwned") and not os.path.exists("/pwned")
    with pytest.raises(TimeoutError):
        listener.accept()  # nothing reached the host's port
    listener.close()


def test_same_jobs_same_outcomes():
    jobs = [job("import random\ndef f():\n    return random.random()\n", "assert f() < 0.5"),
            job("def f():\n    return hash('abc') % 2\n", "assert f() == 0")]  # fmt: skip
    assert run_jobs(jobs, FAST, workers=1) == run_jobs(jobs, FAST, workers=2)


def test_without_bubblewrap_the_step_fails_saying_how_to_install_it(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxError, match="apt-get install bubblewrap") as exc:
        run_jobs([job(ADD, "assert add(1, 1) == 2")], FAST, workers=1)
    assert str(exc.value) == INSTALL_HINT


def test_unsafe_mode_runs_the_same_but_warns(caplog, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no bwrap needed
    unsafe = FAST.model_copy(update={"sandbox": "none-unsafe"})
    with caplog.at_level(logging.WARNING):
        assert run_jobs([job(ADD, "assert add(1, 1) == 2", "assert add(1, 1) == 3")], unsafe, workers=1) == [
            ["pass", "fail"]
        ]
    assert "WITHOUT a sandbox" in caplog.text


def test_a_child_that_exits_or_dies_gets_an_outcome_and_the_next_assertion_runs():
    code = """
        import os
        def f(how):
            if how == 'exit':
                os._exit(3)
            if how == 'abort':
                os.abort()
            return 1
        """
    [outcomes] = run_jobs([job(code, "assert f('exit') == 1", "assert f('abort') == 1", "assert f('no') == 1")],
                          FAST, workers=1)  # fmt: skip
    assert outcomes == ["error:Exit", "error:SIGABRT", "pass"]


def test_code_that_spends_its_cpu_time_times_out(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # the runner as a plain process: the rlimits are the same
    cpu_bound = UNSAFE.model_copy(update={"timeout_s": 30.0, "cpu_s": 1})  # the CPU limit comes first
    code = "def f():\n    while True:\n        pass\n"
    assert run_jobs([job(code, "assert f() is None", "assert 1 + 1 == 2")], cpu_bound, workers=1) == [
        ["timeout", "pass"]
    ]


@pytest.mark.timeout(60)
def test_code_that_closes_the_report_pipe_and_sleeps_is_killed_in_time():
    code = """
        import os, time
        def f():
            os.closerange(3, 64)
            time.sleep(30)
        """
    began = time.monotonic()
    [outcomes] = run_jobs([job(code, "assert f() is None", "assert 2 == 2")], FAST, workers=1)
    assert time.monotonic() - began < 15
    assert outcomes == ["error:SIGKILL", "pass"]  # killed once the pipe closed, then the next assertion runs


WRITES_REPORTS = """
    import os
    def f(lines):
        for fd in range(3, 64):  # whichever is the report pipe
            try:
                os.write(fd, lines.encode())
            except OSError:
                pass
        os._exit(0)
    """


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "forged", ["1 pass -\n", "5 pass -\n-1 pass -\n0 pass! -\n0 error: -\n0 pass\n0 pass x\n0 pass - -\n"]
)  # the first looped; the last three have no value, or not one
def test_reports_for_other_assertions_or_not_shaped_like_outcomes_are_ignored(forged):
    [outcomes] = run_jobs([job(WRITES_REPORTS, f"assert f({forged!r})", "assert 1 == 2")], FAST, workers=1)
    assert outcomes == ["error:Exit", "fail"]


@pytest.mark.timeout(60)
def test_a_flood_without_newlines_on_the_report_pipe_is_read_in_linear_time():
    flood = "x" * (16 << 20)  # each read appended to a growing buffer and split again: quadratic, a timeout
    [outcomes] = run_jobs([job(WRITES_REPORTS, f"assert f('{flood[:8]}' * {len(flood) // 8} + '\\n0 pass -\\n')",
                               "assert 1 == 2")], FAST, workers=1)  # fmt: skip
    assert outcomes == ["pass", "error:Exit"]  # its own assertion, forged after the flood: the runner kept up


def test_the_limit_the_docstring_states_passes_for_its_own_function_can_be_forged():
    # it reports a pass for the assertion it runs and the next one, then exits
    jobs = [
        job(WRITES_REPORTS, "assert f('0 pass -\\n1 pass -\\n')", "assert 1 == 2"),
        job(ADD, "assert add(1, 1) == 3"),
    ]
    assert run_jobs(jobs, UNSAFE, workers=1) == [["pass", "pass"], ["fail"]]  # if this fails, update the docstrings


FORGES_THE_ANSWERS = """
    def f():
        with open('/proc/1/fd/1', 'w') as fh:  # the runner's answers to the host
            fh.write('{"outcomes": ["pass"]}\\n' * 3)
        return 1
    """
TRACES_THE_RUNNER = """
    import ctypes
    def f():
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.ptrace(0x4206, 1, 0, 0) == 0:  # PTRACE_SEIZE the runner: it could then rewrite its answers
            return 0
        return ctypes.get_errno()
    """


def test_code_cannot_reach_the_runner_to_forge_the_outcomes_of_other_functions():
    jobs = [job(FORGES_THE_ANSWERS, "assert f() == 2"), job(ADD, "assert add(1, 1) == 3"),
            job(ADD, "assert add(1, 1) == 4"), job(TRACES_THE_RUNNER, "assert f() == 1")]  # fmt: skip
    assert run_jobs(jobs, FAST, workers=1) == [["error:PermissionError"], ["fail"], ["fail"], ["pass"]]  # EPERM


LEAVES_FILES = """
    def f(path):
        with open(path, 'w') as fh:
            fh.write('left')
        return True
    """
FINDS_FILES = """
    import os
    def found(path):
        return os.path.exists(path)
    """


def test_what_a_function_leaves_behind_is_gone_for_the_next_one_and_the_sandbox_root_is_read_only():
    # else a function's outcome would depend on which function ran before it in the same worker
    jobs = [
        job(LEAVES_FILES, "assert f('/tmp/left')", "assert f('left')", "assert f('/left')", "assert f('/dev/shm/x')"),
        job(FINDS_FILES, "assert not found('/tmp/left')", "assert not found('/left')",
            "assert not found('/dev/shm/x')"),
    ]  # fmt: skip
    assert run_jobs(jobs, FAST, workers=1) == [["pass", "pass", "error:OSError", "error:OSError"], ["pass"] * 3]


def test_files_the_code_made_unreadable_are_removed_after_its_job(monkeypatch):
    code = """
        import os
        def f():
            os.makedirs('/tmp/locked/inner')
            open('/tmp/locked/inner/x', 'w').close()
            os.chmod('/tmp/locked/inner', 0)
            os.chmod('/tmp/locked', 0)
            return True
        """
    jobs = [job(code, "assert f()"), job(FINDS_FILES, "assert not found('/tmp/locked')")]
    assert run_jobs(jobs, FAST, workers=1) == [["pass"], ["pass"]]


def test_a_tree_too_deep_to_remove_gets_the_next_function_a_fresh_sandbox():
    code = """
        import os
        def f():
            for _ in range(1500):  # deeper than the recursion limit of os.walk and shutil.rmtree
                os.mkdir('d')
                os.chdir('d')
            return True
        """
    jobs = [job(code, "assert f()"), job(FINDS_FILES, "assert not found('/tmp/job/d')", "assert found('/tmp')")]
    assert run_jobs(jobs, FAST, workers=1) == [["pass"], ["pass", "pass"]]


WRONG_RUNNER = """
import json, sys
sys.stdin.readline()
for line in sys.stdin:
    print(json.dumps({"outcomes": ["pass"]}), flush=True)  # one outcome, whatever the number of assertions
"""


def test_an_answer_that_does_not_fit_its_job_fails_the_step_instead_of_being_recorded(tmp_path, monkeypatch):
    runner = tmp_path / "runner.py"
    runner.write_text(WRONG_RUNNER)
    monkeypatch.setattr(sandbox, "RUNNER", runner)
    with pytest.raises(SandboxError, match="2 assertions"):
        run_jobs([job(ADD, "assert add(1, 1) == 2", "assert add(1, 1) == 3")], FAST, workers=1)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the seccomp filter is for x86-64")
def test_x32_abi_syscalls_do_not_pass_the_filter(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    code = """
        import ctypes
        def f():
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall(0x40000000 | 57)  # fork, by its x32 number
            return ctypes.get_errno()
        """
    assert run_jobs([job(code, "assert f() == 11")], UNSAFE, workers=1) == [["pass"]]  # EAGAIN, as for fork


def test_without_seccomp_on_another_architecture_a_warning_says_what_bounds_a_fork_bomb(monkeypatch, caplog):
    monkeypatch.setattr(sandbox.platform, "machine", lambda: "aarch64")
    sandbox._warn_unfiltered.cache_clear()
    with caplog.at_level(logging.WARNING):
        run_jobs([job(ADD, "assert add(1, 1) == 2")], FAST, workers=1)
        run_jobs([job(ADD, "assert add(1, 1) == 2")], FAST, workers=1)
    sandbox._warn_unfiltered.cache_clear()
    assert caplog.text.count("RLIMIT_NPROC") == 1 and "not enforced for root" in caplog.text


HANGING_RUNNER = """
import json, sys, time
sys.stdin.readline()
for line in sys.stdin:
    job = json.loads(line)
    if "HANG" in job["code"]:
        time.sleep(3600)
    print(json.dumps({"outcomes": ["pass"] * len(job["tests"]), "values": [None] * len(job["tests"])}), flush=True)
time.sleep(3600)  # nor does it end at the end of its input
"""


@pytest.mark.timeout(60)
def test_a_worker_that_does_not_answer_is_killed_its_job_times_out_and_a_fresh_one_goes_on(
    tmp_path, monkeypatch, caplog
):
    runner = tmp_path / "runner.py"
    runner.write_text(HANGING_RUNNER)
    monkeypatch.setattr(sandbox, "RUNNER", runner)
    monkeypatch.setattr(sandbox, "HOST_SLACK_S", 1.0)
    jobs = [job("HANG = 1\n", "assert 1", "assert 2"), job(ADD, "assert add(1, 1) == 2")]
    began = time.monotonic()
    with caplog.at_level(logging.WARNING):
        assert run_jobs(jobs, FAST, workers=1) == [["timeout", "timeout"], ["pass"]]
    assert time.monotonic() - began < 30
    assert "did not answer" in caplog.text


def test_the_check_before_start_names_a_missing_or_broken_bubblewrap(monkeypatch, tmp_path):
    assert sandbox_problem(FAST) is None  # bubblewrap works on this machine
    broken = tmp_path / "bwrap"
    broken.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    problem = sandbox_problem(FAST)
    assert "user namespaces" in problem and "Ubuntu 24.04" in problem and "No permissions" in problem
    monkeypatch.setenv("PATH", "/nonexistent")
    assert sandbox_problem(FAST) == INSTALL_HINT
    assert sandbox_problem(UNSAFE) is None


SAME_VALUES = [  # the same values built differently: set and dict orders, sums of floats, 2.0 for 2
    "def f(n):\n    return {str(i): {'a', str(i)} for i in range(n)}, sum([0.1] * 3), 2.0\n",
    "def f(n):\n    d = {}\n    for i in reversed(range(n)):\n        d[str(i)] = frozenset([str(i), 'a'])\n"
    "    return d, 0.3, 2\n",
]
VALUE_TESTS = ("assert f(3) == 1", "assert f(0) == 1", "assert f('x') == 1", "assert f(3)[2] == 2")


def test_each_assertion_gets_the_digest_of_the_values_its_calls_returned():
    other = "def f(n):\n    return {str(i): {'b'} for i in range(n)}, 0.3, 2\n"
    jobs = [Job(code, VALUE_TESTS, calls="f") for code in (*SAME_VALUES, other)]
    same, built_otherwise, differs = sandbox.execute(jobs, FAST, workers=2)
    assert same.outcomes == ["fail", "fail", "error:TypeError", "pass"]  # the expected values are wrong, not the code
    assert same == built_otherwise
    assert [v is None for v in same.values] == [False, False, True, False]  # f('x') raised: no value
    assert all(len(v) == 32 for v in same.values if v)
    assert differs.values[0] != same.values[0] and differs.values[1] == same.values[1]  # f(0): ({}, 0.3, 2) in both
    assert sandbox.execute([Job(SAME_VALUES[0], VALUE_TESTS)], FAST, workers=1)[0].values == [None] * 4  # no calls


def test_values_that_are_not_plain_data_get_no_digest():
    code = """
        class Box:
            pass
        def f(kind):
            if kind == 'object':
                return Box()  # its repr holds an address
            if kind == 'generator':
                return (i for i in range(3))
            if kind == 'deep':
                x = []
                x.append(x)
                return x
            if kind == 'huge':
                return 10 ** 5000  # str() of it raises; its digest does not
            return [1, (2, b'3'), None, True]
        """
    tests = ("assert f('object')", "assert f('generator')", "assert f('deep')", "assert f('huge')", "assert f('plain')")
    [run] = sandbox.execute([Job(textwrap.dedent(code), tests, calls="f")], FAST, workers=1)
    assert run.outcomes == ["pass"] * 5
    assert [v is None for v in run.values] == [True, True, True, False, False]


def test_value_digests_do_not_depend_on_the_hash_seed_or_the_process(tmp_path):
    # the runner pins PYTHONHASHSEED, but a digest must not rest on it: set and dict orders of str vary with it
    program = (
        "import runpy, sys; r = runpy.run_path(sys.argv[1]); "
        "print(r['_digest'](({'x', 'yy', 'zzz'}, {'a': 1.5, 'b': [2]}, frozenset({('k', 3.25)})), 0, [1000]).hex())"
    )
    digests = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run([sys.executable, "-c", program, str(sandbox.RUNNER)], env=env, capture_output=True,
                              text=True, check=True)  # fmt: skip
        digests.add(proc.stdout.strip())
    assert len(digests) == 1 and len(digests.pop()) == 64


def test_code_that_forges_its_values_changes_only_its_own():
    forges = "__evo_value__ = lambda value: 'forged'\ndef f(x):\n    return x\n"
    plain = "def f(x):\n    return x\n"
    jobs = [Job(forges, ("assert f(1) == 'forged'",), calls="f"), Job(plain, ("assert f(1) == 1",), calls="f")]
    forged, honest = sandbox.execute(jobs, FAST, workers=1)
    assert forged.outcomes == ["pass"] and forged.values == [None]  # its own recorder noted nothing
    assert honest.outcomes == ["pass"] and honest.values[0] is not None


def test_each_call_of_the_function_under_test_is_passed_through_the_recorder():
    probed = sandbox.probed("assert f(f(1)) + g(2) == [f(x) for x in y], f(0)", "f")
    assert probed == (
        "assert __evo_value__(f(__evo_value__(f(1)))) + g(2) == [__evo_value__(f(x)) for x in y], __evo_value__(f(0))"
    )
    assert sandbox.probed("assert f(", "f") == "assert f("  # fails the same way in the sandbox
