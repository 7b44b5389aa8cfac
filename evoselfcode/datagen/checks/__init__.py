"""Stage B's checks, in the order a generated function meets them; the funnel is this list's stages.

Each rule runs its slice of `STAGE_B` (the checks whose `rule` is its name), so the funnel of
`code/metrics.json` is the concatenation over the rules: `filter_code`, then `execute_tests`. Adding a
check: a class in a module here, its place in `STAGE_B`, its tests (docs/architecture.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from evoselfcode.config import Config
from evoselfcode.datagen.checks.base import Check, run_checks
from evoselfcode.datagen.checks.decontamination import BenchmarkMatch
from evoselfcode.datagen.checks.duplicates import ExactDuplicates, NearDuplicates
from evoselfcode.datagen.checks.execution import PassesTests
from evoselfcode.datagen.checks.lint import Ruff
from evoselfcode.datagen.checks.structure import HasFunction, Length, NonTrivial, Parses, Truncated
from evoselfcode.datagen.schemas import CodeSample

STAGE_B: tuple[type[Check], ...] = (
    Truncated,
    Parses,
    HasFunction,
    NonTrivial,
    Length,
    Ruff,
    BenchmarkMatch,
    ExactDuplicates,
    NearDuplicates,
    PassesTests,  # rule execute_tests (tests.enabled), after the model wrote tests of the functions kept so far
)

GENERATED = "generated"
# The last stage: merge-code's dedup across shards, which runs after every shard's checks (`scope: global` rejects).
ACROSS_SHARDS = "unique_across_shards"


def checks_for(rule: str, cfg: Config, inputs: Mapping[str, str] | None = None) -> list[Check]:
    """The checks `rule` runs, in order, as configured (those the config switches off left out)."""
    built = (cls.build(cfg, inputs or {}) for cls in STAGE_B if cls.rule == rule)
    return [check for check in built if check is not None]


def check_samples(
    samples: Sequence[CodeSample], cfg: Config, rule: str = "filter_code", inputs: Mapping[str, str] | None = None
) -> list[str | None]:
    """For each sample in order, the first reason of `rule`'s checks, or None if it is kept."""
    return run_checks(checks_for(rule, cfg, inputs), samples)


def funnel_stages() -> list[str]:
    """The funnel's stages in order: generated, each check's stage (checks may share one), across shards."""
    return list(dict.fromkeys([GENERATED, *(cls.stage for cls in STAGE_B), ACROSS_SHARDS]))


def funnel_stage(reason: str) -> str:
    """The stage a sample dropped with this reason did not reach (the first check that declares it)."""
    for cls in STAGE_B:
        if cls.declares(reason):
            return cls.stage
    raise ValueError(f"{reason!r} is not a stage B reason id")


def funnel(reasons: Iterable[str | None], across_shards: int = 0) -> dict[str, int]:
    """How many samples reached each stage, in order (`funnel_stages`).

    `reasons`: each sample's reason from its shard's checks, None if it passed them all; `across_shards`: how
    many of those that passed merge-code's dedup across shards then dropped.
    """
    reasons = list(reasons)
    stopped_at = Counter(funnel_stage(r) for r in reasons if r is not None)
    stopped_at[ACROSS_SHARDS] = across_shards
    counts: dict[str, int] = {}
    remaining = len(reasons)
    for stage in funnel_stages():
        remaining -= stopped_at[stage]
        counts[stage] = remaining
    return counts


def reason_counts(reasons: Iterable[str | None]) -> dict[str, int]:
    """Dropped samples per reason id, most frequent first (ties by name); kept ones are not counted."""
    counts = Counter(r for r in reasons if r is not None)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
