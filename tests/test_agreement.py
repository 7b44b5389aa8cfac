"""Choosing among a description's candidates by agreement (datagen/agreement.py), on made-up runs."""

from evoselfcode.datagen.agreement import BY_ASSERTS, BY_VALUES, NON_DISCRIMINATING, USABLE, WRONG, choose
from evoselfcode.datagen.sandbox import Run


def run(outcomes: str, values: str | None = None) -> Run:
    """`run("pp.f", "ab-c")`: per assertion p(ass), f(ail), e(rror), and a value digest per letter (- for none)."""
    names = {"p": "pass", "f": "fail", "e": "error:TypeError"}
    values = values or "-" * len(outcomes)
    return Run([names[o] for o in outcomes], [None if v == "-" else v * 32 for v in values])


NONE, FIRST = run("ff", "nn"), run("ff", "xx")  # the trivial candidates fail both


def test_a_wrong_candidate_passing_its_wrong_assertion_loses_to_a_larger_agreeing_group():
    # assertions: f(2) == 4, f(4) == 16 (right), f(3) == 10 (wrong: 9 is right), f(0) == 0 (right, but trivial)
    right = run("ppfp", "4g90")
    wrong = run("pppp", "4ga0")  # passes the wrong assertion too: it copies the test's mistake
    trivial = [run("ffff", "nnnn"), run("fffp", "2430")]  # identity passes f(0) == 0
    choice = choose([right, wrong, right, right], trivial)
    assert choice.kinds == (USABLE, USABLE, USABLE, NON_DISCRIMINATING)
    winner = choice.groups[choice.winner]
    assert winner.members == (0, 2, 3) and winner.passed == 2 and winner.evidence == BY_ASSERTS
    assert round(winner.score, 3) == 3.464  # 2 x sqrt(3), against the wrong one's 3 x sqrt(1)
    assert choose([right, wrong], trivial).groups[choose([right, wrong], trivial).winner].members == (1,)  # 2 < 3


def test_a_right_candidate_wins_against_a_wrong_assertion_nobody_passes():
    right, off_by_one = run("pf", "ab"), run("ff", "bc")
    choice = choose([off_by_one, right], [NONE, FIRST])
    assert choice.kinds == (USABLE, WRONG)  # the second is the test's mistake, not the code's
    assert choice.groups[choice.winner].members == (1,)
    assert choice.passing(right) == [0]


def test_an_assertion_everyone_passes_a_trivial_function_too_is_no_evidence():
    # f([]) == [] passes for every candidate and for `return x`
    a, b = run("pp", "ab"), run("pf", "ac")
    trivial = [run("ff", "nn"), run("pf", "ab")]
    choice = choose([a, b], trivial)
    assert choice.kinds == (NON_DISCRIMINATING, USABLE)
    assert choice.groups[choice.winner].members == (0,) and choice.groups[choice.winner].passed == 1


def test_a_group_that_passes_only_what_a_trivial_function_passes_cannot_win():
    # the candidates that return None pass `f(x) is None`, which a real one fails: usable, but no evidence
    returns_none, real = run("pf", "nn"), run("fp", "ee")
    trivial = [run("pf", "nn"), run("ff", "xx")]
    choice = choose([returns_none, returns_none, returns_none, real], trivial)
    assert choice.kinds == (USABLE, USABLE)
    assert choice.groups[0].evidence is None and choice.groups[0].score > choice.groups[1].score
    assert choice.groups[choice.winner].members == (3,)
    assert choose([returns_none, returns_none], trivial).winner is None  # alone, it has nothing to win with
    # two that agree on a value no trivial function returns may win, though
    agree = choose([run("pf", "nd"), run("pf", "nd")], trivial)
    assert agree.groups[agree.winner].evidence == BY_VALUES


def test_without_usable_assertions_agreement_on_values_needs_two_candidates():
    # every assertion is wrong (nobody passes): the larger group agreeing on values wins
    a, b = run("ff", "ab"), run("ff", "cd")
    choice = choose([b, a, a], [NONE, FIRST])
    assert choice.kinds == (WRONG, WRONG)
    assert choice.groups[choice.winner].members == (1, 2) and choice.groups[choice.winner].evidence == BY_VALUES
    assert choose([a, b], [NONE, FIRST]).winner is None  # two singletons: no agreement, nothing kept
    assert choose([run("ff"), run("ff")], [NONE, FIRST]).winner is None  # agreeing, but on no value


def test_candidates_that_pass_the_same_assertions_but_return_other_values_are_two_groups():
    a, b = run("pf", "ab"), run("pf", "ac")  # both fail the wrong second assertion, with different values
    choice = choose([a, b, b], [NONE, FIRST])
    assert [g.members for g in choice.groups] == [(0,), (1, 2)]
    assert choice.groups[choice.winner].members == (1, 2)


def test_ties_go_to_the_larger_group_then_to_the_first_member():
    # 2 x sqrt(1) == 1 x sqrt(4): the larger group wins the tie
    two_passes, one_pass = run("ppf", "abc"), run("pff", "ade")
    choice = choose([two_passes, one_pass, one_pass, one_pass, one_pass], [run("fff"), run("fff")])
    assert choice.groups[choice.winner].members == (1, 2, 3, 4)
    # equal in everything: the group whose first member comes first, whatever the order of the groups
    a, b = run("pf", "ab"), run("fp", "cd")
    assert choose([a, b], [NONE, FIRST]).groups[choose([a, b], [NONE, FIRST]).winner].members == (0,)
    assert choose([b, a], [NONE, FIRST]).groups[choose([b, a], [NONE, FIRST]).winner].members == (0,)
    assert choose([a, b], [NONE, FIRST]) == choose([a, b], [NONE, FIRST])


def test_copies_of_one_function_are_votes_not_agreement_on_values():
    trivial = [run("ff", "nd"), run("ff", "fd")]
    same = [run("ff", "xy"), run("ff", "xy")]
    assert choose(same, trivial, sources=["def f(): ...", "def f(): ..."]).winner is None  # one function, twice
    assert choose(same, trivial, sources=["def f(): ...", "def g(): ..."]).winner == 0  # two that agree
