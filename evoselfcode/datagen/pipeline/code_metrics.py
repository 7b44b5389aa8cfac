"""`code/metrics.json`: the filter funnel, reasons, sources and lengths of stage B."""

from __future__ import annotations

import statistics
from array import array
from collections import Counter
from itertools import chain, repeat

from evoselfcode.datagen.checks import funnel
from evoselfcode.datagen.checks.execution import PassesTests
from evoselfcode.datagen.pipeline.selection import shard_stats
from evoselfcode.datagen.schemas import DescSelection


def _quantiles(values: list[int]) -> dict:
    if not values:
        return {"count": 0}
    q = statistics.quantiles(values, n=20, method="inclusive") if len(values) > 1 else [values[0]] * 19
    return {"count": len(values), "min": min(values), "p5": q[0], "p50": q[9], "p95": q[18], "max": max(values),
            "mean": round(statistics.fmean(values), 1)}  # fmt: skip


class CodeMetrics:
    """Counts for `code/metrics.json`, fed one record at a time: merge-code streams millions of them.

    Records are dicts as in the files: raw samples, kept records, rejects (shard and global), failures.
    """

    def __init__(self) -> None:
        self.generated: Counter[str] = Counter()  # raw samples per source
        self.trimmed = 0
        self.kept: Counter[str] = Counter()  # per source
        self.rejected: Counter[tuple[str, str]] = Counter()  # per (source, reason)
        self.rejected_across_shards: Counter[str] = Counter()  # per reason: merge-code's dedup (`scope: global`)
        self.failures = 0
        self.code_chars = array("q")  # of each kept record: 8 bytes where a list of ints takes ~36
        self.code_lines = array("q")
        self.tokens: Counter[str] = Counter()  # completion tokens: of code requests, of test requests
        self.passed_tests = 0  # functions that passed their tests (kept, or dropped later by the global dedup)
        self.failed_tests: Counter[str] = Counter()  # per reason of the tests stage
        self.selections: list[DescSelection] = []  # per description, with the tests stage on

    def add_raw(self, sample: dict) -> None:
        self.generated[sample["source"]] += 1
        self.trimmed += bool(sample.get("trimmed"))
        self.tokens["code"] += sample.get("tokens") or 0

    def add_kept(self, record: dict) -> None:
        self.kept[record["source"]] += 1
        self.code_chars.append(len(record["code"]))
        self.code_lines.append(record["code"].count("\n") + 1)

    def add_tested(self, record: dict) -> None:
        """A record that passed its tests, kept or not by the global dedup."""
        if "tests" in record["meta"]:
            self.passed_tests += 1

    def add_tests(self, record: dict) -> None:
        """One description's test request (a `DescTests`): its tokens were spent whether or not a candidate of it
        passed the static checks."""
        self.tokens["tests"] += record.get("tokens", 0)

    def add_selection(self, record: dict) -> None:
        """How one description's candidates were chosen."""
        self.selections.append(DescSelection.model_validate(record))

    def add_reject(self, reject: dict) -> None:
        self.rejected[reject["source"], reject["reason"]] += 1
        if reject.get("scope") == "global":
            self.rejected_across_shards[reject["reason"]] += 1
        if PassesTests.declares(reject["reason"]):
            self.failed_tests[reject["reason"]] += 1

    def add_failure(self, failure: dict) -> None:
        self.failures += 1

    def result(self) -> dict:
        reasons: Counter[str] = Counter()
        for (_, reason), count in self.rejected.items():
            reasons[reason] += count
        generated, kept, rejected = self.generated.total(), self.kept.total(), reasons.total()
        across = self.rejected_across_shards.total()
        by_source = {}
        for source in sorted(self.generated):
            n_kept = self.kept[source]
            by_source[source] = {
                "generated": self.generated[source],
                "kept": n_kept,
                "pass_rate": round(n_kept / self.generated[source], 4),
                "reasons": dict(sorted((r, n) for (s, r), n in self.rejected.items() if s == source)),
            }
        return {
            "funnel": funnel(
                chain(repeat(None, kept + across), (reasons - self.rejected_across_shards).elements()), across
            ),
            "accounting": {
                "generated": generated,
                "kept": kept,
                "rejected": rejected,
                "adds_up": kept + rejected == generated,
            },
            "reasons": dict(sorted(reasons.items())),
            "by_source": by_source,
            "pass_rate": round(kept / generated, 4) if generated else None,
            "trimmed": self.trimmed,
            "failed_requests": self.failures,
            # GPU time is the cost: completion tokens, all and per kept function
            "completion_tokens": {
                "code": self.tokens["code"],
                "tests": self.tokens["tests"],
                "per_kept_function": round(self.tokens.total() / kept, 1) if kept else None,
            },
            **({"execution": self._execution()} if self.passed_tests or self.failed_tests else {}),
            **({"selection": self._selection()} if self.selections else {}),
            "code_chars": _quantiles(self.code_chars.tolist()),
            "code_lines": _quantiles(self.code_lines.tolist()),
        }

    def _selection(self) -> dict:
        """Candidates per description, the winning groups, the assertions set aside (pipeline/selection.py)."""
        return shard_stats(self.selections, self.selections[0].selection).model_dump()

    def _execution(self) -> dict:
        """The tests stage: functions tested in the sandbox, how many passed, why the others did not."""
        tested = self.passed_tests + self.failed_tests.total()
        return {
            "functions": tested,
            "passed": self.passed_tests,
            "pass_rate": round(self.passed_tests / tested, 4),
            "reasons": dict(sorted(self.failed_tests.items())),
        }
