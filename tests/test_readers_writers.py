import json
import math
import os
import stat
import subprocess
import sys

import pytest

from evoselfcode.datagen.readers import read_jsonl, read_models
from evoselfcode.datagen.schemas import CodeRecord, Description, ScoredRecord
from evoselfcode.datagen.writers import write_json, write_jsonl


def test_round_trip_of_models_and_dicts(tmp_path):
    path = tmp_path / "sub" / "out.jsonl"
    assert write_jsonl(path, [Description(id="a", desc="x"), {"id": "b", "desc": "ü"}]) == 2
    assert [d.id for d in read_models(path, Description)] == ["a", "b"]
    assert "ü" in path.read_text(encoding="utf-8")


# a final record as execute_tests writes it: `sample_index` after the other fields of `meta`, before its extras
FINAL = (
    '{"desc":"d","func_name":"f","source":"FIM","code":"def f():\\n    return 1\\n","meta":{"params":'
    '{"temperature":0.2,"top_p":0.95,"max_new_tokens":384},"seed":7,"desc_id":"d1","sample_index":3,"model":"m",'
    '"finish_reason":"stop","trimmed":false,"tests":{"passed":2}},"tests":["assert f() == 1"]}'
)


def test_a_final_record_keeps_its_sample_index_and_its_bytes(tmp_path):
    path = tmp_path / "filtered.jsonl"
    path.write_text(FINAL + "\n")
    (record,) = read_models(path, CodeRecord)
    extras = {"model": "m", "finish_reason": "stop", "trimmed": False, "tests": {"passed": 2}}
    assert record.meta.sample_index == 3 and record.meta.model_extra == extras
    write_jsonl(path, [record])
    assert path.read_text() == FINAL + "\n"  # the same keys in the same order


def test_a_final_record_written_without_sample_index_loads_as_sample_0():
    old = json.loads(FINAL)
    del old["meta"]["sample_index"]
    assert CodeRecord.model_validate(old).meta.sample_index == 0


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


def test_a_non_finite_float_reads_back_as_written(tmp_path):
    # a token the model finds impossible has log-prob -inf: its function's perplexity is inf, not null
    meta = {"params": {}, "seed": 1, "desc_id": "d"}
    score = {"ppl": math.inf, "mean_logprob": -math.inf, "tokens": 3}
    scored = ScoredRecord(desc="x", func_name="f", source="FIM", code="def f(): ...", meta=meta, score=score)
    write_jsonl(tmp_path / "scored.jsonl", [scored])
    (back,) = read_models(tmp_path / "scored.jsonl", ScoredRecord)
    assert (back.score.ppl, back.score.mean_logprob) == (math.inf, -math.inf)


def test_a_corrupt_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{oops\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3"):
        list(read_jsonl(path))


def test_json_is_stable(tmp_path):
    write_json(tmp_path / "m.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'


def test_json_keeps_the_dicts_order_when_asked(tmp_path):
    write_json(tmp_path / "m.json", {"generated": 3, "parsed": 2, "kept": 1}, sort_keys=False)
    assert list(json.loads((tmp_path / "m.json").read_text())) == ["generated", "parsed", "kept"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_honour_the_umask(tmp_path, umask, mode):
    """Like any file a program creates: teammates on a shared filesystem read the data under umask 0022."""
    script = (
        "import sys; from evoselfcode.datagen.writers import DIR_MODE, write_json, write_jsonl; "
        "write_jsonl(sys.argv[1] + '/a.jsonl', [{'n': 1}]); write_json(sys.argv[1] + '/m.json', {}); print(DIR_MODE)"
    )
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, capture_output=True, text=True,
                         preexec_fn=lambda: os.umask(umask))  # fmt: skip
    assert int(run.stdout) == mode | 0o111 & ~umask  # folders (the dataset's): the same, plus search
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {"a.jsonl": mode, "m.json": mode}
