"""Each rule's settings digest lists exactly the settings its step reads; every setting is placed somewhere.

The steps run in this process on a small input against the fake server, while every read of a config
section's field is noted: what a step reads is what its output may depend on.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakeserver import FakeServer, Options

from evoselfcode import cli, dataset
from evoselfcode.config import Config, Strict, load_config
from evoselfcode.datagen import benchmark_index
from evoselfcode.rule_settings import AFFECTS_NO_OUTPUT, RULE_SETTINGS, rule_digest
from evoselfcode.step_table import BY_COMMAND

ROOT = Path(__file__).resolve().parents[1]
WHERE = "evoselfcode/rule_settings.py"
# Read by no step today, yet in score_code's list: it has one value (`echo`); a second method is read by the step.
# execute_tests: the rule still runs testgen's step, which judges each function alone; selection.py's step reads it.
# execute_tests reads the pass thresholds for a lone candidate or with tests.selection: per_function only
UNREAD = {"score_code": {"scoring.method"}, "execute_tests": {"execution.min_passed", "execution.min_pass_rate"}}
DESCRIPTIONS = [
    "Return the items of a list without duplicates, keeping their order.",
    "Count how often each word occurs in a text.",
    "Compute the moving average of a list of numbers over a window.",
    "Check whether a string reads the same backwards.",
]


def all_settings() -> set[str]:
    """Every `section.key` of the config (nested settings count whole, as in the digests)."""
    return {f"{s}.{k}" for s, field in Config.model_fields.items() for k in field.annotation.model_fields}


def test_every_setting_is_in_a_rules_list_or_declared_to_affect_no_output():
    listed = {key for keys in RULE_SETTINGS.values() for key in keys}
    unplaced = sorted(all_settings() - listed - AFFECTS_NO_OUTPUT.keys())
    assert not unplaced, (
        f"settings in no rule's list: {unplaced}. In {WHERE}, add each to RULE_SETTINGS[rule] for every rule whose "
        "output depends on it, or to AFFECTS_NO_OUTPUT with the reason it changes no output"
    )
    both = sorted(listed & AFFECTS_NO_OUTPUT.keys())
    assert not both, f"{both}: in a rule's list and in AFFECTS_NO_OUTPUT of {WHERE}; it is one or the other"
    unknown = sorted((listed | AFFECTS_NO_OUTPUT.keys()) - all_settings())
    assert not unknown, f"{unknown} in {WHERE} are not settings of evoselfcode/config.py (renamed or removed?)"


def test_each_rule_with_a_list_digests_its_own_list():
    text = "\n".join(p.read_text() for p in sorted((ROOT / "rules").glob("*.smk")))
    specs = {}
    for block in re.split(r"(?m)^(?=rule \w+:)", text):
        if (rule := re.match(r"rule (\w+):", block)) and (spec := re.search(r"\bspec=spec\((.*?)\)", block)):
            specs[rule[1]] = spec[1]
    assert specs == {rule: f'"{rule}"' for rule in RULE_SETTINGS}


def test_a_digest_changes_exactly_with_a_setting_of_its_rule():
    base = Config()
    hotter = load_config(overrides={"codegen": {"temperature": 0.9}})
    elsewhere = load_config(overrides={"io": {"concurrency": 64}, "api": {"base_url": "http://other:8000"}})
    for rule in RULE_SETTINGS:
        assert rule_digest(base, rule) == rule_digest(elsewhere, rule)
        changed = rule_digest(base, rule) != rule_digest(hotter, rule)
        assert changed == ("codegen.temperature" in RULE_SETTINGS[rule]), rule
    with pytest.raises(KeyError, match="codegen.temprature is not a setting"):
        base.settings_digest(["codegen.temprature"])
    with pytest.raises(KeyError, match="no rule 'filter' in RULE_SETTINGS"):
        rule_digest(base, "filter")


class Reads:
    """The `section.key` settings read while it is active, by watching attribute reads on the section models."""

    def __init__(self) -> None:
        self.section_of = {field.annotation: name for name, field in Config.model_fields.items()}
        assert len(self.section_of) == len(Config.model_fields), "two sections share a model class"
        self.keys: set[str] = set()
        self.lock = threading.Lock()

    def __enter__(self) -> set[str]:
        section_of, keys, lock = self.section_of, self.keys, self.lock

        def noting(obj, name):
            cls = type(obj)
            if cls in section_of and name in cls.model_fields:
                with lock:
                    keys.add(f"{section_of[cls]}.{name}")
            return object.__getattribute__(obj, name)

        Strict.__getattribute__ = noting
        return keys

    def __exit__(self, *exc: object) -> None:
        del Strict.__getattribute__


@pytest.fixture(scope="module")
def reads(tmp_path_factory) -> dict[str, set[str]]:
    """Per rule, the settings its step read (called as its command calls it) on a small run."""
    tmp = tmp_path_factory.mktemp("steps")
    source = tmp / "descriptions.jsonl"
    lines = [json.dumps({"id": f"d{i}", "desc": d}) for i, d in enumerate(DESCRIPTIONS)] + ["{not json"]
    source.write_text("\n".join(lines) + "\n")
    got: dict[str, set[str]] = {}

    def run(rule, step, *args):
        with Reads() as keys:
            step(*args)
        got[rule] = keys

    def run_step(command, cfg, **paths):
        """The step as its command runs it: the declared function by keyword, the client built and closed."""
        declared = BY_COMMAND[command]
        (rule,) = declared.rules
        run(rule, cli._run_step, declared, cfg, SimpleNamespace(**paths))

    with FakeServer(Options(seed=1)) as srv, pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)  # the input index is cached in .evoselfcode/ of the working directory
        cfg = Config.model_validate(
            {
                "api": {"base_url": srv.url, "model": "fake-coder"},
                "namegen": {"n": 2},
                "scoring": {
                    "max_ppl": 6.67
                },  # the fake server's perplexities are 6.64 and 6.69 here: one kept, one not
                "io": {"concurrency": 2, "on_bad_line": "skip"},
            }
        )
        p = {name: str(tmp / f"{name}.jsonl") for name in (
            "shard", "quarantine", "names_raw", "names_failures", "names_timing", "names_kept", "names_rejects",
            "code_raw", "code_failures", "code_timing", "code_kept", "code_rejects", "kept", "rejects",
            "tests_raw", "tests_failures", "tests_timing", "tested", "tests_rejects", "tests_selection",
            "scored", "score_rejects", "score_failures", "score_timing", "contaminated",
        )}  # fmt: skip
        metrics = str(tmp / "names_metrics.json")
        run("benchmark_index", benchmark_index.benchmark_index, cfg.decontamination, tmp / "benchmarks")
        (index,) = [str(p) for p in (tmp / "benchmarks").glob("index-*.json")]
        run_step("split", cfg, source=str(source), shard="00000", index=index, out=p["shard"],
                 contaminated=p["contaminated"])  # fmt: skip
        run_step("quarantine", cfg, source=str(source), out=p["quarantine"])
        run_step("generate-names", cfg, shard=p["shard"], out=p["names_raw"], failures=p["names_failures"],
                 timing=p["names_timing"])  # fmt: skip
        run_step("filter-names", cfg, raw=p["names_raw"], out=p["names_kept"], rejects=p["names_rejects"])
        run_step("names-metrics", cfg, raw=p["names_raw"], kept=p["names_kept"], rejects=p["names_rejects"],
                 failures=p["names_failures"], shards=[p["shard"]], quarantine=p["quarantine"],
                 contaminated=[p["contaminated"]], out=metrics)  # fmt: skip
        run_step("generate-code", cfg, names=p["names_kept"], out=p["code_raw"], failures=p["code_failures"],
                 timing=p["code_timing"])  # fmt: skip
        run_step("filter-code", cfg, raw=p["code_raw"], index=index, out=p["code_kept"], rejects=p["code_rejects"])
        run_step("generate-tests", cfg, raw=p["code_raw"], out=p["tests_raw"], failures=p["tests_failures"],
                 timing=p["tests_timing"])  # fmt: skip
        run_step("execute-tests", cfg, kept=p["code_kept"], static_rejects=p["code_rejects"], tests=p["tests_raw"],
                 out=p["tested"], rejects=p["tests_rejects"], selection=p["tests_selection"], workers=1)  # fmt: skip
        run_step("merge-code", cfg, kept=[p["tested"]], shard_rejects=[p["code_rejects"], p["tests_rejects"]],
                 raw=p["code_raw"], failures=[p["code_failures"], p["tests_failures"]], names_metrics=metrics,
                 out=p["kept"], rejects=p["rejects"], metrics=str(tmp / "code_metrics.json"),
                 selection=[p["tests_selection"]], tests=[p["tests_raw"]])  # fmt: skip
        run_step("score", cfg, records=p["kept"], out=p["scored"], rejects=p["score_rejects"],
                 failures=p["score_failures"], timing=p["score_timing"])  # fmt: skip
        inputs = dataset.ExportInputs(Path(p["kept"]), tmp / "code_metrics.json", Path(metrics))
        run("export_dataset", dataset.export, cfg, inputs, tmp / "dataset")
    # every step had something to work on, so the checks below saw each one do its work
    for name in ("shard", "quarantine", "names_kept", "code_kept", "tested", "kept", "scored", "score_rejects"):
        assert Path(p[name]).read_text().strip(), f"{name} is empty: the run exercised too little"
    return got


def test_the_benchmark_index_is_named_by_exactly_the_settings_it_is_built_from(reads):
    # built when the Snakefile is parsed, by no rule: its name (a digest) changes with what it is built from
    assert reads["benchmark_index"] == {f"decontamination.{key}" for key in benchmark_index.INDEX_SETTINGS}


@pytest.mark.parametrize("rule", [*RULE_SETTINGS, "names_metrics"])
def test_a_rule_lists_exactly_the_settings_its_step_reads(reads, rule):
    assert rule in reads, f"{rule} has a settings list but its step is not run: add it to the `reads` fixture above"
    listed = set(RULE_SETTINGS.get(rule, ()))
    read = reads[rule] - AFFECTS_NO_OUTPUT.keys()
    assert not read - listed, (
        f"{rule} reads {sorted(read - listed)}, which are not in RULE_SETTINGS[{rule!r}] of {WHERE}: add them there "
        "(a change would not rerun the rule), or to AFFECTS_NO_OUTPUT if they change no output"
    )
    unread = listed - read - UNREAD.get(rule, set())
    assert not unread, f"RULE_SETTINGS[{rule!r}] of {WHERE} lists {sorted(unread)}, which {rule} never reads"
