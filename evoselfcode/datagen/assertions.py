"""Model-written tests as single assertions: each parses, calls the function, and can fail.

Dropped assertions are counted by stable reason: `syntax_error`, `not_assert`, `no_call` (never calls the
function), `cannot_fail` (`assert True`, a constant, a non-empty tuple as in `assert (f(x) == 1, "msg")`,
`... or True`, a call compared with itself), `undefined_name` (uses a name that neither the function's code,
Python's builtins nor the assertion defines, such as `assert f(items) == expected`: it could only raise
NameError), `duplicate`, `over_limit`.
"""

from __future__ import annotations

import ast
import builtins
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import takewhile, zip_longest

SYNTAX_ERROR, NOT_ASSERT, NO_CALL, CANNOT_FAIL, UNDEFINED_NAME, DUPLICATE, OVER_LIMIT = (
    "syntax_error", "not_assert", "no_call", "cannot_fail", "undefined_name", "duplicate", "over_limit",
)  # fmt: skip
# What every module has before its first line runs (the sandbox runs code and tests as one module).
_PREDEFINED = frozenset(dir(builtins)) | {"__name__", "__doc__", "__builtins__", "__spec__", "__loader__"}
_NO_STATEMENT = object()  # a text with fewer statements than the longest, in parse_asserts's turns
# What the parser refuses: syntax, null bytes, nesting too deep (a model that repeats `-` hundreds of times).
UNPARSABLE = (SyntaxError, ValueError, RecursionError, MemoryError)


def _statements(text: str) -> Iterable[ast.stmt | None]:
    """The statements of `text`; when it does not parse as a whole, line by line (None for a bad line)."""
    try:
        yield from ast.parse(text).body
        return
    except UNPARSABLE:
        pass
    head, _, last = text.rstrip().rpartition("\n")
    try:  # most often only the last line is cut off (max_new_tokens)
        body = ast.parse(head).body
    except UNPARSABLE:
        pass
    else:
        yield from body
        yield None
        return
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            yield from ast.parse(line.strip()).body
        except UNPARSABLE:
            yield None


def _calls(node: ast.AST, func_name: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == func_name for n in ast.walk(node)
    )


def _cannot_fail(test: ast.expr) -> bool:
    if isinstance(test, ast.Constant):
        return bool(test.value)
    if isinstance(test, ast.Tuple | ast.List | ast.Set):  # `assert (f(x) == 1, "msg")`: a non-empty tuple
        return any(not isinstance(e, ast.Starred) for e in test.elts)
    if isinstance(test, ast.Dict):  # `{**d}` (a None key) may be empty
        return any(k is not None for k in test.keys)
    if isinstance(test, ast.Lambda):
        return True
    if isinstance(test, ast.BoolOp):  # `f(x) == 1 or True`
        truths = [_cannot_fail(v) for v in test.values]
        return any(truths) if isinstance(test.op, ast.Or) else all(truths)
    if isinstance(test, ast.Compare) and all(isinstance(op, ast.Eq | ast.Is) for op in test.ops):
        sides = {ast.dump(n) for n in (test.left, *test.comparators)}
        return len(sides) == 1  # `f(x) == f(x)`
    return False


def top_level_names(code: str) -> frozenset[str] | None:
    """The names `code` binds at module level (defs, classes, imports, assignments), with the builtins.

    None when that cannot be known: the code does not parse, or star-imports.
    """
    try:
        module = ast.parse(code)
    except UNPARSABLE:
        return None
    names = set(_PREDEFINED)
    todo: list[ast.AST] = list(module.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)  # its body binds its own names, except those it declares global
            names.update(n for g in ast.walk(node) if isinstance(g, ast.Global) for n in g.names)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any(a.name == "*" for a in node.names):
                return None
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            names.update(_walrus_targets(node))  # its loop variables stay inside it
        elif not isinstance(node, ast.Lambda):
            if isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
                names.add(node.name)  # `case x:` binds x
            elif isinstance(node, ast.MatchMapping) and node.rest:
                names.add(node.rest)
            todo.extend(ast.iter_child_nodes(node))  # if/try/for/with/match blocks, assignment targets, walrus
    return frozenset(names)


def _walrus_targets(node: ast.AST) -> set[str]:
    return {n.target.id for n in ast.walk(node) if isinstance(n, ast.NamedExpr)}


def _undefined(test: ast.AST, defined: frozenset[str]) -> bool:
    """Whether `test` loads a name that is neither in `defined` nor bound inside it (comprehension, lambda)."""
    own = {n.id for n in ast.walk(test) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    own.update(a.arg for n in ast.walk(test) if isinstance(n, ast.Lambda) for a in ast.walk(n.args)
               if isinstance(a, ast.arg))  # fmt: skip
    return any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in defined and n.id not in own
               for n in ast.walk(test))  # fmt: skip


def _by_position(node: ast.AST, func_name: str, params: Sequence[str]) -> ast.AST:
    """`node` (changed in place) with each call of `func_name` passing by position the keyword arguments that
    fill the next parameters of `params` in order; the keywords after a gap stay keywords."""
    for call in ast.walk(node):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == func_name):
            continue
        names = [k.arg for k in call.keywords]
        if any(isinstance(a, ast.Starred) for a in call.args) or len(set(names)) < len(names):
            continue  # `f(*a, k=1)`: positions unknown; `f(x=1, x=2)`: an error to keep
        given = {k.arg: k.value for k in call.keywords}
        moved = list(takewhile(given.__contains__, params[len(call.args) :]))
        call.args += [given[p] for p in moved]
        call.keywords = [k for k in call.keywords if k.arg not in moved]
    return node


def _reason(node: ast.stmt | None, func_name: str, defined: frozenset[str] | None) -> str | None:
    if node is None:
        return SYNTAX_ERROR
    if not isinstance(node, ast.Assert):
        return NOT_ASSERT
    if _cannot_fail(node.test):
        return CANNOT_FAIL
    if not _calls(node.test, func_name):
        return NO_CALL
    if defined is not None and _undefined(node, defined):  # the message too: it runs when the test fails
        return UNDEFINED_NAME
    return None


def parse_asserts(
    texts: Iterable[str], func_name: str, limit: int, code: str | None = None, params: Sequence[str] = ()
) -> tuple[list[str], Counter[str]]:
    """The first `limit` distinct usable assertions in `texts` (each a whole test text), and drops per reason.

    The texts take turns (every text's first statement, then every text's second, ...): one answer that runs on
    does not fill the limit before the others are read. With the function's `code`, assertions that use a name it
    does not define are dropped (`undefined_name`). With the parameters of the signature the tests were asked
    for, keyword arguments that fill its next parameters in order are passed by position, so a candidate that
    names its parameters otherwise takes the same calls.
    """
    defined = top_level_names(code) if code is not None else None
    kept: list[str] = []
    dropped: Counter[str] = Counter()
    for turn in zip_longest(*(list(_statements(t)) for t in texts), fillvalue=_NO_STATEMENT):
        for node in (n for n in turn if n is not _NO_STATEMENT):
            try:
                if node is not None and params:
                    node = _by_position(node, func_name, params)
                reason = _reason(node, func_name, defined)
                source = ast.unparse(node) if reason is None else ""
            except RecursionError:  # parsed, but too deep to compare or print again
                reason = SYNTAX_ERROR
            if reason is None:
                reason = DUPLICATE if source in kept else OVER_LIMIT if len(kept) >= limit else None
            if reason is None:
                kept.append(source)
                if defined is not None:  # the assertions run in order in one namespace
                    defined = defined | _walrus_targets(node)
            else:
                dropped[reason] += 1
    return kept, dropped


def renamed(test: str, old: str, new: str) -> str:
    """`test` with the name `old` read as `new`: a description's assertion, as it calls a candidate named otherwise."""
    if old == new:
        return test
    tree = ast.parse(test)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == old:
            node.id = new
    return ast.unparse(tree)
