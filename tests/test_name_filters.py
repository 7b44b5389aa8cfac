import pytest

from evoselfcode.config import Filters, NameGen, Select
from evoselfcode.datagen import name_filters as nf
from evoselfcode.datagen.name_filters import (
    filter_names,
    name_reason,
    normalise_name,
    relevance,
    select_names,
    split_words,
    stem,
)
from evoselfcode.datagen.schemas import NameCandidate, NameSample

SORT = "Sort a list of numbers in ascending order."


def sample(text, *, desc_id="d1", desc=SORT, mode="FIM", i=0, logprob=None, func_name=None, finish_reason="stop"):
    return NameSample(
        desc_id=desc_id,
        desc=desc,
        mode=mode,
        sample_index=i,
        seed=100 + i,
        text=text,
        func_name=normalise_name(text) if func_name is None else func_name,
        finish_reason=finish_reason,
        logprob=logprob,
        tokens=3,
    )


def cand(name, *, desc_id="d1", source="FIM", rel=1.0, lp=None):
    return NameCandidate(
        desc_id=desc_id, desc=SORT, func_name=name, source=source, meta={"relevance": rel, "logprob": lp}
    )


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("sort_list", "sort_list"),
        ("  sort_list(", "sort_list"),
        ("def sort_list(items):", "sort_list"),
        ("def  def merge", "merge"),
        ("`bubble_sort`", "bubble_sort"),
        ("sort-list", "sort"),
        ("sortList:", "sortList"),
        ("2sum", "2sum"),
        ("", ""),
        ("   \n", ""),
        ("(x)", ""),
        ("名前_x!", "名前_x"),
        ("<strong>fib_sum</strong>", "fib_sum"),  # seen from Gemma 3 270M
        ("<em>sort</em> ", "sort"),
        ("\xa0count_vowels", "count_vowels"),
        ("**merge_sort**", "merge_sort"),
        ("<3 x", ""),
    ],
)
def test_normalise_name(text, name):
    assert normalise_name(text) == name


def test_normalise_is_idempotent():
    for text in ["def foo_bar(x)", "  `x_y`  ", "a.b"]:
        once = normalise_name(text)
        assert normalise_name(once) == once


def test_reason_ids_are_stable():
    assert nf.REASONS == (
        "empty",
        "invalid_identifier",
        "not_snake_case",
        "keyword",
        "builtin",
        "too_short",
        "too_long",
        "weak_name",
        "irrelevant",
        "duplicate",
        "truncated",
    )


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("2sum", "invalid_identifier"),
        ("sortList", "not_snake_case"),
        ("Sort_list", "not_snake_case"),
        ("sort__list", "not_snake_case"),
        ("for", "keyword"),
        ("match", "keyword"),
        ("sorted", "builtin"),
        ("max", "builtin"),
        ("ab", "too_short"),
        ("a" * 49, "too_long"),
        ("solve", "weak_name"),
        ("sort_list", None),
        ("a" * 48, None),
    ],
)
def test_name_reason(name, reason):
    assert name_reason(name, NameGen(), Filters()) == reason


def test_weaklist_is_case_insensitive():
    ng = NameGen(weaklist=["Sort_List"])
    assert name_reason("sort_list", ng, Filters()) == "weak_name"


def test_regex_and_lengths_come_from_config():
    filters = Filters(name_regex=r"^[a-zA-Z]+$", name_min_len=1, name_max_len=5)
    assert name_reason("sortL", NameGen(), filters) is None
    assert name_reason("sortLs", NameGen(), filters) == "too_long"


@pytest.mark.parametrize(
    ("word", "common"),
    [
        ("sorted", "sort"),
        ("sorting", "sort"),
        ("sorts", "sort"),
        ("entries", "entry"),
        ("matches", "match"),
        ("reverse", "revers"),
        ("reversed", "revers"),
        ("running", "run"),
        ("indices", "index"),
        ("strings", "str"),
        ("is", "is"),
        ("thing", "thing"),
    ],
)
def test_stem(word, common):
    assert stem(word) == common


def test_split_words():
    assert split_words("get_maxValue2") == ["get", "max", "value", "2"]
    assert split_words("HTTPServer") == ["http", "server"]
    assert split_words("Run BFS, then k-th") == ["run", "bfs", "then", "k", "th"]


@pytest.mark.parametrize(
    ("name", "desc", "score"),
    [
        ("sort_numbers", SORT, 1.0),
        ("sort_list_ascending", SORT, 1.0),
        ("sorted_nums", SORT, 1.0),  # nums -> number, sorted -> sort
        ("reverse_string", "Reverse a string.", 1.0),
        ("reversed_str", "Reverse a string.", 1.0),
        ("get_max_value", "Return the maximum value in a list.", 2 / 3),
        ("find_idx", "Find the index of x.", 1.0),
        ("bfs_shortest_path", "Shortest path by breadth first search.", 1.0),
        ("breadth_first_search", "Run BFS on a graph.", 1.0),
        ("is_prime", "Check whether n is a prime number.", 1.0),  # `is` is a glue word
        ("list_of_primes", "Return the primes below n.", 0.5),
        ("quick_select", SORT, 0.0),
        ("of_the", "the list of", 1.0),  # only glue words: they count
        ("max_element", "Return the largest element.", 0.5),  # no synonyms
    ],
)
def test_relevance(name, desc, score):
    assert relevance(name, desc) == pytest.approx(score)


def test_filter_names_every_reason_and_accounting():
    samples = [
        sample("sort_numbers", i=0, logprob=-1.0),
        sample("", i=1),
        sample("2sum", i=2),
        sample("sortNumbers", i=3),
        sample("for", i=4),
        sample("sorted", i=5),
        sample("ab", i=6),
        sample("a" * 49, i=7),
        sample("solve", i=8),
        sample("quick_select", i=9),
        sample("def sort_numbers(", i=10),  # same name after normalisation: duplicate within (d1, FIM)
        sample("sort_numbers", i=11, mode="L2R"),  # other mode: not a duplicate
        sample("sort_numbers", i=12, desc_id="d2"),  # other description: not a duplicate
    ]
    kept, rejects = filter_names(samples, NameGen(), Filters(min_relevance=0.5))
    assert len(kept) + len(rejects) == len(samples)
    assert [r.reason for r in rejects] == [
        "empty",
        "invalid_identifier",
        "not_snake_case",
        "keyword",
        "builtin",
        "too_short",
        "too_long",
        "weak_name",
        "irrelevant",
        "duplicate",
    ]
    assert [(c.desc_id, c.source, c.func_name) for c in kept] == [
        ("d1", "FIM", "sort_numbers"),
        ("d1", "L2R", "sort_numbers"),
        ("d2", "FIM", "sort_numbers"),
    ]
    assert kept[0].meta == {
        "seed": 100,
        "sample_index": 0,
        "logprob": -1.0,
        "relevance": 1.0,
        "finish_reason": "stop",
    }
    assert rejects[0].text == "" and rejects[0].sample_index == 1


def test_a_name_cut_off_by_the_token_limit_is_truncated():
    # at namegen.max_new_tokens the model had not ended the name: 'sort_the_numbers_in_asc' is half of one
    cut = sample("sort_numbers_in_asc", i=0, finish_reason="length")
    whole = sample("sort_numbers: the list", i=1, finish_reason="length")  # ended, then ran on: the name is whole
    spaced = sample("def sort_items \t", i=2, finish_reason="length")
    again = sample("sort_values(xs) -> sort_values", i=3, finish_reason="length")
    kept, rejects = filter_names([cut, whole, spaced, again], NameGen(), Filters())
    assert [(r.sample_index, r.reason) for r in rejects] == [(0, "truncated")]
    assert [c.func_name for c in kept] == ["sort_numbers", "sort_items", "sort_values"]


def test_min_relevance_zero_keeps_unrelated_names():
    kept, rejects = filter_names([sample("quick_select")], NameGen(), Filters())
    assert [c.func_name for c in kept] == ["quick_select"] and rejects == []
    assert kept[0].meta["relevance"] == 0.0


def test_filter_normalises_the_raw_text_when_func_name_is_empty():
    kept, _ = filter_names([sample("def sort_numbers(x)", func_name="")], NameGen(), Filters())
    assert kept[0].func_name == "sort_numbers"


def test_a_rejected_name_does_not_claim_the_dedup_slot():
    kept, rejects = filter_names(
        [sample("sort_numbers", i=0), sample("sort_numbers", i=1)], NameGen(weaklist=[]), Filters()
    )
    assert len(kept) == 1 and [r.reason for r in rejects] == ["duplicate"]


def test_select_ranks_by_relevance_then_logprob_then_name():
    cands = [
        cand("zeta_sort", rel=1.0, lp=-5.0),
        cand("alpha_sort", rel=1.0, lp=None),
        cand("beta_sort", rel=1.0, lp=-1.0),
        cand("gamma_sort", rel=0.5, lp=-0.1),
        cand("delta_sort", rel=1.0, lp=None),
    ]
    picked = select_names(cands, Select(per_desc=5))
    assert [c.func_name for c in picked] == ["beta_sort", "zeta_sort", "alpha_sort", "delta_sort", "gamma_sort"]
    assert [c.func_name for c in select_names(cands, Select(per_desc=2))] == ["beta_sort", "zeta_sort"]


def test_select_dedups_across_modes_keeping_the_better_source():
    cands = [
        cand("sort_list", source="FIM", rel=1.0, lp=-3.0),
        cand("sort_list", source="L2R", rel=1.0, lp=-1.0),
        cand("order_list", source="FIM", rel=0.5, lp=-1.0),
    ]
    picked = select_names(cands, Select(per_desc=2))
    assert [(c.func_name, c.source) for c in picked] == [("sort_list", "L2R"), ("order_list", "FIM")]


def test_select_respects_sources_and_groups_by_description():
    cands = [
        cand("b_sort", desc_id="d2", source="L2R"),
        cand("a_sort", desc_id="d1", source="FIM"),
        cand("c_sort", desc_id="d1", source="L2R"),
        cand("d_sort", desc_id="d2", source="FIM"),
    ]
    picked = select_names(cands, Select(per_desc=2, sources=["L2R"]))
    assert [(c.desc_id, c.func_name) for c in picked] == [("d2", "b_sort"), ("d1", "c_sort")]


def test_select_is_deterministic_whatever_the_input_order():
    cands = [cand(f"name_{i}", rel=i % 3 / 2, lp=-float(i % 4)) for i in range(12)]
    first = select_names(cands, Select(per_desc=4))
    again = select_names(list(reversed(cands)), Select(per_desc=4))
    assert [c.func_name for c in first] == [c.func_name for c in again]
