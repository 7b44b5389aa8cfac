"""Hostile model output in the clean reference run (see reliability.DESCRIPTIONS): code that would delete files
and spawn processes, names that look like paths and shell commands, an id with shell syntax. The code is
parsed and linted, never run; the names and ids are data, never a path or a shell word."""

import pytest
from reliability import HOSTILE_NAMES, PWNED, VICTIM, read_jsonl, reference, reference_root

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    reference(tmp_path_factory.mktemp("reference"))
    return reference_root()


def test_hostile_code_is_checked_as_data_and_never_run(root):
    raw = [r for r in read_jsonl(root / "data/generated/code/raw.jsonl") if r["desc_id"] == "h-code"]
    assert raw and all("shutil.rmtree" in r["code"] and "__import__" in r["code"] for r in raw)
    checked = read_jsonl(root / "data/generated/code/filtered.jsonl") + read_jsonl(
        root / "data/generated/code/rejects.jsonl"
    )
    assert {(r.get("desc_id") or r["meta"]["desc_id"]) for r in checked} >= {"h-code"}
    assert not list(PWNED.parent.glob(PWNED.name + "*"))  # no touch, subprocess, open or module-level call ran
    assert (VICTIM / "keep.txt").read_text() == "must survive"  # and no rmtree


def test_path_and_shell_names_are_rejected_and_touch_nothing(root):
    rejects = read_jsonl(root / "data/generated/names/rejects.jsonl")
    for desc_id in HOSTILE_NAMES:
        mine = [r for r in rejects if r["desc_id"] == desc_id]
        assert len(mine) == 4 and all(r["reason"] for r in mine)  # 2 modes x n=2, all rejected with a reason
    kept = read_jsonl(root / "data/generated/names/filtered.jsonl")
    assert not {k["desc_id"] for k in kept} & HOSTILE_NAMES.keys()
    paths = [p.relative_to(root).as_posix() for p in root.rglob("*")]
    assert not [p for p in paths if any(c in p for c in ";$`|&<>") or "passwd" in p or "etc" in p.split("/")]
    assert not (root / "x").exists()  # the id "$(touch x);`id`" never reached a shell
