"""The report's plots, drawn from hand-made metrics: every panel and bar is there, and nothing breaks on empty data."""

import json
from pathlib import Path

import pytest

from evoselfcode import report
from evoselfcode.cli import main
from evoselfcode.datagen.checks import funnel_stages


def rate(k, n, lo, hi):
    return {"k": k, "n": n, "value": k / n, "ci95": [lo, hi]}


def mean(v, lo, hi, n=10):
    return {"n": n, "value": v, "ci95": [lo, hi]}


def mode(compliance, reasons):
    return {
        "sampled": 40,
        "compliance": rate(compliance, 40, 0.4, 0.8),
        "weak_rate": rate(2, 40, 0.01, 0.16),
        "coverage": rate(10, 10, 0.72, 1.0),
        "distinct_per_desc": mean(1.5, 1.2, 1.8),
        "relevance": mean(0.9, 0.8, 0.95),
        "logprob": {"n": 0, "value": None, "ci95": None},
        "reasons": reasons,
    }


NAMES = {
    "descriptions": 10,
    "modes": {
        "FIM": mode(30, {"duplicate": 6, "weak_name": 2, "keyword": 0, "not_snake_case": 2}),
        "L2R": mode(20, {"duplicate": 12, "weak_name": 2, "keyword": 0, "too_short": 6}),
    },
    "comparison": {
        "compliance": {"compared": True, "p_value": 0.02, "significant": True, "better": "FIM"},
        "weak_rate": {"compared": True, "p_value": 1.0, "significant": False, "better": None},
        "coverage": {"compared": True, "p_value": 1.0, "significant": False, "better": None},
        "distinct_per_desc": {"compared": True, "p_value": 0.4, "significant": False, "better": None},
        "relevance": {"compared": True, "p_value": 0.7, "significant": False, "better": None},
        "logprob": {"compared": False},
    },
}
CODE = {"funnel": {"generated": 50, "near_unique": 20, "named": 40, "non_trivial": 35, "parsed": 45,
                   "ruff_clean": 30, "unique": 25}}  # fmt: skip
RECORDS = [{"source": s, "code": "def f(x):\n" + "    x += 1\n" * (i + 1) + "    return x\n", "score": {"ppl": 1.5 + i}}
           for i, s in enumerate(["FIM", "L2R", "FIM", "FIM", "L2R"])]  # fmt: skip


def test_ab_plot_has_a_panel_per_metric_with_the_verdicts(tmp_path):
    out = tmp_path / "ab.svg"
    report.plot_ab(NAMES, out)
    assert out.read_text().count('id="axes_') == 6  # SVG text is drawn as paths: count the panels here
    fig_text = _labels(report.plot_ab, NAMES)
    assert "p = 0.02: FIM better" in fig_text
    assert "p = 0.4: no significant difference" in fig_text
    assert fig_text.count("no data") == 1  # the server returned no log-probs


def _labels(plot, data) -> str:
    """All text artists of the figure a plot function draws (captured before it is saved)."""
    import matplotlib.pyplot as plt

    seen = []
    real_save = report._save

    def keep(fig, out):
        seen.extend(t.get_text() for t in fig.findobj(match=lambda a: hasattr(a, "get_text")))
        plt.close(fig)

    report._save = keep
    try:
        plot(data, "unused.svg")
    finally:
        report._save = real_save
    return "\n".join(seen)


def test_rejects_plot_shows_each_hit_reason_with_counts_and_leaves_out_unhit_ones():
    labels = _labels(report.plot_name_rejects, NAMES)
    for reason in ("duplicate", "weak_name", "not_snake_case", "too_short"):
        assert reason in labels
    assert "keyword" not in labels
    assert "18" not in labels and "12" in labels and "6" in labels  # counts per mode, not summed
    assert "FIM (40 sampled)" in labels


def test_funnel_follows_the_order_of_the_checks_with_shares_of_generated():
    labels = _labels(report.plot_funnel, CODE)
    order = [stage for stage in funnel_stages() if stage in CODE["funnel"]]
    assert sorted(order) == sorted(CODE["funnel"])
    positions = [labels.index(stage + "\n") if stage + "\n" in labels else labels.index(stage) for stage in order]
    assert positions == sorted(positions)
    assert "20 (40%)" in labels and "50 (100%)" in labels


def test_the_funnel_caption_names_every_stage_the_plot_can_show():
    caption = (Path(__file__).resolve().parent.parent / "report/code_funnel.rst").read_text()
    assert [stage for stage in funnel_stages()[1:] if f"``{stage}``" not in caption] == []


def test_funnel_names_the_benchmark_matches_removed_per_stage():
    removed = {"descriptions": {"humaneval": 3, "mbpp": 1}, "functions": {"humaneval": 2}}
    labels = _labels(report.plot_funnel, {**CODE, "funnel": {**CODE["funnel"], "uncontaminated": 27},
                                          "decontamination": removed})  # fmt: skip
    assert "uncontaminated" in labels
    assert "benchmark matches removed: descriptions humaneval 3, mbpp 1; functions humaneval 2" in labels
    assert not any("benchmark" in t for t in _labels(report.plot_funnel, CODE))


def test_lengths_and_perplexity_count_each_source():
    assert "FIM (n=3)" in _labels(report.plot_code_lengths, RECORDS)
    labels = _labels(report.plot_perplexity, RECORDS)
    assert "FIM (n=3)" in labels and "L2R (n=2)" in labels


@pytest.mark.parametrize(
    ("plot", "data", "says"),
    [
        (report.plot_ab, {"modes": {}, "comparison": {}}, "no data"),
        (report.plot_name_rejects, {"modes": {"FIM": {"reasons": {"duplicate": 0}}}}, "no name was rejected"),
        (report.plot_funnel, {"funnel": {"generated": 0}}, "no function was generated"),
        (report.plot_code_lengths, [], "no function was kept"),
        (report.plot_perplexity, [{"source": "FIM", "score": {"ppl": float("inf")}}], "no function was scored"),
    ],
)
def test_empty_data_gives_a_plot_that_says_so(plot, data, says):
    assert says in _labels(plot, data)


def test_the_same_metrics_give_the_same_bytes(tmp_path):
    report.plot_ab(NAMES, tmp_path / "a.svg")
    report.plot_ab(NAMES, tmp_path / "b.svg")
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()


def test_plot_command_writes_every_plot_and_perplexity_only_with_scores(tmp_path):
    (tmp_path / "names.json").write_text(json.dumps(NAMES))
    (tmp_path / "code.json").write_text(json.dumps(CODE))
    (tmp_path / "kept.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    outs = {f: tmp_path / f"{f}.svg" for f in ("ab", "name-rejects", "funnel", "lengths")}
    args = ["plot", "--names-metrics", str(tmp_path / "names.json"), "--code-metrics", str(tmp_path / "code.json"),
            "--records", str(tmp_path / "kept.jsonl"), "--config", "configs/datagen.yaml"]  # fmt: skip
    args += [a for f, p in outs.items() for a in (f"--{f}", str(p))]
    assert main(args) == 0
    assert all(p.stat().st_size > 1000 for p in outs.values())
    assert not (tmp_path / "ppl.svg").exists()
    assert main([*args, "--scored", str(tmp_path / "kept.jsonl"), "--perplexity", str(tmp_path / "ppl.svg")]) == 0
    assert (tmp_path / "ppl.svg").read_text().startswith("<?xml")
