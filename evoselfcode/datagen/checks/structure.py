"""Checks of one sample alone, from its finish reason, its AST and its length. The code is parsed, never run."""

from __future__ import annotations

from collections.abc import Mapping

from evoselfcode.config import Config
from evoselfcode.datagen.checks.base import Check, Parsed, SampleCheck
from evoselfcode.datagen.utils.ast_tools import find_function, is_trivial

TRUNCATED = "truncated"
SYNTAX_ERROR = "syntax_error"
MISSING_FUNCTION = "missing_function"
TRIVIAL_BODY = "trivial_body"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"


class Truncated(SampleCheck):
    """The model stopped at its token limit, so the function is likely cut off."""

    stage, reasons = "parsed", (TRUNCATED,)

    def reason(self, sample: Parsed) -> str | None:
        return TRUNCATED if sample.finish_reason == "length" else None


class _AstCheck(SampleCheck):
    @classmethod
    def build(cls, cfg: Config, inputs: Mapping[str, str]) -> Check | None:
        return cls() if cfg.filters.enable_ast else None


class Parses(_AstCheck):
    stage, reasons = "parsed", (SYNTAX_ERROR,)

    def reason(self, sample: Parsed) -> str | None:
        return SYNTAX_ERROR if sample.tree is None else None


class HasFunction(_AstCheck):
    """The code defines the asked-for function at top level (a nested one does not count)."""

    stage, reasons = "named", (MISSING_FUNCTION,)

    def reason(self, sample: Parsed) -> str | None:
        tree = sample.tree
        return MISSING_FUNCTION if tree is not None and find_function(tree, sample.func_name) is None else None


class NonTrivial(_AstCheck):
    """The body is more than `pass`, `...`, a docstring or `raise NotImplementedError`."""

    stage, reasons = "non_trivial", (TRIVIAL_BODY,)

    def reason(self, sample: Parsed) -> str | None:
        func = find_function(sample.tree, sample.func_name) if sample.tree is not None else None
        return TRIVIAL_BODY if func is not None and is_trivial(func) else None


class Length(SampleCheck):
    stage, reasons = "non_trivial", (TOO_SHORT, TOO_LONG)

    def __init__(self, min_chars: int, max_chars: int) -> None:
        self.min_chars, self.max_chars = min_chars, max_chars

    @classmethod
    def build(cls, cfg: Config, inputs: Mapping[str, str]) -> Check | None:
        return cls(cfg.filters.min_code_len, cfg.filters.max_code_len)

    def reason(self, sample: Parsed) -> str | None:
        if len(sample.code) < self.min_chars:
            return TOO_SHORT
        return TOO_LONG if len(sample.code) > self.max_chars else None
