"""The run summary's next commands and its reason for a run that kept nothing."""

import json
import sys
from pathlib import Path

import pytest

from evoselfcode import summary as summary_module
from evoselfcode.summary import cli_command, remember_report_command, report_command, summary, why_empty


def test_after_make_run_the_next_command_is_make_report_with_the_same_variables():
    assert report_command(["snakemake"], {"EVOSELFCODE_MAKE_VARS": "DESCS=my.txt CONFIG=my.yaml"}) == (
        "make report DESCS=my.txt CONFIG=my.yaml"
    )
    assert report_command(["snakemake"], {"EVOSELFCODE_MAKE_VARS": ""}) == "make report"


def test_after_snakemake_it_is_the_same_arguments_with_report_first():
    argv = ["/venv/bin/snakemake", "--profile", "profiles/local", "--configfile", "configs/local.yaml", "my.yaml",
            "--config", "io={shards_dir: x}"]  # fmt: skip
    assert report_command(argv, {}) == (
        "snakemake --report report.html --profile profiles/local --configfile configs/local.yaml my.yaml "
        "--config 'io={shards_dir: x}'"
    )
    assert report_command(["snakemake", "-n", "-j", "4"], {}) == "snakemake --report report.html -j 4"


def test_the_cli_is_named_as_this_shell_can_call_it(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the venv is outside: named by its absolute path
    monkeypatch.setattr(summary_module.shutil, "which", lambda name: "/usr/bin/evoselfcode")
    assert cli_command() == "evoselfcode"
    monkeypatch.setattr(summary_module.shutil, "which", lambda name: None)
    beside = Path(sys.executable).parent / "evoselfcode"
    expected = str(beside) if beside.is_file() else f"{sys.executable} -m evoselfcode"  # absolute: outside cwd
    assert cli_command() == expected


@pytest.mark.parametrize(
    ("names", "code", "said"),
    [
        ({"descriptions": 3}, {"accounting": {"generated": 4}, "reasons": {"syntax_error": 3, "tests_failed": 1}},
         "all 4 generated functions were dropped (most common reasons: `syntax_error` 3, `tests_failed` 1)"),
        ({"descriptions": 0}, {"accounting": {"generated": 0}}, "no description reached the model"),
        ({"descriptions": 2, "modes": {"FIM": {"kept": 0}}}, {"accounting": {"generated": 0}},
         "no function name passed the name checks"),
        ({"descriptions": 2, "modes": {"FIM": {"kept": 1}}, "failed_requests": 0},
         {"accounting": {"generated": 0}, "failed_requests": 2}, "no function was generated (2 requests failed"),
    ],
)  # fmt: skip
def test_why_a_run_kept_nothing(names, code, said):
    assert why_empty(names, code).startswith(said)


def test_the_cli_summary_prints_the_runs_own_next_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names, code = tmp_path / "names", tmp_path / "code"
    names.mkdir()
    code.mkdir()
    (names / "metrics.json").write_text(json.dumps({"descriptions": 1, "modes": {}, "verdict": None}))
    (code / "metrics.json").write_text(json.dumps({"accounting": {"kept": 0, "generated": 0}, "by_source": {}}))
    assert "(with the run's --profile and --configfile)" in summary(names, code)  # no run remembered one
    remember_report_command(code, "make report DESCS=my.txt")
    text = summary(names, code)
    assert text.endswith("\n  make report DESCS=my.txt") and "  why none   no function name passed" in text


def test_the_summary_says_how_functions_were_chosen_and_where_the_answers_came_from(tmp_path):
    names, code = tmp_path / "names", tmp_path / "code"
    names.mkdir()
    code.mkdir()
    (names / "metrics.json").write_text(json.dumps({"descriptions": 2, "verdict": None, "modes": {
        "FIM": {"kept": 2, "sampled": 4}}}))  # fmt: skip
    selection = {"selection": "agreement", "candidates": 6, "candidates_per_description": {"3": 2},
                 "winner_sizes": {"2": 1, "1": 1}, "asserts": 9, "wrong": 2, "non_discriminating": 1}  # fmt: skip
    metrics = {"accounting": {"kept": 2, "generated": 6}, "by_source": {"FIM": {"kept": 2}}, "selection": selection}
    (code / "metrics.json").write_text(json.dumps(metrics))
    (names / "timing.json").write_text(json.dumps({"by_mode": {"FIM": {"requests": 4, "resumed": 4}}}))
    (code / "timing.json").write_text(json.dumps({"by_mode": {"FIM": {"requests": 3, "resumed": 1}},
                                                  "tests": {"requests": 2, "resumed": 0}}))  # fmt: skip
    text = summary(names, code, report="make report")
    assert "by agreement: 3.0 candidates per description, 2 winning groups; of 9 test asserts 2 wrong" in text
    assert "9 behind these outputs: 5 read from the answer store, 4 asked of the server" in text
