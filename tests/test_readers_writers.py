import pytest

from evoselfcode.datagen.readers import read_jsonl, read_models
from evoselfcode.datagen.schemas import Description
from evoselfcode.datagen.writers import write_json, write_jsonl


def test_round_trip_of_models_and_dicts(tmp_path):
    path = tmp_path / "sub" / "out.jsonl"
    assert write_jsonl(path, [Description(id="a", desc="x"), {"id": "b", "desc": "ü"}]) == 2
    assert [d.id for d in read_models(path, Description)] == ["a", "b"]
    assert "ü" in path.read_text(encoding="utf-8")


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"n": 1}])

    def records():
        yield {"n": 2}
        raise KeyboardInterrupt  # a job killed halfway through writing

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(path, records())
    assert list(read_jsonl(path)) == [{"n": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_a_corrupt_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{oops\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3"):
        list(read_jsonl(path))


def test_json_is_stable(tmp_path):
    write_json(tmp_path / "m.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
