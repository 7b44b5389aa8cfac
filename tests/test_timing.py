"""Request timings: recorded per request apart from the data, summarised per mode in `timing.json`."""

import pytest

from evoselfcode.clients.base import Choice, CompletionClient
from evoselfcode.datagen.pipeline.runner import Request, run_requests
from evoselfcode.datagen.pipeline.store import AnswerStore
from evoselfcode.datagen.pipeline.timing import timing_summary
from evoselfcode.datagen.schemas import RequestTiming


class TimedClient(CompletionClient):
    """Answers every prompt with two choices that arrived after 0.5 s and 1.25 s."""

    def complete(self, prompt, *, max_tokens, temperature, top_p, n=1, stop=None, logprobs=None, seed=None, extra=None,
                 retry_wait=None):  # fmt: skip
        return [Choice(text=f"{prompt}:{i}", latency=(0.5, 1.25)[i % 2]) for i in range(n)]


def timing(mode, latency, resumed=False):
    return RequestTiming(desc_id="d", mode=mode, choices=4, latency=latency, resumed=resumed)


def test_a_request_takes_as_long_as_its_slowest_choice_and_knows_if_it_was_resumed(tmp_path):
    reqs = [Request(key=(f"d{i}",), prompt=f"p{i}", params={"n": 2, "max_tokens": 4, "temperature": 0.0,
                                                            "top_p": 1.0}) for i in range(3)]  # fmt: skip
    run_requests(TimedClient(), reqs[:1], concurrency=1, store=AnswerStore(tmp_path), server="s")
    out = run_requests(TimedClient(), reqs, concurrency=2, store=AnswerStore(tmp_path), server="s")
    timings = [o.timing(f"d{i}", "FIM") for i, o in enumerate(out)]
    assert [(t.latency, t.choices, t.resumed) for t in timings] == [(1.25, 2, True), (1.25, 2, False),
                                                                    (1.25, 2, False)]  # fmt: skip
    # the key names the stored answer, so `evoselfcode store --prune` keeps what this run used
    assert [t.key for t in timings] == [o.key for o in out] and all(AnswerStore(tmp_path).get(t.key) for t in timings)


def test_summary_per_mode_with_known_answers():
    timings = [timing("FIM", 1.0), timing("FIM", 2.0), timing("FIM", 3.0, resumed=True), timing("L2R", 0.5)]
    summary = timing_summary(timings, ["FIM", "FIM", "L2R", "L2R", "L2R", "L2R"])["by_mode"]
    fim, l2r = summary["FIM"], summary["L2R"]
    assert (fim["requests"], fim["resumed"], fim["asked"], fim["kept"]) == (3, 1, 2, 2)
    assert fim["request_seconds"] == 6.0 and fim["seconds_per_kept"] == 3.0
    assert fim["latency_s"] == {"mean": 2.0, "p50": 2.0, "p95": pytest.approx(2.9), "max": 3.0}
    assert l2r["seconds_per_kept"] == 0.125 and l2r["latency_s"]["p95"] == 0.5


def test_a_mode_with_requests_but_nothing_kept_or_kept_without_timings():
    summary = timing_summary([timing("FIM", 1.0)], ["L2R"])["by_mode"]
    assert summary["FIM"]["kept"] == 0 and summary["FIM"]["seconds_per_kept"] is None
    assert summary["L2R"]["requests"] == 0 and summary["L2R"]["latency_s"]["mean"] is None


def test_the_tests_requests_have_their_own_section_over_both_modes():
    code, tests = [timing("FIM", 1.0), timing("L2R", 2.0)], [timing(None, 0.5), timing(None, 1.5, resumed=True)]
    summary = timing_summary(code, ["FIM", "FIM"], tests)
    fim, l2r = summary["by_mode"]["FIM"], summary["by_mode"]["L2R"]
    assert (fim["requests"], fim["request_seconds"]) == (1, 1.0)
    assert (summary["tests"]["requests"], summary["tests"]["resumed"], summary["tests"]["asked"]) == (2, 1, 1)
    assert summary["tests"]["request_seconds"] == 2.0
    assert fim["seconds_per_kept"] == 0.5 and l2r["seconds_per_kept"] is None  # code requests over kept records
    assert "tests" not in timing_summary(code, ["FIM"])  # the stage did not run
