"""Stage-A name filters: one `(keep, reason)` check per rule, stable reason ids, per-description dedup.

Dedup is per (description, mode): each mode's samples compete only with their own, so the FIM/L2R
A/B compares the modes fairly. The same name from both modes is merged later, in `select_names`.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Iterable

from evoselfcode.config import Filters, NameGen, Select
from evoselfcode.datagen.schemas import NameCandidate, NameReject, NameSample

TRUNCATED = "truncated"
EMPTY = "empty"
INVALID_IDENTIFIER = "invalid_identifier"
NOT_SNAKE_CASE = "not_snake_case"
KEYWORD = "keyword"
BUILTIN = "builtin"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
WEAK_NAME = "weak_name"
IRRELEVANT = "irrelevant"
DUPLICATE = "duplicate"
REASONS = (
    EMPTY,
    INVALID_IDENTIFIER,
    NOT_SNAKE_CASE,
    KEYWORD,
    BUILTIN,
    TOO_SHORT,
    TOO_LONG,
    WEAK_NAME,
    IRRELEVANT,
    DUPLICATE,
    TRUNCATED,  # checked first; listed last as it came last
)

BUILTIN_NAMES = frozenset(n for n in dir(builtins) if not n.startswith("__"))
# small chat/web models wrap names in markup (`<strong>sort_list</strong>`, `**x**`, `` `x` ``) or repeat `def `
_LEADING_NOISE = re.compile(r"^(?:\s+|def\s+|</?[A-Za-z][A-Za-z0-9]*\s*/?>|[`'\"*])+")


def normalise_name(text: str) -> str:
    """What the model wrote as the name: without leading whitespace, `def `, HTML tags, quotes, backticks
    or asterisks, cut at the first character that cannot be part of an identifier."""
    text = _LEADING_NOISE.sub("", text)
    end = 0
    while end < len(text) and (text[end] == "_" or text[end].isalnum()):
        end += 1
    return text[:end]


def check_identifier(name: str) -> tuple[bool, str | None]:
    return (True, None) if name.isidentifier() else (False, INVALID_IDENTIFIER)


def check_snake_case(name: str, filters: Filters) -> tuple[bool, str | None]:
    return (True, None) if re.fullmatch(filters.name_regex, name) else (False, NOT_SNAKE_CASE)


def check_keyword(name: str) -> tuple[bool, str | None]:
    # soft keywords (`match`, `case`, `type`, `_`) are legal names but read badly as a function's
    bad = keyword.iskeyword(name) or keyword.issoftkeyword(name)
    return (False, KEYWORD) if bad else (True, None)


def check_builtin(name: str) -> tuple[bool, str | None]:
    return (False, BUILTIN) if name in BUILTIN_NAMES else (True, None)


def check_length(name: str, filters: Filters) -> tuple[bool, str | None]:
    if len(name) < filters.name_min_len:
        return False, TOO_SHORT
    if len(name) > filters.name_max_len:
        return False, TOO_LONG
    return True, None


def check_weak(name: str, weaklist: Iterable[str]) -> tuple[bool, str | None]:
    weak = {w.lower() for w in weaklist}
    return (False, WEAK_NAME) if name.lower() in weak else (True, None)


# Relevance: the share of the name's words found in the description, after a deliberately small
# normalisation (lowercase, plural and -ing/-ed endings, a final "e", doubled final consonants) and a
# few abbreviations that count as found when all their expanded words are in the description (and the
# other way round: "BFS" in a description matches breadth_first_search). No synonyms: `largest` != `max`.
ABBREVIATIONS = {
    "arr": "array",
    "avg": "average",
    "bfs": "breadth first search",
    "bst": "binary search tree",
    "calc": "calculate",
    "char": "character",
    "cnt": "count",
    "dfs": "depth first search",
    "dict": "dictionary",
    "dist": "distance",
    "dp": "dynamic programming",
    "elem": "element",
    "fib": "fibonacci",
    "freq": "frequency",
    "gcd": "greatest common divisor",
    "idx": "index",
    "lcm": "least common multiple",
    "lcs": "longest common subsequence",
    "len": "length",
    "lst": "list",
    "max": "maximum",
    "min": "minimum",
    "mst": "minimum spanning tree",
    "num": "number",
    "pos": "position",
    "prev": "previous",
    "seq": "sequence",
    "sqrt": "square root",
    "str": "string",
    "val": "value",
}
IRREGULAR = {"indices": "index", "matrices": "matrix", "vertices": "vertex", "children": "child"}
# glue words say nothing about the task; `is`/`has` are boolean-function prefixes
NAME_STOPWORDS = frozenset({"a", "an", "and", "as", "at", "by", "for", "from", "has", "in", "into", "is", "of", "on",
                            "or", "the", "to", "with"})  # fmt: skip
_PLURALS = (("ies", "y"), ("sses", "ss"), ("xes", "x"), ("ches", "ch"), ("shes", "sh"), ("zes", "z"), ("s", ""))
_VERB_FORMS = (("ing", ""), ("ed", ""))
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_MIN_STEM = 3


def split_words(text: str) -> list[str]:
    """Lowercase words of `text`, splitting snake_case, camelCase and CONSTANT_CASE as well as prose."""
    return [w.lower() for w in _WORD.findall(text)]


def _strip_suffix(word: str, rules: tuple[tuple[str, str], ...]) -> str:
    for suffix, repl in rules:
        if word.endswith(suffix) and not (suffix == "s" and word.endswith("ss")):
            stem = word[: len(word) - len(suffix)] + repl
            return stem if len(stem) >= _MIN_STEM else word
    return word


def stem(word: str) -> str:
    """A crude common form: sorts/sorted/sorting -> sort, reverse/reversed -> revers, running -> run."""
    word = IRREGULAR.get(word.lower(), word.lower())
    word = _strip_suffix(_strip_suffix(word, _PLURALS), _VERB_FORMS)
    if len(word) > _MIN_STEM and word.endswith("e"):
        word = word[:-1]
    if len(word) > _MIN_STEM and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


def _expansion(word: str) -> tuple[str, ...]:
    full = ABBREVIATIONS.get(word) or ABBREVIATIONS.get(stem(word))
    return tuple(stem(w) for w in full.split()) if full else ()


def relevance(name: str, desc: str) -> float:
    """Share of the name's words (glue words aside) whose stem, or whole expansion, is in the description."""
    words = split_words(name)
    words = [w for w in words if w not in NAME_STOPWORDS] or words
    if not words:
        return 0.0
    desc_keys = set()
    for word in split_words(desc):
        desc_keys.add(stem(word))
        desc_keys.update(_expansion(word))
    found = 0
    for word in words:
        expansion = _expansion(word)
        if stem(word) in desc_keys or (expansion and desc_keys.issuperset(expansion)):
            found += 1
    return found / len(words)


def check_relevance(score: float, filters: Filters) -> tuple[bool, str | None]:
    return (False, IRRELEVANT) if score < filters.min_relevance else (True, None)


def name_reason(name: str, namegen: NameGen, filters: Filters) -> str | None:
    """The first rule a normalised name breaks, or None; relevance and dedup need more and come after."""
    if not name:
        return EMPTY
    for keep, reason in (
        check_identifier(name),
        check_snake_case(name, filters),
        check_keyword(name),
        check_builtin(name),
        check_length(name, filters),
        check_weak(name, namegen.weaklist),
    ):
        if not keep:
            return reason
    return None


def is_cut_off(sample: NameSample, name: str) -> bool:
    """The model reached namegen.max_new_tokens while still writing the name (nothing after it ended it)."""
    return sample.finish_reason == "length" and bool(name) and _LEADING_NOISE.sub("", sample.text) == name


def filter_names(
    samples: list[NameSample], namegen: NameGen, filters: Filters
) -> tuple[list[NameCandidate], list[NameReject]]:
    """Split samples, in their given order, into kept names and rejects: each lands in exactly one."""
    kept: list[NameCandidate] = []
    rejects: list[NameReject] = []
    seen: set[tuple[str, str, str]] = set()
    for sample in samples:
        name = normalise_name(sample.func_name or sample.text)
        reason = TRUNCATED if is_cut_off(sample, name) else name_reason(name, namegen, filters)
        score = relevance(name, sample.desc) if reason is None else 0.0
        if reason is None:
            _, reason = check_relevance(score, filters)
        if reason is None and (sample.desc_id, sample.mode, name) in seen:
            reason = DUPLICATE
        if reason is not None:
            rejects.append(NameReject(**sample.model_dump(), reason=reason))
            continue
        seen.add((sample.desc_id, sample.mode, name))
        kept.append(
            NameCandidate(
                desc_id=sample.desc_id,
                desc=sample.desc,
                func_name=name,
                source=sample.mode,
                meta={
                    "seed": sample.seed,
                    "sample_index": sample.sample_index,
                    "logprob": sample.logprob,
                    "relevance": score,
                    "finish_reason": sample.finish_reason,
                },
            )
        )
    return kept, rejects


def rank_key(cand: NameCandidate) -> tuple:
    """Better first: higher relevance, then higher log-prob (unknown last), then the name."""
    rel = cand.meta.get("relevance")
    lp = cand.meta.get("logprob")
    return (-(rel if rel is not None else 0.0), lp is None, -(lp if lp is not None else 0.0), cand.func_name)


def select_names(cands: list[NameCandidate], select: Select) -> list[NameCandidate]:
    """Per description (in order of first appearance), the best `select.per_desc` distinct names from
    `select.sources`; a name both modes produced keeps the better-ranked candidate and its source."""
    by_desc: dict[str, list[NameCandidate]] = {}
    for cand in cands:
        if cand.source in select.sources:
            by_desc.setdefault(cand.desc_id, []).append(cand)
    out: list[NameCandidate] = []
    for group in by_desc.values():
        names: set[str] = set()
        for cand in sorted(group, key=lambda c: (rank_key(c), c.source)):
            if cand.func_name in names:
                continue
            names.add(cand.func_name)
            out.append(cand)
            if len(names) == select.per_desc:
                break
    return out
