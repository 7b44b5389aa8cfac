"""Each rule that runs a declared step passes exactly its declared arguments (evoselfcode/step_table.py).

The rules' shell text is read from Snakemake's own parse of the workflow, once with every optional stage on and
once with the tests stage off, since a rule's shell text may depend on the config.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_workdir

from evoselfcode.cli import _parser
from evoselfcode.step_table import BY_COMMAND, STEPS, Step

WHERE = "evoselfcode/step_table.py"
COMMON = ("--config", "--log")  # every job names the run's config and its rule's log
CONFIGS = {"all stages": "scoring: {enabled: true}\ntests: {enabled: true}\n", "no tests": "tests: {enabled: false}\n"}
DESCRIPTIONS = [{"id": "d0", "desc": "Return the sum of a list of numbers."}]
# Snakemake's parsed workflow: each rule with a shell command, its shell text and which named inputs/outputs it has
PARSE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings()) as api:
    config = ConfigSettings(configfiles=[Path(sys.argv[1])])
    workflow = api.workflow(ResourceSettings(), config, snakefile=Path("Snakefile"))._workflow
    rules = {
        rule.name: {
            "shell": rule.shellcmd,
            "input": {name: bool(files) for name, files in rule.input.items()},
            "output": {name: bool(files) for name, files in rule.output.items()},
            "unnamed": {"input": len(rule.input) > 0 and not rule.input.keys(),
                        "output": len(rule.output) > 0 and not rule.output.keys()},
        }
        for rule in workflow.rules
        if rule.shellcmd
    }
Path(sys.argv[2]).write_text(json.dumps(rules))
"""


def parsed_rules(workdir: Path, config: str) -> dict[str, dict]:
    """The workflow's rules with a shell command, as Snakemake parses them in `workdir` with `config` on top."""
    (workdir / "configs/shape.yaml").write_text(config)
    out = workdir / "rules.json"
    proc = subprocess.run([sys.executable, "-c", PARSE, "configs/shape.yaml", str(out)], cwd=workdir,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def invocation(shell: str) -> tuple[str, list[str], dict[str, list[str]]] | None:
    """`{EVO} <command> POSITIONAL... --flag VALUE...`: the command, its positionals, each flag's values."""
    words = shlex.split(shell)
    if words[:1] != ["{EVO}"]:
        return None
    command, rest = words[1], words[2:]
    positionals, flags, current = [], {}, None
    for word in rest:
        if word.startswith("--"):
            current = flags.setdefault(word, [])
        elif current is None:
            positionals.append(word)
        else:
            current.append(word)
    return command, positionals, flags


def kind_of(word: str) -> str:
    """input, output or value: what a placeholder in the shell text names."""
    for kind in ("input", "output"):
        if word == f"{{{kind}}}" or word.startswith(f"{{{kind}."):
            return kind
    return "value"


def step_disagreements(step: Step, rule: str, positionals: list[str], flags: dict[str, list[str]]) -> list[str]:
    """What in a rule's shell text differs from its step's declaration."""
    where = f"rule {rule} (`{step.command}`)"
    problems = (
        [f"{where}: {step.command} is declared for {step.rules}, not for {rule}"] if rule not in step.rules else []
    )
    declared = [a for a in step.args if a.positional]
    if len(positionals) != len(declared):
        problems.append(
            f"{where}: {len(positionals)} positional(s) {positionals}, declared {[a.name for a in declared]}"
        )
    values = list(zip(declared, ([p] for p in positionals), strict=False))
    by_flag = {a.flag: a for a in step.args if a.flag}
    for flag, words in flags.items():
        if flag in COMMON:
            continue
        if flag not in by_flag:
            problems.append(f"{where}: passes {flag}, which {step.command} does not declare")
            continue
        values.append((by_flag[flag], words))
    for flag in COMMON:
        if len(flags.get(flag, ())) != 1:
            problems.append(f"{where}: `{flag} {{...}}` missing")
    missing = [a.flag for a in by_flag.values() if a.required and a.flag not in flags]
    if missing:
        problems.append(f"{where}: required {missing} not passed")
    for arg, words in values:
        if arg.nargs is None and len(words) != 1 or arg.nargs == "+" and not words:
            problems.append(f"{where}: {arg.flag or arg.name} takes {arg.nargs or 'one value'}, given {words}")
        if wrong := [w for w in words if kind_of(w) != arg.kind]:
            problems.append(f"{where}: {arg.flag or arg.name} is declared as {arg.kind}, given {wrong}")
    return problems


def files_unused(rule: str, info: dict) -> list[str]:
    """The rule's inputs and outputs its shell text does not pass: the step would not read or write them."""
    problems = []
    for kind in ("input", "output"):
        if info["unnamed"][kind] and f"{{{kind}}}" not in info["shell"]:
            problems.append(f"rule {rule}: its {kind} is not passed (`{{{kind}}}`)")
        for name, nonempty in info[kind].items():
            if nonempty and f"{{{kind}.{name}}}" not in info["shell"]:
                problems.append(f"rule {rule}: {kind}.{name} is not passed")
    return problems


def disagreements(rules: dict[str, dict]) -> tuple[list[str], set[tuple[str, str]]]:
    """Every disagreement between the parsed rules and the declarations; and (command, argument) pairs used."""
    parser_of = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    problems, used = [], set()
    for rule, info in sorted(rules.items()):
        if (call := invocation(info["shell"])) is None:
            continue
        command, positionals, flags = call
        if (step := BY_COMMAND.get(command)) is not None:
            problems += files_unused(rule, info) + step_disagreements(step, rule, positionals, flags)
            used |= {(command, a.name) for a in step.args if (a.flag in flags if a.flag else positionals)}
            continue
        if command not in parser_of:  # a hand-written command (merge, plot, export): its flags must exist
            problems.append(f"rule {rule}: `{command}` is no command of evoselfcode/cli.py")
            continue
        actions = parser_of[command]._actions
        known = {flag for a in actions for flag in a.option_strings}
        problems += [f"rule {rule}: `{command}` has no {flag}" for flag in flags if flag not in known]
        required = [a.option_strings[0] for a in actions if a.required and a.option_strings]
        problems += [f"rule {rule}: `{command}` needs {flag}" for flag in required if flag not in flags]
    return problems, used


@pytest.fixture(scope="module")
def workflows(tmp_path_factory) -> dict[str, dict[str, dict]]:
    workdir = make_workdir(tmp_path_factory.mktemp("workflow"), DESCRIPTIONS)
    return {name: parsed_rules(workdir, config) for name, config in CONFIGS.items()}


@pytest.mark.parametrize("shape", CONFIGS)
def test_every_rule_passes_exactly_its_steps_declared_arguments(workflows, shape):
    problems, _ = disagreements(workflows[shape])
    assert not problems, f"rules/*.smk and {WHERE} disagree ({shape}):\n" + "\n".join(problems)


def test_every_declared_step_runs_in_its_rules_with_every_argument(workflows):
    used = set().union(*(disagreements(rules)[1] for rules in workflows.values()))
    unused = [(s.command, a.name) for s in STEPS for a in s.args if (s.command, a.name) not in used]
    assert not unused, f"declared in {WHERE} but passed by no rule in any config: {unused}"
    rules = {r for rules in workflows.values() for r, info in rules.items() if invocation(info["shell"])}
    assert not {r for s in STEPS for r in s.rules} - rules, f"{WHERE} names rules that run no command"


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.command)
def test_each_step_function_takes_exactly_its_declared_names(step):
    params = inspect.signature(step.resolve()).parameters
    keywords = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    assert keywords == {a.name for a in step.args}, f"{step.function} and {WHERE}"
    leading = [n for n, p in params.items() if p.kind is not p.KEYWORD_ONLY]
    assert len(leading) == step.config + (step.model is not None), leading


def test_a_rule_that_disagrees_with_its_step_is_named(tmp_path):
    workdir = make_workdir(tmp_path, DESCRIPTIONS)
    code = workdir / "rules/code.smk"
    head, rule = code.read_text().split("rule filter_code:", 1)
    rule, tail = rule.split("\nrule ", 1)
    tampered = rule.replace("--rejects {output.rejects}", "--reject {output.rejects}").replace(
        "--index {input.index} ", ""
    )
    assert tampered.count("--reject ") == 1 and "--index" not in tampered
    code.write_text(f"{head}rule filter_code:{tampered}\nrule {tail}")
    problems, _ = disagreements(parsed_rules(workdir, CONFIGS["all stages"]))
    assert problems == [
        "rule filter_code: input.index is not passed",
        "rule filter_code (`filter-code`): passes --reject, which filter-code does not declare",
        "rule filter_code (`filter-code`): required ['--index', '--rejects'] not passed",
    ]
