"""Exact and near duplicates among the samples that passed every earlier check; the first copy in order stays.

The rules themselves live in `dedup.py`, shared with merge-code's global dedup across shards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from evoselfcode.config import Config, Dedup
from evoselfcode.datagen.checks.base import Check, Parsed, Prepared
from evoselfcode.datagen.dedup import band_keys, first_copies, near_duplicate_positions, without_own_name
from evoselfcode.datagen.schemas import CodeSample
from evoselfcode.datagen.utils.hashing import ast_fingerprint, text_fingerprint

DUPLICATE = "duplicate"
NEAR_DUPLICATE = "near_duplicate"


class ExactDuplicates(Check):
    """Same AST fingerprint as an earlier sample (`utils.hashing.ast_fingerprint`: names the code binds,
    its own name included, do not count)."""

    stage, reasons = "unique", (DUPLICATE,)

    @classmethod
    def build(cls, cfg: Config, inputs: Mapping[str, str]) -> Check | None:
        return cls() if cfg.filters.dedup.exact else None

    def prepare(self, parsed: Sequence[Parsed]) -> list[str]:
        return [ast_fingerprint(p.code, p.tree) if p.tree is not None else text_fingerprint(p.code) for p in parsed]

    def check(self, samples: Sequence[CodeSample], prepared: Prepared) -> list[str | None]:
        return [None if first else DUPLICATE for first in first_copies(prepared).tolist()]


class NearDuplicates(Check):
    """Token n-gram Jaccard similarity of at least `filters.dedup.threshold` with an earlier kept sample,
    the function's own name left out (`dedup.without_own_name`)."""

    stage, reasons = "near_unique", (NEAR_DUPLICATE,)
    reads_trees = False

    def __init__(self, dedup: Dedup) -> None:
        self.dedup = dedup

    @classmethod
    def build(cls, cfg: Config, inputs: Mapping[str, str]) -> Check | None:
        return cls(cfg.filters.dedup) if cfg.filters.dedup.near else None

    def _params(self) -> dict:
        return {"threshold": self.dedup.threshold, "num_perm": self.dedup.num_perm, "ngram": self.dedup.ngram}

    def prepare(self, parsed: Sequence[Parsed]) -> np.ndarray:
        return band_keys([without_own_name(p.code, p.func_name) for p in parsed], **self._params())

    def check(self, samples: Sequence[CodeSample], prepared: Prepared) -> list[str | None]:
        codes = [without_own_name(s.code, s.func_name) for s in samples]
        dropped = near_duplicate_positions(codes, keys=prepared, **self._params())
        reasons: list[str | None] = [None] * len(samples)
        for position in dropped.tolist():
            reasons[position] = NEAR_DUPLICATE
        return reasons
