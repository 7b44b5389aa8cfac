"""Stage B, selection by execution: run each description's tests on its candidates and keep those that win.

Every candidate of a description runs every assertion of the description's tests in the sandbox, and
`tests.selection` decides which candidates stay:

- `agreement` (datagen/agreement.py): candidates vote by behaviour. Exact and near duplicates, which the
  static checks rejected, run too and vote for their group, but only a candidate the static checks kept can
  be kept. The winning group's kept candidates stay; the others are `outvoted`, or `no_evidence` when no group
  may win. A description whose candidates are one function (with its exact copies) has nobody to agree with: it
  is kept when it passes an assertion that no trivial function passes (else `no_evidence`) and
  `execution.min_passed` of them. The assertions it fails are ones no candidate passes, which agreement counts as
  the tests' mistakes for a group too, so `execution.min_pass_rate` does not judge it (measured on six
  generations, bench/README.md's fifth sitting: more tasks kept right, about as right).
- `per_function`: each kept candidate passes at least `execution.min_passed` of the assertions and
  `execution.min_pass_rate` of them (`checks.execution.verdict`), whatever the others do.

A description whose test request failed rejects its candidates with `tests_request_failed`, one with no
usable assertion (or no tests record) with `no_tests`: no run can tell a good candidate from a bad one.
Candidates named otherwise than the tests' function are bound to that name after their code; one whose
parameters do not fit the tests' calls fails them. A kept function's `tests` are the usable assertions it
passes, calling it by its own name.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from evoselfcode.config import Config
from evoselfcode.datagen.agreement import NON_DISCRIMINATING, USABLE, WRONG, Choice, choose, kinds_of
from evoselfcode.datagen.assertions import parse_asserts, renamed
from evoselfcode.datagen.checks.duplicates import DUPLICATE, NEAR_DUPLICATE
from evoselfcode.datagen.checks.execution import NO_EVIDENCE, NO_TESTS, OUTVOTED, TESTS_REQUEST_FAILED, verdict
from evoselfcode.datagen.pipeline.driver import drop_private_store
from evoselfcode.datagen.prompts import parameters
from evoselfcode.datagen.readers import read_models
from evoselfcode.datagen.sandbox import Job, Run, execute
from evoselfcode.datagen.schemas import (
    CodeRecord,
    CodeReject,
    DescSelection,
    DescTests,
    SelectionReject,
    SelectionStats,
)
from evoselfcode.datagen.writers import write_jsonl

log = logging.getLogger("evoselfcode")

SINGLE = "single"  # the evidence of a lone candidate kept by its own tests
# What a function that does nothing would pass: assertions these pass tell nothing about the task.
TRIVIAL = (
    "def {name}(*args, **kwargs):\n    return None\n",
    "def {name}(*args, **kwargs):\n    return args[0] if args else None\n",
)


@dataclass(frozen=True)
class Candidate:
    """A function of a description: kept by the static checks (`record`), or a duplicate of one (a vote only)."""

    desc_id: str
    desc: str
    func_name: str
    source: str
    sample_index: int
    code: str
    record: CodeRecord | None  # None: a duplicate, never kept

    @property
    def key(self) -> tuple:
        return (self.desc_id, self.func_name, self.sample_index, self.source)


def candidates_of(kept: Sequence[CodeRecord], duplicates: Sequence[CodeReject]) -> list[Candidate]:
    """The kept functions and the exact and near duplicates among the static rejects, in the stable order."""
    out = [Candidate(r.meta.desc_id, r.desc, r.func_name, r.source, r.meta.sample_index, r.code, r) for r in kept]
    out += [Candidate(r.desc_id, r.desc, r.func_name, r.source, r.sample_index, r.code, None)
            for r in duplicates if r.reason in (DUPLICATE, NEAR_DUPLICATE)]  # fmt: skip
    return sorted(out, key=lambda c: c.key)


def bound(code: str, name: str, test_name: str) -> str:
    """`code`, callable as `test_name` too when the candidate is named otherwise."""
    return code if name == test_name else f"{code.rstrip()}\n\n\n{test_name} = {name}\n"


@dataclass(frozen=True)
class _Plan:
    """One description: its candidates, tests and assertions, and why none can run (`reason`)."""

    desc_id: str
    candidates: list[Candidate]
    tests: DescTests | None
    asserts: list[str]
    dropped: dict[str, int]
    reason: str | None


def _plan(desc_id: str, candidates: list[Candidate], tests: DescTests | None, cfg: Config) -> _Plan:
    if tests is None or tests.error is not None:
        reason = TESTS_REQUEST_FAILED if tests is not None else NO_TESTS
        return _Plan(desc_id, candidates, tests, [], {}, reason)
    params = parameters(tests.signature)
    asserts, dropped = parse_asserts(tests.answers, tests.func_name, cfg.tests.max_asserts, params=params)
    if cfg.tests.selection == "per_function":
        candidates = [c for c in candidates if c.record is not None]  # duplicates are no votes here
    return _Plan(desc_id, candidates, tests, asserts, dict(sorted(dropped.items())), None if asserts else NO_TESTS)


def _jobs(plan: _Plan, trivial: bool) -> list[Job]:
    name = plan.tests.func_name
    codes = [bound(c.code, c.func_name, name) for c in plan.candidates]
    codes += [t.format(name=name) for t in TRIVIAL] if trivial else []
    return [Job(code, tuple(plan.asserts), calls=name) for code in codes]


def _run_all(jobs: list[Job], cfg: Config, workers: int) -> list[Run]:
    """Each job's run; identical jobs (a duplicate under the same name) run once."""
    unique = list(dict.fromkeys(jobs))
    runs = dict(zip(unique, execute(unique, cfg.execution, workers), strict=True))
    return [runs[job] for job in jobs]


def _kept(c: Candidate, plan: _Plan, passing: list[int], meta: dict) -> CodeRecord:
    tests = [renamed(plan.asserts[i], plan.tests.func_name, c.func_name) for i in passing]
    r = c.record
    meta = {**meta, "dropped": plan.dropped, "completion_tokens": plan.tests.tokens}
    return r.model_copy(update={"meta": r.meta.model_copy(update={"tests": meta}), "tests": tests})


def _reject(c: Candidate, plan: _Plan, run: Run | None, reason: str, group_size: int = 0) -> SelectionReject:
    return SelectionReject(desc_id=c.desc_id, desc=c.desc, func_name=c.func_name, source=c.source,
                           sample_index=c.sample_index, code=c.code, tests=plan.asserts,
                           outcomes=run.outcomes if run else [], values=run.values if run else [],
                           group_size=group_size, reason=reason)  # fmt: skip


def _alone(plan: _Plan, runs: list[Run], kinds: Sequence[str], cfg: Config) -> tuple[list, list, dict]:
    """Each candidate judged by its own outcomes (`verdict`); with agreement it must also pass a usable assertion.

    A usable assertion a lone candidate passes is one no trivial function passes: the evidence that it does more
    than return None or its argument. With agreement the pass rate is not required: what a lone candidate fails,
    no candidate passes (the module's docstring).
    """
    kept, rejects = [], []
    agreement = cfg.tests.selection == "agreement"
    ex = cfg.execution.model_copy(update={"min_pass_rate": 0.0}) if agreement else cfg.execution
    for c, run in zip(plan.candidates, runs, strict=True):
        if c.record is None:
            continue
        passing = [i for i, (o, k) in enumerate(zip(run.outcomes, kinds, strict=True)) if o == "pass" and k == USABLE]
        reason = verdict(list(run.outcomes), ex)
        if reason is None and agreement and not passing:
            reason = NO_EVIDENCE
        if reason is None:
            # passed / run: its pass rate; the usable ones passed are the ones kept with it
            meta = {"selection": cfg.tests.selection, "passed": run.outcomes.count("pass"), "run": len(run.outcomes),
                    "usable_passed": len(passing), "outcomes": dict(sorted(Counter(run.outcomes).items()))}  # fmt: skip
            kept.append(_kept(c, plan, passing, meta))
        else:
            rejects.append(_reject(c, plan, run, reason))
    stats = {"kept": len(kept)}
    if kept and agreement:
        stats.update(evidence=SINGLE, winner_size=1, winner_passed=kept[0].meta.tests["usable_passed"])
    return kept, rejects, stats


def _by_agreement(plan: _Plan, runs: list[Run], choice: Choice) -> tuple[list, list, dict]:
    """The members of the winning group that the static checks kept; the others outvoted (or no_evidence)."""
    size = {m: len(g.members) for g in choice.groups for m in g.members}
    winner = choice.groups[choice.winner] if choice.winner is not None else None
    stats: dict = {"groups": len(choice.groups)}
    if winner is not None:
        stats.update(winner_size=len(winner.members), winner_score=round(winner.score, 6),
                     winner_passed=winner.passed, evidence=winner.evidence)  # fmt: skip
    kept, rejects = [], []
    for i, (c, run) in enumerate(zip(plan.candidates, runs, strict=True)):
        if c.record is None:
            continue  # a duplicate: rejected as one already
        if winner is not None and i in winner.members:
            meta = {"selection": "agreement", "score": round(winner.score, 6), "group_size": len(winner.members),
                    "candidates": len(plan.candidates), "groups": len(choice.groups), "passed": winner.passed,
                    "evidence": winner.evidence, "asserts": len(plan.asserts), "wrong": choice.kinds.count(WRONG),
                    "non_discriminating": choice.kinds.count(NON_DISCRIMINATING)}  # fmt: skip
            kept.append(_kept(c, plan, choice.passing(run), meta))
        else:
            rejects.append(_reject(c, plan, run, OUTVOTED if winner is not None else NO_EVIDENCE, size[i]))
    stats["kept"] = len(kept)
    return kept, rejects, stats


def select(
    kept: Sequence[CodeRecord], duplicates: Sequence[CodeReject], tests: Sequence[DescTests], cfg: Config, workers: int
) -> tuple[list[CodeRecord], list[SelectionReject], list[DescSelection]]:
    """The candidates chosen per description (module docstring), the others with their reason, and per description
    how the choice went; all in the order of (desc_id, func_name, sample_index, source)."""
    by_desc: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates_of(kept, duplicates):
        by_desc[c.desc_id].append(c)
    tests_of = {t.desc_id: t for t in tests}
    agreement = cfg.tests.selection == "agreement"
    plans = [_plan(d, cs, tests_of.get(d), cfg) for d, cs in sorted(by_desc.items())
             if any(c.record is not None for c in cs)]  # fmt: skip
    jobs = [_jobs(p, agreement) if p.reason is None else [] for p in plans]
    flat = _run_all([j for js in jobs for j in js], cfg, workers)
    out_kept, out_rejects, out_stats = [], [], []
    start = 0
    for plan, js in zip(plans, jobs, strict=True):
        runs, start = flat[start : start + len(js)], start + len(js)
        stats = {"desc_id": plan.desc_id, "selection": cfg.tests.selection, "candidates": len(plan.candidates),
                 "duplicates": sum(c.record is None for c in plan.candidates), "asserts": len(plan.asserts),
                 "tokens": plan.tests.tokens if plan.tests else 0, "dropped": plan.dropped}  # fmt: skip
        if plan.reason is not None:
            new_kept = []
            new_rejects = [_reject(c, plan, None, plan.reason) for c in plan.candidates if c.record is not None]
        else:
            real, trivial = runs[: len(plan.candidates)], runs[len(plan.candidates) :]
            kinds = kinds_of(real, trivial)
            stats.update(wrong=kinds.count(WRONG), non_discriminating=kinds.count(NON_DISCRIMINATING))
            if not agreement:
                new_kept, new_rejects, more = _alone(plan, real, [USABLE] * len(plan.asserts), cfg)
            elif len(sources := [c.code for c in plan.candidates]) == 1 or len(set(sources)) == 1:
                new_kept, new_rejects, more = _alone(plan, real, kinds, cfg)  # copies of one function agree by nature
            else:
                new_kept, new_rejects, more = _by_agreement(plan, real, choose(real, trivial, sources))
            stats.update(more)
        if not new_kept:
            stats["reason"] = plan.reason or Counter(r.reason for r in new_rejects).most_common(1)[0][0]
        out_kept += new_kept
        out_rejects += new_rejects
        out_stats.append(DescSelection(**stats))
    return out_kept, out_rejects, out_stats


def shard_stats(records: Sequence[DescSelection], selection: str) -> SelectionStats:
    """A shard's (or a run's) selection in numbers, from its per-description records."""
    won = [r for r in records if r.winner_size]

    def histogram(values) -> dict[str, int]:
        return {str(k): v for k, v in sorted(Counter(values).items())}

    return SelectionStats(
        selection=selection,
        descriptions=len(records),
        candidates=sum(r.candidates - r.duplicates for r in records),
        kept=sum(r.kept for r in records),
        candidates_per_description=histogram(r.candidates for r in records),
        winner_sizes=histogram(r.winner_size for r in won),
        mean_winner_score=round(sum(r.winner_score for r in won) / len(won), 6) if won else 0.0,
        asserts=sum(r.asserts for r in records),
        wrong=sum(r.wrong for r in records),
        non_discriminating=sum(r.non_discriminating for r in records),
        evidence=dict(sorted(Counter(r.evidence for r in won if r.evidence).items())),
        reasons=dict(sorted(Counter(r.reason for r in records if r.reason).items())),
    )


def execute_tests_step(
    cfg: Config, *, kept: str, static_rejects: str, tests: str, out: str, rejects: str, selection: str, workers: int
) -> None:
    """execute-tests: a shard's kept functions (code/filtered/{shard}), their duplicates among the static rejects
    (code/rejects/{shard}) and the descriptions' tests -> the chosen functions, the rejects, per-description stats."""
    records = read_models(kept, CodeRecord)
    chosen, rejected, stats = select(records, read_models(static_rejects, CodeReject), read_models(tests, DescTests),
                                     cfg, workers)  # fmt: skip
    write_jsonl(out, chosen)
    write_jsonl(rejects, rejected)
    write_jsonl(selection, stats)
    drop_private_store(tests)
    log.info("kept %d of %d functions (%s); rejected: %s", len(chosen), len(records), cfg.tests.selection,
             dict(sorted(Counter(r.reason for r in rejected).items())))  # fmt: skip
