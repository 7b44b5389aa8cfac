"""Where a run's files go: every folder and file name of the outputs, and which optional stages' files a run has.

The rules build their paths here (`rules/common.smk`: `RUN = Layout.of(CFG)`), and so do the commands that find a
run's files (`export`, `summary`, `store`, `validate`). A new output file is declared in the table of its folder
(`Names.PARTS`, `Code.FILES`, ...), with the schema of its records.

    {io.shards_dir}/{shard}.jsonl, contaminated/{shard}.jsonl, quarantine.jsonl, benchmarks/index-{digest}.json
    {io.out_names_dir}/{part}/{shard}.jsonl, {part}.jsonl (merged), metrics.json, timing.json
    {io.out_code_dir}/  the same, tests/{part}/{shard}.jsonl, scored.jsonl and the scoring files beside it
    report/*.svg and dataset/ beside the code folder; {io.logs_dir}/{rule}/{shard}.log; .evoselfcode/ (state)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cache, partial
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from evoselfcode.config import Config

STATE_DIR = Path(".evoselfcode")  # the run's own files beside the data: input index cache, resolved config, server
ALL = "all"  # the log and benchmark name of a job over every shard
FAILURES, TIMING = "failures", "timing"  # schemas whose records are alike in every stage
REPORT, DATASET = "report", "dataset"  # folders beside the code folder


class Folder:
    """One folder of a run: per-shard files `PART/{shard}.jsonl` (and `PART.jsonl`, merged) and single files.

    `folder.raw("{shard}")` is `ROOT/raw/{shard}.jsonl`, `folder.raw()` is `ROOT/raw.jsonl`: one accessor per name
    declared in `PARTS` and `FILES`, each mapped to the schema (`tools.SCHEMAS`) of the records the file holds.
    """

    NAME: ClassVar[str]  # the folder's name in a run's output folder (and what `evoselfcode validate` recognises)
    PARTS: ClassVar[dict[str, str]] = {}  # split per shard into a folder of their own, then (some) merged
    FILES: ClassVar[dict[str, str]] = {}  # never split
    MERGED: ClassVar[tuple[str, ...]] = ()  # the parts a merge rule joins into PART.jsonl (its {part} wildcard)

    def __init__(self, root: str | Path):
        self.root = str(root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r})"

    def part(self, name: str, shard: str | None = None) -> str:
        """`ROOT/NAME/{shard}.jsonl`, or with no shard `ROOT/NAME.jsonl`; the name need not be declared ({part})."""
        return f"{self.root}/{name}.jsonl" if shard is None else f"{self.root}/{name}/{shard}.jsonl"

    def folder(self, name: str) -> str:
        """The folder of a part's per-shard files."""
        return f"{self.root}/{name}"

    def __getattr__(self, name: str) -> Callable[..., str]:
        if name in self.declared():
            return partial(self.part, name)
        raise AttributeError(f"{type(self).__name__} has no file {name!r}; its files: {', '.join(self.declared())}")

    @classmethod
    def declared(cls) -> dict[str, str]:
        """Every file name of the folder, split or not, with the schema of its records."""
        return {**cls.PARTS, **cls.FILES}

    @property
    def metrics_json(self) -> str:
        return f"{self.root}/metrics.json"

    @property
    def timing_json(self) -> str:
        """Wall-clock per mode, apart from the metrics: a summary, not records."""
        return f"{self.root}/timing.json"


class Shards(Folder):
    """`io.shards_dir`: the descriptions split into shards, and what was set aside."""

    NAME = "shards"
    PARTS = {"contaminated": "contaminated"}
    FILES = {"quarantine": "quarantine"}
    SCHEMA = "shards"  # of a shard file itself, `ROOT/{shard}.jsonl`

    def descriptions(self, shard: str) -> str:
        return f"{self.root}/{shard}.jsonl"

    @property
    def benchmark_indexes(self) -> str:
        """The folder of the benchmarks' indexes (`benchmark_index.benchmark_index` names each by its content)."""
        return f"{self.root}/benchmarks"


class Names(Folder):
    """`io.out_names_dir`: stage A's files."""

    NAME = "names"
    PARTS = {"raw": "names/raw", "failures": FAILURES, "timing": TIMING, "filtered": "names/filtered",
             "rejects": "names/rejects"}  # fmt: skip
    MERGED = ("raw", "filtered", "rejects", "failures")  # merge_names'


class Tests(Folder):
    """`{io.out_code_dir}/tests`: the tests written per description and what running them chose."""

    NAME = "tests"
    PARTS = {"raw": "tests/raw", "failures": FAILURES, "timing": TIMING, "rejects": "tests/rejects",
             "selection": "tests/selection"}  # fmt: skip


class Code(Folder):
    """`io.out_code_dir`: stage B's files, the tests' folder, and scoring's files."""

    NAME = "code"
    PARTS = {"raw": "code/raw", "failures": FAILURES, "timing": TIMING, "filtered": "code/filtered",
             "rejects": "code/rejects", "tested": "code/tested"}  # fmt: skip
    MERGED = ("raw", "failures")  # merge_code_parts'; merge_code writes filtered.jsonl and rejects.jsonl
    FILES = {"scored": "code/scored", "score_rejects": "code/score_rejects", "score_failures": FAILURES,
             "score_timing": TIMING}  # fmt: skip

    @property
    def tests(self) -> Tests:
        return Tests(self.folder(Tests.NAME))

    def beside(self, name: str) -> str:
        """A folder beside the code folder: the plots' (`REPORT`), the dataset's (`DATASET`)."""
        return os.path.join(os.path.dirname(os.path.normpath(self.root)), name)


@dataclass(frozen=True)
class Stages:
    """Which optional stages a run has: the one place the rules read `tests.enabled` and `scoring.enabled`."""

    tests: bool
    scoring: bool

    @classmethod
    def of(cls, cfg: Config) -> Stages:
        return cls(tests=cfg.tests.enabled, scoring=cfg.scoring.enabled)


@dataclass(frozen=True)
class Layout:
    """A run's folders (from its `io.*` settings) and the files its optional stages add or replace."""

    shards: Shards
    names: Names
    code: Code
    logs: str
    stages: Stages

    @classmethod
    def of(cls, cfg: Config) -> Layout:
        """Where the config's run writes (`io.shards_dir`, `io.out_names_dir`, `io.out_code_dir`, `io.logs_dir`)."""
        io = cfg.io
        return cls(Shards(io.shards_dir), Names(io.out_names_dir), Code(io.out_code_dir), io.logs_dir, Stages.of(cfg))

    @classmethod
    def under(cls, outputs: str | Path, cfg: Config) -> Layout:
        """A run whose stages wrote into `OUTPUTS/names` and `OUTPUTS/code` (the default's `data/generated`)."""
        return replace(cls.of(cfg), names=Names(os.path.join(outputs, Names.NAME)),
                       code=Code(os.path.join(outputs, Code.NAME)))  # fmt: skip

    @property
    def tests(self) -> Tests:
        return self.code.tests

    @property
    def report(self) -> str:
        """The plots' folder, beside the code folder."""
        return self.code.beside(REPORT)

    def plot(self, name: str) -> str:
        return f"{self.report}/{name}.svg"

    @property
    def dataset(self) -> str:
        """The Parquet dataset's folder, beside the code folder."""
        return self.code.beside(DATASET)

    def log(self, rule: str, shard: str = ALL) -> str:
        return f"{self.logs}/{rule}/{shard}.log"

    @property
    def benchmarks(self) -> str:
        # production keeps its benchmarks/ folder; a run with a logs folder of its own keeps its job benchmarks in it
        return "benchmarks" if os.path.normpath(self.logs) == "logs" else f"{self.logs}/benchmarks"

    def benchmark(self, rule: str, shard: str = ALL) -> str:
        return f"{self.benchmarks}/{rule}/{shard}.tsv"

    @property
    def server_log(self) -> str:
        return f"{self.logs}/embedded_server.log"

    # What the optional stages mean for the rules' inputs.

    def kept(self, shard: str) -> str:
        """A shard's kept functions for merge_code: those that passed the tests, or with tests off the static checks."""
        return self.code.tested(shard) if self.stages.tests else self.code.filtered(shard)

    def tests_files(self, part: str, shards: Iterable[str]) -> list[str]:
        """The tests stage's per-shard `part` files, which merge_code and code_timing read; none with tests off."""
        return [self.tests.part(part, shard) for shard in shards] if self.stages.tests else []

    def final_records(self) -> str:
        """What the dataset is made of: the scored functions with scoring on, else the kept ones."""
        return self.code.scored() if self.stages.scoring else self.code.filtered()

    def scores(self) -> list[str]:
        """The scored functions, in the default target and the plots with scoring on; none with it off."""
        return [self.code.scored()] if self.stages.scoring else []


FOLDERS: tuple[type[Folder], ...] = (Shards, Names, Code, Tests)


def schema_of(path: str | Path) -> str | None:
    """The schema of the records in a run's file, from where the layout puts it; None for any other path.

    A file is known by its folder's name and its own (`names/raw.jsonl`, `code/tests/raw/00000.jsonl`), so this
    needs no config; in a folder named otherwise, only by a name that means one schema everywhere (`failures`).
    """
    pure = PurePath(path)
    if pure.suffix != ".jsonl":
        return None  # metrics.json and timing.json are summaries, not records
    parts = pure.with_suffix("").parts
    shard = None
    if len(parts) > 1 and parts[-1].isdigit():
        shard, parts = parts[-1], parts[:-1]
    if shard is not None and parts[-1] == Shards.NAME:
        return Shards.SCHEMA
    for folder in FOLDERS:
        if parts[-2:-1] == (folder.NAME,):
            if parts[-1] in folder.PARTS:
                return folder.PARTS[parts[-1]]
            if shard is None and parts[-1] in folder.FILES:
                return folder.FILES[parts[-1]]
    return _same_everywhere().get(parts[-1]) if parts else None  # a folder of another name (`io.out_code_dir`)


@cache  # the folders' tables are constants: built once, not per path asked about
def _same_everywhere() -> dict[str, str]:
    """File names that mean one schema wherever they are: a stage's failures and timing, the shards' set-asides."""
    seen: dict[str, list[str]] = {}
    for folder in FOLDERS:
        for name, schema in folder.declared().items():
            seen.setdefault(name, []).append(schema)
    common = {name: schemas[0] for name, schemas in seen.items() if len(schemas) > 1 and len(set(schemas)) == 1}
    return common | Shards.declared()


def schemas() -> set[str]:
    """Every schema the layout's files hold."""
    return {Shards.SCHEMA} | {s for folder in FOLDERS for s in folder.declared().values()}


def timing_files(root: str | Path) -> list[Path]:
    """Every request-timing file under `root` (a run's folder, or any folder holding runs' folders)."""
    parts = {name for folder in FOLDERS for name, schema in folder.PARTS.items() if schema == TIMING}
    files = {name for folder in FOLDERS for name, schema in folder.FILES.items() if schema == TIMING}
    patterns = sorted({f"{name}/*.jsonl" for name in parts} | {f"{name}.jsonl" for name in files})
    return sorted({path for pattern in patterns for path in Path(root).rglob(pattern)})
