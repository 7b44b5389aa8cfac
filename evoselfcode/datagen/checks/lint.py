"""ruff over the samples that passed everything before it: one `ruff check` process for the whole batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from evoselfcode.config import Config
from evoselfcode.datagen.checks.base import Check, Prepared
from evoselfcode.datagen.checks.structure import SYNTAX_ERROR
from evoselfcode.datagen.schemas import CodeSample
from evoselfcode.datagen.utils.ruff import SYNTAX_ERROR as RUFF_SYNTAX_ERROR
from evoselfcode.datagen.utils.ruff import ruff_check

RUFF_PREFIX = "ruff:"


def ruff_reason(rule_code: str) -> str:
    """`ruff:F821` for a rule; ruff's own parse failure is the same `syntax_error` as the AST's."""
    return SYNTAX_ERROR if rule_code == RUFF_SYNTAX_ERROR else f"{RUFF_PREFIX}{rule_code}"


class Ruff(Check):
    """A finding of one of `filters.ruff_rules` drops the sample, as `ruff:<first rule code>`.

    It also answers `syntax_error` when ruff cannot parse the code (with `filters.enable_ast` off).
    """

    stage, reasons = "ruff_clean", (RUFF_PREFIX, SYNTAX_ERROR)

    def __init__(self, rules: Sequence[str]) -> None:
        self.rules = list(rules)

    @classmethod
    def build(cls, cfg: Config, inputs: Mapping[str, str]) -> Check | None:
        return cls(cfg.filters.ruff_rules) if cfg.filters.enable_ruff else None

    def check(self, samples: Sequence[CodeSample], prepared: Prepared) -> list[str | None]:
        codes = list(dict.fromkeys(s.code for s in samples))  # each distinct code linted once
        found = dict(zip(codes, ruff_check(codes, self.rules), strict=True))
        return [ruff_reason(found[s.code][0]) if found[s.code] else None for s in samples]
