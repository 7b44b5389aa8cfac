"""Stage B checks: is a generated function worth keeping, and if not, the stable reason why.

Checks run cheapest first and stop at the first failure, in funnel order:
truncated, syntax_error, missing_function, trivial_body, too_short, too_long, ruff:<CODE>,
duplicate, near_duplicate. The code is only parsed and linted, never run.

Each sample is parsed once; its tree gives the structure checks and the exact-dedup fingerprint.
The per-sample work (parse, checks, fingerprint, near-dedup band keys) of many samples runs in worker
processes (`dedup.map_in_workers`); ruff and the dedup decisions run here, in order.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import partial

import numpy as np

from evoselfcode.config import Filters
from evoselfcode.datagen.filters.dedup import (
    band_keys,
    chunks,
    exact_duplicates,
    map_in_workers,
    near_duplicates,
    worker_count,
)
from evoselfcode.datagen.schemas import CONTAMINATED_PREFIX, CodeSample
from evoselfcode.datagen.utils.ast_tools import find_function, is_trivial, parse
from evoselfcode.datagen.utils.hashing import ast_fingerprint
from evoselfcode.datagen.utils.ruff import SYNTAX_ERROR as RUFF_SYNTAX_ERROR
from evoselfcode.datagen.utils.ruff import ruff_check

TRUNCATED = "truncated"
SYNTAX_ERROR = "syntax_error"
MISSING_FUNCTION = "missing_function"
TRIVIAL_BODY = "trivial_body"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
RUFF_PREFIX = "ruff:"
DUPLICATE = "duplicate"
NEAR_DUPLICATE = "near_duplicate"

# Funnel stages in order, each with the reasons that stop a sample there (ruff:*, contaminated:* by prefix).
FUNNEL_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("generated", ()),
    ("parsed", (TRUNCATED, SYNTAX_ERROR)),
    ("named", (MISSING_FUNCTION,)),
    ("non_trivial", (TRIVIAL_BODY, TOO_SHORT, TOO_LONG)),
    ("ruff_clean", (RUFF_PREFIX,)),
    ("uncontaminated", (CONTAMINATED_PREFIX,)),
    ("unique", (DUPLICATE,)),
    ("near_unique", (NEAR_DUPLICATE,)),
)


def ruff_reason(rule_code: str) -> str:
    """`ruff:F821` for a rule; ruff's own parse failure is the same `syntax_error` as the AST's."""
    return SYNTAX_ERROR if rule_code == RUFF_SYNTAX_ERROR else f"{RUFF_PREFIX}{rule_code}"


def check_truncated(finish_reason: str | None) -> str | None:
    return TRUNCATED if finish_reason == "length" else None


def check_structure(code: str, func_name: str) -> str | None:
    """syntax_error, missing_function or trivial_body, from the AST alone."""
    return structure_reason(parse(code), func_name)


def structure_reason(tree: ast.Module | None, func_name: str) -> str | None:
    """`check_structure` of a tree already parsed (None: it did not parse)."""
    if tree is None:
        return SYNTAX_ERROR
    func = find_function(tree, func_name)
    if func is None:
        return MISSING_FUNCTION
    return TRIVIAL_BODY if is_trivial(func) else None


def check_length(code: str, filters: Filters) -> str | None:
    if len(code) < filters.min_code_len:
        return TOO_SHORT
    if len(code) > filters.max_code_len:
        return TOO_LONG
    return None


def check_sample(sample: CodeSample, filters: Filters) -> tuple[bool, str | None]:
    """`(keep, reason)` from the per-sample checks that need no other sample and no ruff."""
    reason = _inspect(sample.finish_reason, sample.code, sample.func_name, filters, fingerprint=False)[0]
    return reason is None, reason


def _inspect(
    finish_reason: str | None, code: str, func_name: str, filters: Filters, fingerprint: bool
) -> tuple[str | None, str | None]:
    """(reason, AST fingerprint if it passed and one is asked for): the code is parsed at most once for both."""
    reason = check_truncated(finish_reason)
    tree = None
    if reason is None and filters.enable_ast:
        tree = parse(code)
        reason = structure_reason(tree, func_name)
    if reason is None:
        reason = check_length(code, filters)
    if reason is not None or not fingerprint:
        return reason, None
    return None, ast_fingerprint(code, tree)


def _inspect_batch(
    batch: list[tuple[str | None, str, str]], filters: Filters
) -> tuple[list[str | None], list[str | None], np.ndarray | None]:
    """The per-sample work of `check_samples` on (finish_reason, code, func_name) triples: the reasons,
    the fingerprints (None for samples that failed) and the near-dedup band keys of the samples that passed."""
    dedup = filters.dedup
    inspected = [_inspect(*sample, filters, fingerprint=dedup.exact) for sample in batch]
    reasons = [reason for reason, _ in inspected]
    keys = None
    if dedup.near:
        passed = [code for (_, code, _), reason in zip(batch, reasons, strict=True) if reason is None]
        keys = band_keys(passed, threshold=dedup.threshold, num_perm=dedup.num_perm, ngram=dedup.ngram)
    return reasons, [fingerprint for _, fingerprint in inspected], keys


def check_samples(samples: Sequence[CodeSample], filters: Filters) -> list[str | None]:
    """For each sample in order, the first failing reason, or None if it is kept.

    ruff runs once for all samples that passed the per-sample checks; exact, then near duplicates are
    looked for among the samples that passed everything else, and the first in the given order stays.
    The result does not depend on how many worker processes did the per-sample work.
    """
    dedup = filters.dedup
    # Identical samples (same finish reason, code and name) have the same per-sample results and ruff codes:
    # each is inspected and linted once (a model at low temperature repeats itself).
    number_of: dict[tuple[str | None, str, str], int] = {}
    distinct_of = [number_of.setdefault((s.finish_reason, s.code, s.func_name), len(number_of)) for s in samples]
    distinct = list(number_of)
    del number_of
    reason_of: list[str | None] = []
    fingerprint_of: list[str | None] = []
    key_batches: list[np.ndarray] = []
    for batch_reasons, batch_fingerprints, batch_keys in map_in_workers(
        partial(_inspect_batch, filters=filters), chunks(distinct), worker_count(len(distinct))
    ):
        reason_of += batch_reasons
        fingerprint_of += batch_fingerprints
        key_batches.append(batch_keys)
    passed = [d for d, reason in enumerate(reason_of) if reason is None]  # rows of the band keys
    if filters.enable_ruff and passed:
        found = ruff_check([distinct[d][1] for d in passed], filters.ruff_rules)
        for d, rule_codes in zip(passed, found, strict=True):
            if rule_codes:
                reason_of[d] = ruff_reason(rule_codes[0])
    reasons = [reason_of[d] for d in distinct_of]
    if dedup.exact:
        survivors = [i for i, reason in enumerate(reasons) if reason is None]
        items = [(str(i), samples[i].code) for i in survivors]
        fingerprints = [fingerprint_of[distinct_of[i]] for i in survivors]
        for key in exact_duplicates(items, fingerprints=fingerprints):
            reasons[int(key)] = DUPLICATE
    if dedup.near:
        row_of = {d: row for row, d in enumerate(passed)}
        survivors = [i for i, reason in enumerate(reasons) if reason is None]
        keys = np.concatenate(key_batches) if key_batches else None
        near = near_duplicates(
            [(str(i), samples[i].code) for i in survivors],
            threshold=dedup.threshold, num_perm=dedup.num_perm, ngram=dedup.ngram,
            keys=keys[[row_of[distinct_of[i]] for i in survivors]] if keys is not None else None,
        )  # fmt: skip
        for key in near:
            reasons[int(key)] = NEAR_DUPLICATE
    return reasons


def funnel_stage(reason: str) -> str:
    """The funnel stage a sample with this reason did not reach."""
    for stage, stopped_by in FUNNEL_STAGES:
        if any(reason == r or (r.endswith(":") and reason.startswith(r)) for r in stopped_by):
            return stage
    raise ValueError(f"{reason!r} is not a stage B reason id")


def funnel(reasons: Iterable[str | None]) -> dict[str, int]:
    """How many samples reached each stage, in order: generated, parsed, named, ..., near_unique."""
    reasons = list(reasons)
    stopped_at = Counter(funnel_stage(r) for r in reasons if r is not None)
    counts: dict[str, int] = {}
    remaining = len(reasons)
    for stage, _ in FUNNEL_STAGES:
        remaining -= stopped_at[stage]
        counts[stage] = remaining
    return counts


def reason_counts(reasons: Iterable[str | None]) -> dict[str, int]:
    """Dropped samples per reason id, most frequent first (ties by name); kept ones are not counted."""
    counts = Counter(r for r in reasons if r is not None)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
