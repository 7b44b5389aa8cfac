"""The request journal and the atomic writer after a kill cut a write short (the workflow tests cannot aim a
SIGKILL at the middle of one write, so these write the leftovers a kill leaves and then resume)."""

from evoselfcode.clients.base import Choice
from evoselfcode.datagen.pipeline.journal import Journal
from evoselfcode.datagen.writer import write_jsonl


def test_an_answer_after_a_line_cut_short_by_a_kill_is_kept(tmp_path):
    path = tmp_path / ".00000.journal.jsonl"
    journal = Journal(path)
    journal.record("a", [Choice(text="first")])
    journal.close()
    with open(path, "a") as fh:
        fh.write('{"key": "b", "choices": [{"text": "cut sh')  # the kill came mid-line
    journal = Journal(path)
    assert journal.get("b") is None  # asked again
    journal.record("b", [Choice(text="second")])
    journal.close()
    resumed = Journal(path)
    assert [c.text for c in resumed.get("a")] == ["first"]
    assert [c.text for c in resumed.get("b")] == ["second"]


def test_a_temporary_file_left_by_a_killed_writer_is_cleared_by_the_next_write(tmp_path):
    out = tmp_path / "raw" / "00000.jsonl"
    out.parent.mkdir()
    stale = out.parent / ".00000.jsonl.k1ll3d.tmp"
    stale.write_text('{"half": ')
    other = out.parent / ".00001.jsonl.k1ll3d.tmp"  # another output's: not ours to touch
    other.write_text("{}")
    write_jsonl(out, [{"a": 1}])
    assert out.read_text() == '{"a": 1}\n'
    assert not stale.exists() and other.exists()
