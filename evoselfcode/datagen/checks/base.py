"""What a stage-B check is, and the driver that runs an ordered list of them over a batch of samples.

A check answers for a batch: one reason id per sample, or None to keep it. The driver gives each check
only the samples every earlier check kept, so a sample's reason is the first failure in list order.

Per-sample work that needs no other sample (parsing, AST fingerprints, MinHash band keys) is done ahead,
by `Check.prepare`, for all checks in ONE pass over the samples: each sample is parsed at most once,
and the pass runs in worker processes when the batch is large (`utils.process_pool`). The decisions
(`Check.check`) then run here, in order, so the result does not depend on the number of workers.
See docs/architecture.md, "Adding a check".
"""

from __future__ import annotations

import ast
import gc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import ClassVar

import numpy as np

from evoselfcode.config import Config
from evoselfcode.datagen.schemas import CodeSample
from evoselfcode.datagen.utils import process_pool
from evoselfcode.datagen.utils.ast_tools import parse

# What `prepare` returns per sample, all samples of a batch together: a list, or an array with one row each.
Prepared = list | np.ndarray | None


@dataclass(eq=False)
class Parsed:
    """A sample as the per-sample work sees it; its tree is parsed on first use, once for every check."""

    code: str
    func_name: str
    finish_reason: str | None

    @cached_property
    def tree(self) -> ast.Module | None:
        """The code's AST, or None if it does not parse."""
        return parse(self.code)


class Check:
    """One stage-B check. A subclass sets `stage` and `reasons` and overrides `check` (and maybe `prepare`).

    - `stage`: the funnel stage a sample has reached once it passes this check (several consecutive checks
      may share one, e.g. `truncated` and `syntax_error` both stop a sample before "parsed").
    - `reasons`: the stable reason ids it may answer; one ending in ":" stands for a family (`ruff:F821`).
    - `rule`: the Snakemake rule whose step runs it; each rule runs its slice of `checks.STAGE_B`.
    """

    stage: ClassVar[str]
    reasons: ClassVar[tuple[str, ...]]
    rule: ClassVar[str] = "filter_code"
    # False: `prepare` never reads `Parsed.tree` and is cheaper on many samples at once (numpy), so it gets
    # a worker's whole chunk instead of TREES_AT_ONCE samples.
    reads_trees: ClassVar[bool] = True

    @classmethod
    def build(cls, cfg: Config, inputs: Mapping[str, str]) -> Check | None:
        """This check as configured, or None when the config switches it off.

        `inputs`: the running rule's named input files, for a check that reads a file another rule built.
        """
        return cls()

    def prepare(self, parsed: Sequence[Parsed]) -> Prepared:
        """Per-sample work done ahead for `check`, in one pass for all checks (maybe in worker processes).

        Sees every sample, also those an earlier check will drop, so keep it cheap; None: nothing to do.
        Must depend on each sample alone, and the check must pickle (it is sent to the workers).
        """
        return None

    def check(self, samples: Sequence[CodeSample], prepared: Prepared) -> list[str | None]:
        """For each sample in order, the reason it is dropped, or None to keep it.

        `prepared`: what `prepare` made for these samples (their rows, in the same order).
        """
        raise NotImplementedError

    @classmethod
    def declares(cls, reason: str) -> bool:
        return any(reason == r or (r.endswith(":") and reason.startswith(r)) for r in cls.reasons)


class SampleCheck(Check):
    """A check that judges each sample alone, from its code, name and finish reason: it runs ahead, with
    the per-sample work, so it only overrides `reason`."""

    def reason(self, sample: Parsed) -> str | None:
        raise NotImplementedError

    def prepare(self, parsed: Sequence[Parsed]) -> list[str | None]:
        return [self.reason(p) for p in parsed]

    def check(self, samples: Sequence[CodeSample], prepared: Prepared) -> list[str | None]:
        return prepared


# Samples whose trees are alive together (~40 KB each), while every check that reads trees prepares them: few,
# so they stay in the CPU's cache from the parse to the last check (at 200, the pass took ~1.25x as long).
TREES_AT_ONCE = 10


def _prepare_chunk(chunk: list[tuple[str, str, str | None]], checks: Sequence[Check]) -> list[Prepared]:
    """Each check's `prepare` of the chunk's samples, in order: TREES_AT_ONCE samples at a time for the checks
    that read trees, then the whole chunk for the others.

    The cyclic garbage collector is off meanwhile: trees hold no reference cycles (counting frees them), and
    its passes over the live trees made this 1.6x as slow at 2,000 trees, 1.2x at 200.
    """
    parts: list[list[Prepared]] = [[] for _ in checks]
    collecting = gc.isenabled()
    gc.disable()
    try:
        for first in range(0, len(chunk), TREES_AT_ONCE):
            parsed = [Parsed(*sample) for sample in chunk[first : first + TREES_AT_ONCE]]
            for part, check in zip(parts, checks, strict=True):
                if check.reads_trees:
                    part.append(check.prepare(parsed))
        parsed = [Parsed(*sample) for sample in chunk]
        for part, check in zip(parts, checks, strict=True):
            if not check.reads_trees:
                part.append(check.prepare(parsed))
    finally:
        if collecting:
            gc.enable()
    return [_join(part) for part in parts]


def _join(parts: list[Prepared]) -> Prepared:
    if not parts or parts[0] is None:
        return None
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return [item for part in parts for item in part]


def _rows(prepared: Prepared, rows: list[int]) -> Prepared:
    if prepared is None:
        return None
    if isinstance(prepared, np.ndarray):
        return prepared[rows]
    return [prepared[row] for row in rows]


def run_checks(checks: Sequence[Check], samples: Sequence[CodeSample]) -> list[str | None]:
    """For each sample in order, the first reason of the checks in list order, or None if all keep it.

    Identical samples (same code, name and finish reason) are prepared once: a model repeats itself.
    """
    row_of: dict[tuple[str, str, str | None], int] = {}
    rows = [row_of.setdefault((s.code, s.func_name, s.finish_reason), len(row_of)) for s in samples]
    distinct = list(row_of)
    del row_of
    parts: list[list[Prepared]] = [[] for _ in checks]
    work = partial(_prepare_chunk, checks=checks)
    batches = process_pool.chunks(distinct)
    for chunk_results in process_pool.map_in_workers(work, batches, process_pool.worker_count(len(distinct))):
        for part, result in zip(parts, chunk_results, strict=True):
            part.append(result)
    prepared = [_join(part) for part in parts]
    reasons: list[str | None] = [None] * len(samples)
    alive = list(range(len(samples)))
    for check, ahead in zip(checks, prepared, strict=True):
        if not alive:
            break
        verdicts = check.check([samples[i] for i in alive], _rows(ahead, [rows[i] for i in alive]))
        if len(verdicts) != len(alive):
            raise RuntimeError(f"{type(check).__name__} answered {len(verdicts)} times for {len(alive)} samples")
        for i, reason in zip(alive, verdicts, strict=True):
            if reason is not None and not check.declares(reason):
                raise RuntimeError(f"{type(check).__name__} answered {reason!r}, which it does not declare")
            reasons[i] = reason
        alive = [i for i in alive if reasons[i] is None]
    return reasons
