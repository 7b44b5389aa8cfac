"""`evoselfcode stats / sample / validate / config-docs`: commands users run on outputs, with no config."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evoselfcode import config_docs
from evoselfcode.cli import main
from evoselfcode.tools import detect_schema

ROOT = Path(__file__).resolve().parent.parent
RECORD = {"desc": "Sum a list [of numbers].", "func_name": "total", "source": "FIM",
          "code": "def total(xs):\n    return sum(xs)\n",
          "meta": {"params": {}, "seed": 1, "desc_id": "d0"}}  # fmt: skip


def write(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def scored(i, source, ppl):
    return {**RECORD, "func_name": f"f{i}", "source": source, "meta": {**RECORD["meta"], "desc_id": f"d{i}"},
            "score": {"ppl": ppl, "mean_logprob": -1.0, "tokens": 10}}  # fmt: skip


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("data/generated/code/filtered.jsonl", "code/filtered"),
        ("data/generated/code/filtered/00003.jsonl", "code/filtered"),
        ("out/names/raw/00000.jsonl", "names/raw"),
        ("data/generated/names/failures/00001.jsonl", "failures"),
        ("data/generated/code/score_failures.jsonl", "failures"),
        ("data/shards/00002.jsonl", "shards"),
        ("data/shards/quarantine.jsonl", "quarantine"),
        ("data/generated/code/scored.jsonl", "code/scored"),
        ("data/generated/names/timing/00000.jsonl", "timing"),
        ("data/generated/code/tests/timing/00001.jsonl", "timing"),
    ],
)
def test_the_schema_comes_from_the_path(path, schema):
    assert detect_schema(path) == schema


def test_a_summary_json_has_no_record_schema():
    with pytest.raises(ValueError, match="cannot tell the schema"):
        detect_schema("data/generated/code/timing.json")
    with pytest.raises(ValueError, match="cannot tell"):
        detect_schema("timing.json")  # validated from inside code/


def test_validate_passes_a_good_file_and_names_the_bad_line(tmp_path, capsys):
    good = write(tmp_path / "code/filtered.jsonl", [RECORD, RECORD])
    assert main(["validate", str(good)]) == 0
    assert "2 records valid (code/filtered)" in capsys.readouterr().out
    bad = write(tmp_path / "code/filtered.jsonl", [RECORD, {**RECORD, "source": "XYZ"}, "{not json", RECORD])
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2: source:" in err and f"{bad}:3: not JSON" in err
    assert "2 of 4 records invalid" in err


def test_validate_needs_a_schema_for_a_name_it_cannot_read(tmp_path, caplog):
    path = write(tmp_path / "mine.jsonl", [RECORD])
    assert main(["validate", str(path)]) == 1
    assert "pass --schema (shards, quarantine, names/raw" in caplog.text
    assert main(["validate", str(path), "--schema", "code/filtered"]) == 0
    assert main(["validate", str(path), "--schema", "names/raw"]) == 1


def test_validate_accepts_the_global_dedup_rejects_beside_the_shard_rejects(tmp_path):
    shard_reject = {k: v for k, v in RECORD.items() if k != "meta"} | {
        "desc_id": "d0", "sample_index": 0, "seed": 1, "completion": "xs):", "reason": "ruff:F821"}  # fmt: skip
    global_reject = {"desc_id": "d0", "func_name": "total", "source": "L2R", "code": "def total(): pass",
                     "reason": "near_duplicate", "scope": "global"}  # fmt: skip
    assert main(["validate", str(write(tmp_path / "code/rejects.jsonl", [shard_reject, global_reject]))]) == 0


def test_stats_counts_sources_lengths_and_score_quantiles(tmp_path, capsys):
    path = write(tmp_path / "code/scored.jsonl", [scored(i, "FIM" if i < 3 else "L2R", 1.0 + i) for i in range(5)])
    assert main(["stats", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["records"] == 5 and result["source"] == {"FIM": 3, "L2R": 2}
    assert result["descriptions"] == 5
    assert result["score_ppl"]["min"] == 1.0 and result["score_ppl"]["max"] == 5.0 and result["score_ppl"]["p50"] == 3.0
    assert result["code_chars"]["max"] == len(RECORD["code"])
    assert main(["stats", str(path)]) == 0
    assert "source:" in capsys.readouterr().out


def test_stats_and_validate_know_the_tests_stage(tmp_path, capsys):
    tested = [{**RECORD, "tests": [f"assert total([{i}]) == {i}"] * (1 + i)} for i in range(3)]
    kept = write(tmp_path / "code/filtered.jsonl", tested)
    assert main(["stats", str(kept), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tests_per_record"] == {"min": 1, "p5": 1.1, "p50": 2, "p95": 2.9,
                                                                       "max": 3}  # fmt: skip
    reject = {"desc_id": "d0", "func_name": "total", "source": "FIM", "sample_index": 0, "code": RECORD["code"],
              "tests": ["assert total([1]) == 2", "assert total([]) == 0"], "outcomes": ["fail", "error:TypeError"],
              "test_tokens": 12, "reason": "tests_failed"}  # fmt: skip
    rejects = write(tmp_path / "code/tests/rejects/00000.jsonl", [reject])
    assert main(["stats", str(rejects), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_outcomes"] == {"fail": 1, "error": 1}
    assert main(["validate", str(rejects)]) == 0 and "(tests/rejects)" in capsys.readouterr().out
    assert main(["validate", str(write(tmp_path / "code/rejects.jsonl", [reject]))]) == 0


def test_sample_prints_the_code_and_the_description_as_written(tmp_path):
    path = write(tmp_path / "code/filtered.jsonl", [RECORD, {**RECORD, "func_name": "second"}])
    proc = subprocess.run([sys.executable, "-m", "evoselfcode", "sample", str(path), "-n", "1"],
                          capture_output=True, text=True, env={"COLUMNS": "100", "PATH": ""})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Sum a list [of numbers]." in proc.stdout  # brackets are text, not rich markup
    assert "def total(xs):" in proc.stdout and "second" not in proc.stdout


@pytest.mark.parametrize("command", ["stats", "sample", "validate", "config-docs", "plot"])
def test_every_command_has_help(command):
    proc = subprocess.run([sys.executable, "-m", "evoselfcode", command, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: evoselfcode " + command in proc.stdout


def test_the_readme_config_reference_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert config_docs.current(readme) == config_docs.block(), (
        "README.md's config reference is stale: python -m evoselfcode config-docs --write README.md"
    )
    assert main(["config-docs", "--check", str(ROOT / "README.md")]) == 0


def test_the_config_reference_lists_every_key_with_a_meaning():
    from evoselfcode.config import Config

    def keys(model, prefix=""):
        for name, field in model.model_fields.items():
            yield prefix + name
            sub = next((a for a in (field.annotation, *getattr(field.annotation, "__args__", ()))
                        if isinstance(a, type) and hasattr(a, "model_fields")), None)  # fmt: skip
            if sub:
                yield from keys(sub, f"{prefix}{name}.")

    rows = {key: meaning for key, _, _, meaning in config_docs.rows()}
    assert set(rows) == set(keys(Config)) and len(rows) > 80
    assert all(rows.values()), [k for k, v in rows.items() if not v]
    assert "| `io.shard_size` | int > 0 | `1000` |" in config_docs.table()


def test_config_docs_check_fails_on_a_stale_block_and_write_fixes_it(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{config_docs.START}\nold\n{config_docs.END}\n\nmore\n")
    assert main(["config-docs", "--check", str(readme)]) == 1
    assert "out of date" in capsys.readouterr().out
    assert main(["config-docs", "--write", str(readme)]) == 0
    assert main(["config-docs", "--check", str(readme)]) == 0
    assert readme.read_text().startswith("# x\n\n") and readme.read_text().endswith(f"{config_docs.END}\n\nmore\n")
