import json
import math

import pytest

from evoselfcode.config import Filters, NameGen
from evoselfcode.datagen.name_filters import filter_names
from evoselfcode.datagen.pipeline.abtest import (
    bootstrap_means,
    entropy_bits,
    name_metrics,
    percentile_ci,
    two_proportion_z,
    wilson,
)
from evoselfcode.datagen.schemas import NameSample

D1 = "Sort a list using merge sort."
D2 = "Reverse a string."


def samples_for(mode, per_desc: dict[tuple[str, str], list[str]], logprob=-1.0):
    out = []
    for (desc_id, desc), texts in per_desc.items():
        for i, text in enumerate(texts):
            out.append(
                NameSample(
                    desc_id=desc_id,
                    desc=desc,
                    mode=mode,
                    sample_index=i,
                    seed=i,
                    text=text,
                    func_name=text,
                    logprob=logprob,
                    tokens=2,
                )
            )
    return out


def small_ab():
    """FIM keeps 4 of 8 (d1: 2, d2: 2), L2R keeps 1 of 8 (d1 only); d3 was never sampled."""
    fim = samples_for(
        "FIM",
        {
            ("d1", D1): ["sort_list", "merge_sort", "sort_list", "solve"],
            ("d2", D2): ["reverse_string", "", "reverse_string", "reverse_str"],
        },
    )
    l2r = samples_for(
        "L2R",
        {
            ("d1", D1): ["solve", "solve", "helper", "sort_list"],
            ("d2", D2): ["sortList", "x", "", "main"],
        },
        logprob=-2.0,
    )
    samples = fim + l2r
    kept, rejects = filter_names(samples, NameGen(), Filters())
    return samples, kept, rejects


def large_ab(good: str):
    """50 descriptions, one sample each per mode: `good` keeps 45 names, the other keeps 35 and says `solve` 15x."""
    samples = []
    for i in range(50):
        desc = f"Sort list {i}."
        fim_text = f"sort_list_{i}" if i < 45 else ""
        l2r_text = f"sort_list_{i}" if i < 35 else "solve"
        other = "L2R" if good == "FIM" else "FIM"
        samples += samples_for(good, {(f"d{i:02d}", desc): [fim_text]})
        samples += samples_for(other, {(f"d{i:02d}", desc): [l2r_text]})
    kept, rejects = filter_names(samples, NameGen(), Filters())
    return samples, kept, rejects


def test_wilson_against_hand_computed_values():
    # p = 0.8, z^2 = 3.8415: centre = (0.8 + 0.19207) / 1.38415 = 0.71673,
    # half = (1.95996 / 1.38415) * sqrt(0.016 + 0.0096037) = 0.22658
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.49016, abs=1e-5)
    assert hi == pytest.approx(0.94331, abs=1e-5)
    assert wilson(0, 10) == (0.0, pytest.approx(0.27753, abs=1e-5))
    assert wilson(10, 10) == (pytest.approx(0.72247, abs=1e-5), 1.0)
    assert wilson(0, 0) is None


def test_two_proportion_z_against_hand_computed_values():
    # 45/50 vs 35/50: pooled 0.8, se = sqrt(0.8 * 0.2 * (2 / 50)) = 0.08, z = 0.2 / 0.08 = 2.5,
    # p = 2 * (1 - Phi(2.5)) = 0.012419
    z, p = two_proportion_z(45, 50, 35, 50)
    assert z == pytest.approx(2.5)
    assert p == pytest.approx(0.0124193, abs=1e-6)
    # 4/8 vs 1/8: pooled 0.3125, se = sqrt(0.3125 * 0.6875 / 4) = 0.231756, z = 0.375 / 0.231756 = 1.61808
    z, p = two_proportion_z(4, 8, 1, 8)
    assert z == pytest.approx(1.61808, abs=1e-5)
    assert p == pytest.approx(0.10564, abs=1e-4)
    assert two_proportion_z(0, 5, 0, 7) == (0.0, 1.0)


def test_entropy_bits():
    assert entropy_bits(["a", "a", "b", "b"]) == pytest.approx(1.0)
    assert entropy_bits(["a", "b", "c", "d"]) == pytest.approx(2.0)
    assert entropy_bits(["a", "a"]) == 0.0
    assert entropy_bits([]) == 0.0


def test_bootstrap_is_seeded_and_sane():
    values = [0.0, 1.0] * 50
    first = bootstrap_means(values, "s")
    assert first == bootstrap_means(values, "s")
    assert first != bootstrap_means(values, "t")
    lo, hi = percentile_ci(first)
    assert lo < 0.5 < hi
    assert lo > 0.35 and hi < 0.65  # ~ 0.5 +- 1.96 * 0.05
    assert percentile_ci(bootstrap_means([3.0] * 7, "c")) == (3.0, 3.0)


def test_small_ab_known_answers():
    samples, kept, rejects = small_ab()
    m = name_metrics(samples, kept, rejects, descriptions=3)
    fim, l2r = m["modes"]["FIM"], m["modes"]["L2R"]

    assert (fim["sampled"], fim["kept"], l2r["sampled"], l2r["kept"]) == (8, 4, 8, 1)
    # compliance passes the name rules: FIM's two repeats are compliant, its empty and weak names are not
    assert fim["compliance"]["value"] == 0.75 and l2r["compliance"]["value"] == 1 / 8
    assert fim["compliance"]["ci95"] == pytest.approx(list(wilson(6, 8)))
    assert fim["weak_rate"]["k"] == 1 and l2r["weak_rate"]["k"] == 4
    assert (fim["coverage"]["k"], fim["coverage"]["n"]) == (2, 3)
    assert (l2r["coverage"]["k"], l2r["coverage"]["n"]) == (1, 3)
    assert fim["distinct_per_desc"]["value"] == pytest.approx(4 / 3)  # [2, 2, 0]: d3 failed, counts as 0
    assert l2r["distinct_per_desc"]["value"] == pytest.approx(1 / 3)
    assert fim["distinct_names"] == 4 and fim["name_entropy_bits"] == pytest.approx(2.0)
    assert l2r["name_entropy_bits"] == 0.0
    assert fim["relevance"]["value"] == 1.0 and fim["relevance"]["ci95"] == [1.0, 1.0]
    assert fim["logprob"]["value"] == -1.0 and l2r["logprob"]["value"] == -2.0
    assert fim["tokens_per_kept"] == pytest.approx(8 * 2 / 4)
    assert l2r["tokens_per_kept"] == pytest.approx(16.0)

    assert {r: n for r, n in fim["reasons"].items() if n} == {"empty": 1, "weak_name": 1, "duplicate": 2}
    assert {r: n for r, n in l2r["reasons"].items() if n} == {
        "weak_name": 4,
        "not_snake_case": 1,
        "too_short": 1,
        "empty": 1,
    }
    for mode in (fim, l2r):
        assert mode["kept"] + sum(mode["reasons"].values()) == mode["sampled"]
    assert m["accounting"]["ok"] is True
    assert m["accounting"]["FIM"] == {"sampled": 8, "kept": 4, "rejected": 4, "ok": True}

    comp = m["comparison"]["compliance"]
    assert comp["test"] == "two-proportion z-test"
    # pooled 7/16, se = sqrt(7/16 * 9/16 * 2/8) = 0.248039, z = 0.625 / se
    assert comp["z"] == pytest.approx(2.51976, abs=1e-5)
    assert comp["diff_fim_minus_l2r"] == pytest.approx(0.625)
    assert comp["significant"] is True and comp["better"] == "FIM"
    assert m["comparison"]["relevance"]["test"] == "bootstrap"
    assert m["comparison"]["relevance"]["p_value"] == 1.0  # both all 1.0: every bootstrap difference is 0
    assert "z-test" in m["tests"]["rates"] and "bootstrap" in m["tests"]["means"]
    json.dumps(m)  # JSON-ready: no NaN/inf objects


def test_large_ab_verdict_fim_better():
    m = name_metrics(*large_ab("FIM"), descriptions=50)
    comp = m["comparison"]
    assert comp["compliance"]["z"] == pytest.approx(2.5)
    assert comp["compliance"]["p_value"] == pytest.approx(0.0124193, abs=1e-6)
    assert comp["compliance"]["better"] == "FIM"
    # weak: 0/50 vs 15/50, pooled 0.15, se = sqrt(0.15 * 0.85 * 0.04) = 0.0714143, z = -4.2008
    assert comp["weak_rate"]["z"] == pytest.approx(-4.2008, abs=1e-4)
    assert comp["weak_rate"]["better"] == "FIM"  # fewer weak names is better
    assert comp["distinct_per_desc"]["diff_fim_minus_l2r"] == pytest.approx(0.2)
    lo, hi = comp["distinct_per_desc"]["ci95"]
    assert 0 < lo < 0.2 < hi
    assert comp["distinct_per_desc"]["better"] == "FIM"
    assert comp["logprob"]["better"] is None  # reported, never judged
    assert m["verdict"] == (
        "FIM better on compliance, weak_rate, coverage, distinct_per_desc; no significant difference on relevance"
    )


def test_large_ab_verdict_l2r_better():
    m = name_metrics(*large_ab("L2R"), descriptions=50)
    assert m["verdict"] == (
        "L2R better on compliance, weak_rate, coverage, distinct_per_desc; no significant difference on relevance"
    )


def test_metrics_are_deterministic():
    args = large_ab("FIM")
    assert json.dumps(name_metrics(*args, 50)) == json.dumps(name_metrics(*args, 50))


def test_accounting_catches_a_lost_sample():
    samples, kept, rejects = small_ab()
    m = name_metrics(samples, kept, rejects[1:], descriptions=3)
    assert m["accounting"]["ok"] is False
    assert m["accounting"]["unmatched_keys"] == 1


def test_one_mode_only():
    samples, kept, rejects = small_ab()
    fim = [s for s in samples if s.mode == "FIM"]
    m = name_metrics(fim, [c for c in kept if c.source == "FIM"], [r for r in rejects if r.mode == "FIM"], 3)
    assert list(m["modes"]) == ["FIM"]
    assert m["verdict"] == "only FIM sampled: no comparison"
    assert m["accounting"]["ok"] is True


def test_no_logprobs_and_nothing_kept():
    samples = samples_for("FIM", {("d1", D1): ["", "solve"]}, logprob=None) + samples_for(
        "L2R", {("d1", D1): ["", ""]}, logprob=None
    )
    kept, rejects = filter_names(samples, NameGen(), Filters())
    m = name_metrics(samples, kept, rejects, descriptions=1)
    fim = m["modes"]["FIM"]
    assert fim["compliance"]["value"] == 0.0 and fim["compliance"]["ci95"][0] == 0.0
    assert fim["relevance"] == {"n": 0, "value": None, "ci95": None}
    assert fim["logprob"]["value"] is None and fim["tokens_per_kept"] is None
    assert m["comparison"]["relevance"]["compared"] is False
    assert "not compared (no data) on distinct_per_desc" not in m["verdict"]
    assert "not compared (no data) on relevance" in m["verdict"]
    assert not any(isinstance(v, float) and math.isnan(v) for v in fim.values())


def test_repeats_and_irrelevant_names_are_compliant_but_not_kept():
    samples = samples_for("FIM", {("d1", D1): ["sort_list", "sort_list", "sort_list", "parse_json"]})
    samples += samples_for("L2R", {("d1", D1): ["sort_list", "merge_sort", "", "solve"]})
    kept, rejects = filter_names(samples, NameGen(), Filters(min_relevance=0.5))
    fim, l2r = name_metrics(samples, kept, rejects, descriptions=1)["modes"].values()
    assert fim["reasons"]["duplicate"] == 2 and fim["reasons"]["irrelevant"] == 1
    assert (fim["compliance"]["k"], fim["kept"], fim["distinct_per_desc"]["value"]) == (4, 1, 1.0)
    assert (l2r["compliance"]["k"], l2r["kept"], l2r["distinct_per_desc"]["value"]) == (2, 2, 2.0)


def test_an_arm_of_empty_or_cut_names_is_a_warning_not_only_a_verdict():
    fim = samples_for("FIM", {("d1", D1): ["sort_list", "merge_sort", "sort_items", "sort_numbers"]})
    l2r = samples_for("L2R", {("d1", D1): ["", "", "", "sort_list"]})
    kept, rejects = filter_names(fim + l2r, NameGen(), Filters())
    m = name_metrics(fim + l2r, kept, rejects, descriptions=1)
    assert m["warnings"] == m["modes"]["L2R"]["warnings"] == ["arm L2R: 75% empty: check the prompt's end and stops"]
    assert m["modes"]["FIM"]["warnings"] == []
    assert m["verdict"].endswith("(but arm L2R: 75% empty: check the prompt's end and stops)")

    cut = samples_for("L2R", {("d1", D1): ["so", "me", "", "sort_list"]})
    for s in cut:
        s.finish_reason = "length"
    kept, rejects = filter_names(fim + cut, NameGen(), Filters())
    m = name_metrics(fim + cut, kept, rejects, descriptions=1)
    assert m["warnings"] == ["arm L2R: 100% ran out of namegen.max_new_tokens before a stop: check the stops"]
    assert m["modes"]["L2R"]["reasons"]["truncated"] == 3 and m["modes"]["L2R"]["kept"] == 0  # none kept half

    short = samples_for("L2R", {("d1", D1): ["so", "me", "", "sort_list"]})
    kept, rejects = filter_names(fim + short, NameGen(), Filters())
    assert name_metrics(fim + short, kept, rejects, descriptions=1)["warnings"] == [
        "arm L2R: 75% empty or too short (cut): check the prompt's end and stops"
    ]


def test_a_healthy_ab_has_no_warnings():
    m = name_metrics(*large_ab("FIM"), descriptions=50)
    assert m["warnings"] == [] and "(but" not in m["verdict"]
