"""Cut a generated function out of a model continuation, and spot empty bodies, with the AST only.

Generated code is data: it is parsed here, never imported, compiled to bytecode or run.
"""

from __future__ import annotations

import ast
import re

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef

# The parser's own line breaks (\r\n, \r, \n); str.splitlines also breaks on \x0c, \u2028, ... and would
# disagree with the AST's line numbers.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def _parse_or_error_line(source: str) -> tuple[ast.Module | None, int | None]:
    try:
        return ast.parse(source), None
    except SyntaxError as exc:
        return None, exc.lineno
    except (ValueError, RecursionError, MemoryError):
        return None, None


def parse(source: str) -> ast.Module | None:
    """The module's AST, or None for anything the parser refuses (syntax, null bytes, nesting too deep)."""
    return _parse_or_error_line(source)[0]


def find_function(tree: ast.Module, func_name: str) -> FunctionNode | None:
    """The first top-level function called `func_name`; nested functions of that name do not count."""
    for node in tree.body:
        if isinstance(node, FunctionNode) and node.name == func_name:
            return node
    return None


def _split_lines(source: str) -> list[str]:
    return _LINE.findall(source)


def _cut(lines: list[str], node: FunctionNode) -> str:
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return "".join(lines[first - 1 : node.end_lineno]).rstrip() + "\n"


def extract_function(source: str, func_name: str) -> tuple[str, bool] | None:
    """`(code, trimmed)` for the top-level function `func_name` in `source`, or None if there is none.

    Keeps the function's decorators, docstring and body; drops whatever else the model wrote after it.
    If `source` does not parse, shorter and shorter line prefixes are tried (a continuation often
    ends in a broken line). `trimmed` is True when anything other than whitespace was dropped.
    """
    lines = _split_lines(source)
    tree, error_line = _parse_or_error_line(source)
    if tree is not None:
        node = find_function(tree, func_name)
        if node is None:
            return None
        code = _cut(lines, node)
        return code, code.strip() != source.strip()
    # A prefix that parses cannot extend past the line where the full text fails, so start there.
    longest = len(lines) - 1 if not error_line else min(len(lines) - 1, error_line)
    for end in range(longest, 0, -1):
        tree = parse("".join(lines[:end]))
        if tree is None:
            continue
        node = find_function(tree, func_name)
        if node is not None:
            return _cut(lines, node), True
    return None


def _is_placeholder(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        # a docstring (or any bare string) or `...`
        return isinstance(stmt.value.value, str) or stmt.value.value is Ellipsis
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


def is_trivial(func: FunctionNode) -> bool:
    """True if the body is only `pass`, `...`, docstrings and `raise NotImplementedError(...)`."""
    return all(_is_placeholder(stmt) for stmt in func.body)
