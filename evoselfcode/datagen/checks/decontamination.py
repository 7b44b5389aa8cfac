"""Functions that match a benchmark task (`datagen/benchmark_index.py`): dropped as `contaminated:<benchmark>`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property

from evoselfcode.config import Config
from evoselfcode.datagen.benchmark_index import Index
from evoselfcode.datagen.checks.base import Check, Prepared
from evoselfcode.datagen.schemas import CONTAMINATED_PREFIX, CodeSample


class BenchmarkMatch(Check):
    """Holds a benchmark solution (names, comments and formatting aside), or its docstrings and comments
    match a benchmark prompt. Before dedup, so a contaminated first copy keeps none of its duplicates.

    It works in `check`, on the samples still alive, as the index is too big to send to worker processes.
    """

    stage, reasons = "uncontaminated", (CONTAMINATED_PREFIX,)

    def __init__(self, index_path: str, code_threshold: float, text_threshold: float) -> None:
        self.index_path, self.code_threshold, self.text_threshold = index_path, code_threshold, text_threshold

    @classmethod
    def build(cls, cfg: Config, inputs: Mapping[str, str]) -> Check | None:
        d = cfg.decontamination
        if not d.enabled:
            return None
        if "index" not in inputs:
            raise ValueError("the benchmark check needs the benchmark index (benchmark_index.benchmark_index): "
                             "pass it as the input `index`, or set decontamination.enabled: false")  # fmt: skip
        return cls(inputs["index"], d.code_threshold, d.desc_threshold)

    @cached_property
    def index(self) -> Index:
        return Index.load(self.index_path)

    def __getstate__(self) -> dict:  # the workers get the settings, never the loaded index
        return {k: v for k, v in self.__dict__.items() if k != "index"}

    def check(self, samples: Sequence[CodeSample], prepared: Prepared) -> list[str | None]:
        matches = (self.index.check_code(s.code, self.code_threshold, self.text_threshold) for s in samples)
        return [m.reason if m else None for m in matches]
