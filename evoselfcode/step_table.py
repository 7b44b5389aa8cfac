"""Every pipeline step's command declared once: its name, the files it reads and writes, the function it calls.

The CLI builds each step's parser from its `Step` and calls the step's function with the declared names as keyword
arguments; the rule that runs `{EVO} <command>` passes exactly the declared flags (tests/test_step_table.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from evoselfcode.datagen.checks import STAGE_B

PIPELINE = "evoselfcode.datagen.pipeline"

Kind = Literal["input", "output", "value"]


@dataclass(frozen=True)
class Arg:
    """One argument of a step: a file it reads (input) or writes (output), or a value; `--name` unless positional."""

    name: str  # the step function's keyword argument
    kind: Kind
    help: str | None = None
    positional: bool = False
    nargs: Literal["+", "*"] | None = None
    required: bool = True
    type: Callable[[str], Any] = str
    default: Any = None

    @property
    def flag(self) -> str | None:
        return None if self.positional else "--" + self.name.replace("_", "-")


def reads(name: str, help: str | None = None, **more: Any) -> Arg:
    return Arg(name, "input", help, **more)


def writes(name: str, help: str | None = None, **more: Any) -> Arg:
    return Arg(name, "output", help, **more)


def value(name: str, help: str | None = None, **more: Any) -> Arg:
    return Arg(name, "value", help, **more)


@dataclass(frozen=True)
class Step:
    """A pipeline step as a command: `function(cfg, [client,] **{arg.name: ...})`, run by `rules`."""

    command: str
    rules: tuple[str, ...]  # the rules whose shell runs `{EVO} <command>`; their settings: rule_settings.py
    help: str
    function: str  # "module.name" in evoselfcode.datagen.pipeline, imported when called: --help loads no step
    args: tuple[Arg, ...]
    model: Literal["client", "scorer"] | None = None  # the server connection the CLI builds and passes after cfg
    config: bool = True  # False: the function takes no cfg (the command still loads and logs it, as every job)

    def resolve(self) -> Callable[..., None]:
        """The step's function; a job imports its own step's module only."""
        module, name = self.function.rsplit(".", 1)
        return getattr(importlib.import_module(f"{PIPELINE}.{module}"), name)

    def arguments(self, parsed: Any) -> dict[str, Any]:
        """The function's keyword arguments from the parsed command line."""
        return {arg.name: getattr(parsed, arg.name) for arg in self.args}


def _reasons(rule: str) -> str:
    """The reason ids of a rule's checks, in the order they run (`datagen.checks.STAGE_B`)."""
    reasons = (r + "*" if r.endswith(":") else r for cls in STAGE_B if cls.rule == rule for r in cls.reasons)
    return ", ".join(dict.fromkeys(reasons))


_SOURCE = "the description file (io.input_desc_path)"
_INDEX = "the benchmark index (data/shards/benchmarks/index-*.json)"
_TIMING = "per-request wall-clock (JSONL), kept apart from the data"
_RAW_CODE = "code/raw/{shard}.jsonl: the descriptions with candidates, and their signatures"


def _model_outputs() -> tuple[Arg, ...]:
    return writes("out"), writes("failures"), writes("timing", _TIMING)


STEPS: tuple[Step, ...] = (
    Step(
        "split",
        ("split_descriptions",),
        "write one shard of the checked description file, without those that match a benchmark",
        "steps.split",
        (
            reads("source", _SOURCE, positional=True),
            value("shard"),
            reads("index", _INDEX),
            writes("out"),
            writes("contaminated", "where the descriptions that match a benchmark go"),
        ),
    ),
    Step(
        "quarantine",
        ("quarantine_descriptions",),
        "list the description file's bad lines, with io.on_bad_line: skip",
        "steps.quarantine",
        (reads("source", _SOURCE, positional=True), writes("out")),
    ),
    Step(
        "generate-names",
        ("generate_names",),
        "sample function names for a shard in both modes",
        "steps.generate_names",
        (reads("shard", positional=True), *_model_outputs()),
        model="client",
    ),
    Step(
        "filter-names",
        ("filter_names",),
        "keep compliant, fitting names; one reason per rejected sample",
        "steps.filter_names_step",
        (reads("raw", positional=True), writes("out"), writes("rejects")),
    ),
    Step(
        "names-metrics",
        ("names_metrics",),
        "A/B metrics of FIM vs L2R names",
        "steps.names_metrics_step",
        (
            reads("raw"),
            reads("kept"),
            reads("rejects"),
            reads("failures"),
            writes("out"),
            reads("shards", nargs="+"),
            reads("quarantine"),
            reads("contaminated", "the shards' descriptions set aside", nargs="+"),
        ),
    ),
    Step(
        "timing",
        ("names_timing", "code_timing"),
        "wall-clock per mode from the shards' request timings",
        "steps.timing",
        (
            reads("shards", "{names,code}/timing/{shard}.jsonl", nargs="+"),
            reads(
                "test_shards",
                "code/tests/timing/{shard}.jsonl (none: the tests stage is off)",
                nargs="*",
                required=False,
            ),
            reads("kept", "the stage's merged kept records, to count them per mode"),
            writes("out"),
        ),
        config=False,
    ),
    Step(
        "generate-code",
        ("generate_code",),
        "continue the selected names of a shard into functions",
        "steps.generate_code",
        (reads("names", positional=True), *_model_outputs()),
        model="client",
    ),
    Step(
        "filter-code",
        ("filter_code",),
        f"check a shard's functions; a dropped one gets the first of: {_reasons('filter_code')}",
        "steps.filter_code_step",
        (reads("raw", positional=True), reads("index", _INDEX), writes("out"), writes("rejects")),
    ),
    Step(
        "generate-tests",
        ("generate_tests",),
        "ask the model for assert tests of each description of a shard (not of a function)",
        "testgen.generate_tests_step",
        (
            reads("raw", _RAW_CODE, positional=True),
            *_model_outputs(),
        ),
        model="client",
    ),
    Step(
        "execute-tests",
        ("execute_tests",),
        "run every candidate of each description against its tests in the sandbox and keep the ones chosen "
        f"(tests.selection); the others get one of: {_reasons('execute_tests')}",
        "selection.execute_tests_step",
        (
            reads("kept", "code/filtered/{shard}.jsonl", positional=True),
            reads("static_rejects", "code/rejects/{shard}.jsonl (its duplicates are votes)"),
            reads("tests", "code/tests/raw/{shard}.jsonl"),
            writes("out"),
            writes("rejects"),
            writes("selection", "how each description's candidates were chosen (JSONL)"),
            value("workers", "sandboxes at once (the rule's threads)", required=False, type=int, default=1),
        ),
    ),
    Step(
        "merge-code",
        ("merge_code",),
        "merge kept functions of all shards with global dedup; write the code metrics",
        "merge.merge_code",
        (
            reads("kept", nargs="+"),
            reads("shard_rejects", nargs="+"),
            reads("failures", "failed code requests, then the tests' (if on)", nargs="+"),
            reads("raw"),
            reads("names_metrics"),
            writes("out"),
            writes("rejects"),
            writes("metrics"),
            reads("selection", "code/tests/selection/{shard}.jsonl (tests on)", nargs="*", required=False, default=()),
            reads("tests", "code/tests/raw/{shard}.jsonl (tests on): tokens", nargs="*", required=False, default=()),
        ),
    ),
    Step(
        "score",
        ("score_code",),
        "score kept functions with the model's own log-probs (perplexity given their prompt)",
        "scoring.score_step",
        (reads("records", positional=True), writes("out"), writes("rejects"), writes("failures"), writes("timing")),
        model="scorer",
    ),
)

BY_COMMAND: dict[str, Step] = {step.command: step for step in STEPS}
