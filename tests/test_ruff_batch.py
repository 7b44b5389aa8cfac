import os
import subprocess
import sys
from pathlib import Path

import pytest

from evoselfcode.datagen.utils import ruff as ruff_module
from evoselfcode.datagen.utils.ruff import SYNTAX_ERROR, RuffError, ruff_check, ruff_command

RULES = ["E9", "F63", "F7", "F82"]
CLEAN = "def add(a, b):\n    return a + b\n"
UNDEFINED = "def add(a, b):\n    return a + c\n"
BROKEN = "def add(a, b):\n    return a +\n"


@pytest.fixture
def count_processes(monkeypatch):
    calls = []
    real_run = subprocess.run

    def counting_run(*args, **kwargs):
        calls.append(args[0] if args else kwargs.get("args"))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(ruff_module.subprocess, "run", counting_run)
    return calls


def test_one_process_lints_many_sources(count_processes):
    sources = [CLEAN, UNDEFINED, BROKEN] * 40
    found = ruff_check(sources, RULES)
    assert len(count_processes) == 1
    assert found == [[], ["F821"], [SYNTAX_ERROR]] * 40


def test_a_broken_file_does_not_hide_the_others():
    found = ruff_check([BROKEN, UNDEFINED, "def f(:\n", "def g():\n    break\n", CLEAN], RULES)
    assert found == [[SYNTAX_ERROR], ["F821"], [SYNTAX_ERROR, SYNTAX_ERROR], ["F701"], []]


def test_codes_come_in_source_order():
    source = "def f():\n    x = a\n    if x is 'y':\n        return b\n"
    assert ruff_check([source], RULES) == [["F821", "F632", "F821"]]


def test_noqa_in_generated_code_does_not_silence_the_check():
    sources = ["# ruff: noqa\ndef f():\n    return c\n", "def f():\n    return c  # noqa: F821\n"]
    assert ruff_check(sources, RULES) == [["F821"], ["F821"]]


def test_project_config_is_ignored(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool.ruff.lint]\nignore = ["F821"]\n')
    monkeypatch.chdir(tmp_path)
    assert ruff_check([UNDEFINED], RULES) == [["F821"]]


def test_only_selected_rules_are_reported():
    assert ruff_check(["import os\ndef f():\n    return c\n"], ["F401"]) == [["F401"]]


def test_undecodable_source_is_reported_not_raised():
    assert ruff_check(["def f():\n    return '\udc80'\n", CLEAN], RULES) == [["E902"], []]


def test_nothing_to_lint_runs_nothing(count_processes):
    assert ruff_check([], RULES) == []
    assert ruff_check([CLEAN], []) == [[]]
    assert count_processes == []


def test_ruff_failing_is_a_clear_error():
    with pytest.raises(RuffError, match="(?s)exited with 2.*NOT_A_RULE"):
        ruff_check([CLEAN], ["NOT_A_RULE"])


def test_missing_ruff_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(ruff_module.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(ruff_module.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(ruff_module.shutil, "which", lambda name: None)
    with pytest.raises(RuffError, match="not installed"):
        ruff_command()


def test_ruff_beside_the_interpreter_is_preferred():
    assert ruff_command() == [str(Path(sys.executable).parent / "ruff")]


def test_hostile_code_is_linted_but_never_run(tmp_path):
    marker = tmp_path / "ran"
    hostile = [
        f"import os\nos.system('touch {marker}')\ndef f():\n    os.system('rm -rf /')\n",
        f"open({str(marker)!r}, 'w').write('x')\ndef f():\n    return 1\n",
        "import os\ndef bomb():\n    while True:\n        os.fork()\nbomb()\n",
        "def spin():\n    while True:\n        pass\nspin()\n",
        f"__import__('pathlib').Path({str(marker)!r}).touch()\n",
    ]
    found = ruff_check(hostile, RULES)
    assert found == [[], [], [], [], []]
    assert not marker.exists()


def test_sources_go_to_shared_memory_only_when_it_has_room(monkeypatch, tmp_path):
    seen = []
    real_directory = ruff_module.tempfile.TemporaryDirectory

    def recording_directory(*args, **kwargs):
        seen.append(kwargs.get("dir"))
        return real_directory(*args, **kwargs)

    monkeypatch.setattr(ruff_module.tempfile, "TemporaryDirectory", recording_directory)
    monkeypatch.setattr(ruff_module, "_SHARED_MEMORY", tmp_path)
    assert ruff_check([UNDEFINED], RULES) == [["F821"]]
    monkeypatch.setattr(ruff_module, "_SHARED_MEMORY", tmp_path / "missing")
    assert ruff_check([UNDEFINED], RULES) == [["F821"]]
    monkeypatch.setattr(ruff_module, "_ROOM_PER_FILE", 2**62)  # more than any disk
    monkeypatch.setattr(ruff_module, "_SHARED_MEMORY", tmp_path)
    assert ruff_check([UNDEFINED], RULES) == [["F821"]]
    assert seen == [str(tmp_path), None, None]


def test_shared_memory_filling_up_mid_write_falls_back_to_the_disk(monkeypatch, tmp_path):
    roots = []
    real_run = ruff_module._run_ruff

    def full_shared_memory(sources, rules, temp_root):
        roots.append(temp_root)
        if temp_root is not None:
            raise OSError(28, "No space left on device")  # another job took the room after we looked
        return real_run(sources, rules, temp_root)

    monkeypatch.setattr(ruff_module, "_SHARED_MEMORY", tmp_path)
    monkeypatch.setattr(ruff_module, "_run_ruff", full_shared_memory)
    assert ruff_check([UNDEFINED], RULES) == [["F821"]]
    assert roots == [str(tmp_path), None]


def test_directories_of_killed_jobs_are_removed_from_shared_memory(monkeypatch, tmp_path):
    orphan = tmp_path / "evoselfcode-ruff-999999999-x1"  # no such process
    live = tmp_path / f"evoselfcode-ruff-{os.getpid()}-x2"
    other = tmp_path / "someone-else"
    for path in (orphan, live, other):
        path.mkdir()
        (path / "s0000000.py").write_text("x = 1\n")
    monkeypatch.setattr(ruff_module, "_SHARED_MEMORY", tmp_path)
    assert ruff_check([UNDEFINED], RULES) == [["F821"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
