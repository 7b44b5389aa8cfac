"""Choosing among a description's candidate functions by agreement: candidates that behave alike vote together.

Every candidate (its duplicates too: each copy is a vote) has run every assertion of the description's tests,
and so have trivial candidates (one returns None, one its first argument). Then:

- An assertion no candidate passes is the test's mistake (`wrong`); one that every candidate passes and a trivial
  one too tells nothing (`non_discriminating`). Neither counts; the rest are `usable`.
- Candidates with the same outcome and the same value digest on every assertion form a group (values on a wrong
  assertion still show who behaves alike).
- A group scores passed x sqrt(size), as CodeT does, `passed` counting the usable assertions its members pass.
- Minimum evidence: a group may win only if it passes a usable assertion that every trivial candidate fails
  (`asserts`), or has two different functions or more (copies of one are votes, not agreement) and returns
  on some call a value no trivial candidate returns (`values`). Without it, a function that passes only
  `assert f([]) == []` could be chosen.
- The winner is the eligible group with the highest score; a tie goes to the larger group, then to the one
  passing more assertions, then to the one whose first member comes first. No eligible group: no winner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import sqrt
from typing import Protocol

WRONG, NON_DISCRIMINATING, USABLE = "wrong", "non_discriminating", "usable"
BY_ASSERTS, BY_VALUES = "asserts", "values"  # the evidence a winning group has


class Behaviour(Protocol):
    """One candidate's results on a description's assertions (a `sandbox.Run`)."""

    outcomes: Sequence[str]
    values: Sequence[str | None]


@dataclass(frozen=True)
class Group:
    members: tuple[int, ...]  # positions in the candidates, ascending
    passed: int  # usable assertions each member passes
    evidence: str | None  # BY_ASSERTS, BY_VALUES, or None: it may not win

    @property
    def score(self) -> float:
        return self.passed * sqrt(len(self.members))


@dataclass(frozen=True)
class Choice:
    kinds: tuple[str, ...]  # per assertion: USABLE, WRONG or NON_DISCRIMINATING
    groups: tuple[Group, ...]  # in the order of their first members
    winner: int | None  # a position in `groups`

    def passing(self, behaviour: Behaviour) -> list[int]:
        """The usable assertions `behaviour` passes, by position."""
        return [i for i, (o, k) in enumerate(zip(behaviour.outcomes, self.kinds, strict=True))
                if o == "pass" and k == USABLE]  # fmt: skip


def kinds_of(candidates: Sequence[Behaviour], trivial: Sequence[Behaviour]) -> tuple[str, ...]:
    """Each assertion's kind: no candidate passes it (WRONG), all do and a trivial one too (NON_DISCRIMINATING)."""
    count = len(candidates[0].outcomes) if candidates else 0
    kinds = []
    for i in range(count):
        passed = [c.outcomes[i] == "pass" for c in candidates]
        if not any(passed):
            kinds.append(WRONG)
        elif all(passed) and any(t.outcomes[i] == "pass" for t in trivial):
            kinds.append(NON_DISCRIMINATING)
        else:
            kinds.append(USABLE)
    return tuple(kinds)


def _evidence(b: Behaviour, distinct: int, kinds: Sequence[str], trivial: Sequence[Behaviour]) -> str | None:
    for i, kind in enumerate(kinds):
        if kind == USABLE and b.outcomes[i] == "pass" and all(t.outcomes[i] != "pass" for t in trivial):
            return BY_ASSERTS
    if distinct >= 2:
        for i, value in enumerate(b.values):
            if value is not None and all(t.values[i] != value for t in trivial):
                return BY_VALUES
    return None


def choose(
    candidates: Sequence[Behaviour], trivial: Sequence[Behaviour], sources: Sequence[str] | None = None
) -> Choice:
    """The groups of `candidates` by behaviour and the one that wins (see the module's docstring).

    `sources`: each candidate's code, so copies of one function count as one for the `values` evidence.
    """
    kinds = kinds_of(candidates, trivial)
    members: dict[tuple, list[int]] = {}
    for i, c in enumerate(candidates):
        members.setdefault(tuple(zip(c.outcomes, c.values, strict=True)), []).append(i)
    groups = []
    for positions in members.values():
        first = candidates[positions[0]]
        passed = sum(o == "pass" and k == USABLE for o, k in zip(first.outcomes, kinds, strict=True))
        distinct = len({sources[p] for p in positions}) if sources is not None else len(positions)
        groups.append(Group(tuple(positions), passed, _evidence(first, distinct, kinds, trivial)))

    # passed^2 x size orders as the score does, in integers: no rounding turns a tie into a win
    def rank(g: int) -> tuple:
        size, passed = len(groups[g].members), groups[g].passed
        return (-(passed**2) * size, -size, -passed, groups[g].members[0])

    ranked = sorted((g for g in range(len(groups)) if groups[g].evidence is not None), key=rank)
    return Choice(kinds, tuple(groups), ranked[0] if ranked else None)
