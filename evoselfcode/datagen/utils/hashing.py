"""Content hashes: of text, and of a function's AST so that cosmetic variants of one function collide."""

from __future__ import annotations

import ast
import hashlib

from evoselfcode.datagen.utils.ast_tools import parse


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _drop_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return body[1:]
    return body


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# The field of each node type that holds a name the code may bind: renamed when the code binds it.
_NAME_FIELD: dict[type, str] = {
    ast.FunctionDef: "name", ast.AsyncFunctionDef: "name", ast.ClassDef: "name", ast.Name: "id", ast.arg: "arg",
    ast.ExceptHandler: "name", ast.MatchAs: "name", ast.MatchStar: "name", ast.MatchMapping: "rest",
}  # fmt: skip
# Node types whose name field binds (parameters, nested defs and classes, `except ... as e`, match captures);
# a Name binds only in a Store or Del context.
_BINDERS = frozenset(_NAME_FIELD) - {ast.Name}
_STORE = (ast.Store, ast.Del)


class _Name(str):
    """A name in the canonical text, written once the code's own (bound) names are known."""


def _canonical(tree: ast.Module) -> str:
    """The tree as text without docstrings, its bound names renamed v0, v1, ... in order of first appearance.

    One walk both writes the text and collects the bound names (one walk for each, plus ast.dump, was
    2.5x slower); names are resolved afterwards. Globals, builtins, attributes, keyword-argument names and
    the top-level definitions' own names stay as they are.
    """
    out: list[str] = []
    bound: set[str] = set()
    declared_global: set[str] = set()
    append = out.append

    def visit(node: ast.AST) -> None:
        cls = type(node)
        append(cls.__name__)
        append("(")
        name_field = _NAME_FIELD.get(cls)
        for field in cls._fields:
            value = getattr(node, field, None)
            if field == name_field:
                if value is not None:
                    if cls in _BINDERS or isinstance(node.ctx, _STORE):
                        bound.add(value)
                    value = _Name(value)
                append(value if value is not None else "None")
            elif cls is ast.Global or cls is ast.Nonlocal:
                declared_global.update(value)
                append("[")
                for name in value:
                    append(_Name(name))
                    append(",")
                append("]")
            else:
                if field == "body" and (cls in _DEFS or cls is ast.Module):
                    value = _drop_docstring(value) or ([ast.Pass()] if cls in _DEFS else [])
                if isinstance(value, ast.AST):
                    visit(value)
                elif isinstance(value, list):
                    append("[")
                    for item in value:
                        if isinstance(item, ast.AST):
                            visit(item)
                        else:
                            append(repr(item))
                        append(",")
                    append("]")
                else:
                    append(repr(value))
            append(",")
        append(")")

    visit(tree)
    local = bound - declared_global - {n.name for n in tree.body if isinstance(n, _DEFS)}
    renamed: dict[str, str] = {}
    parts = []
    for piece in out:
        if type(piece) is _Name:
            piece = renamed.setdefault(piece, f"v{len(renamed)}") if piece in local else repr(str(piece))
        parts.append(piece)
    return "".join(parts)


def ast_fingerprint(code: str) -> str:
    """sha256 of the code's AST with docstrings removed and its own bound names renamed to v0, v1, ...

    Whitespace, comments, docstrings and renamed locals/parameters do not change it; globals, builtins,
    attributes, keyword-argument names and the top-level function's own name do. Code that does not
    parse falls back to a hash of its text without trailing whitespace, so it still dedups exactly.
    """
    tree = parse(code)
    if tree is None:
        stripped = "\n".join(line.rstrip() for line in code.strip().splitlines())
        return text_hash("text:" + stripped)
    return text_hash(_canonical(tree))
