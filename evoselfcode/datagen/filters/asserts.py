"""Model-written tests as single assertions: each parses, calls the function, and can fail.

Dropped assertions are counted by stable reason: `syntax_error`, `not_assert`, `no_call` (never calls the
function), `cannot_fail` (`assert True`, a constant, a call compared with itself), `duplicate`, `over_limit`.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterable

SYNTAX_ERROR, NOT_ASSERT, NO_CALL, CANNOT_FAIL, DUPLICATE, OVER_LIMIT = (
    "syntax_error", "not_assert", "no_call", "cannot_fail", "duplicate", "over_limit",
)  # fmt: skip


def _statements(text: str) -> Iterable[ast.stmt | None]:
    """The statements of `text`; when it does not parse as a whole, line by line (None for a bad line)."""
    try:
        yield from ast.parse(text).body
        return
    except SyntaxError:
        pass
    head, _, last = text.rstrip().rpartition("\n")
    try:  # most often only the last line is cut off (max_new_tokens)
        body = ast.parse(head).body
    except SyntaxError:
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
        except SyntaxError:
            yield None


def _calls(node: ast.AST, func_name: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == func_name for n in ast.walk(node)
    )


def _cannot_fail(test: ast.expr) -> bool:
    if isinstance(test, ast.Constant):
        return bool(test.value)
    if isinstance(test, ast.Compare) and all(isinstance(op, ast.Eq | ast.Is) for op in test.ops):
        sides = {ast.dump(n) for n in (test.left, *test.comparators)}
        return len(sides) == 1  # `f(x) == f(x)`
    return False


def _reason(node: ast.stmt | None, func_name: str) -> str | None:
    if node is None:
        return SYNTAX_ERROR
    if not isinstance(node, ast.Assert):
        return NOT_ASSERT
    if _cannot_fail(node.test):
        return CANNOT_FAIL
    if not _calls(node.test, func_name):
        return NO_CALL
    return None


def parse_asserts(texts: Iterable[str], func_name: str, limit: int) -> tuple[list[str], Counter[str]]:
    """The first `limit` distinct usable assertions in `texts` (each a whole test text), and drops per reason."""
    kept: list[str] = []
    dropped: Counter[str] = Counter()
    for text in texts:
        for node in _statements(text):
            reason = _reason(node, func_name)
            if reason is None:
                source = ast.unparse(node)
                reason = DUPLICATE if source in kept else OVER_LIMIT if len(kept) >= limit else None
            if reason is None:
                kept.append(source)
            else:
                dropped[reason] += 1
    return kept, dropped
