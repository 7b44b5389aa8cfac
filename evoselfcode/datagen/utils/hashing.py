"""Content hashes: of text, and of a function's AST so that the same function written differently collides."""

from __future__ import annotations

import ast
import hashlib

from evoselfcode.datagen.utils.ast_tools import parse


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# The field of each node type that holds a name the code binds (the names of defs and classes, parameters,
# `except ... as e`, match captures). A Name binds in a Store or Del context.
_BINDING_FIELD: dict[type, str] = {
    ast.FunctionDef: "name", ast.AsyncFunctionDef: "name", ast.ClassDef: "name", ast.arg: "arg",
    ast.ExceptHandler: "name", ast.MatchAs: "name", ast.MatchStar: "name", ast.MatchMapping: "rest",
}  # fmt: skip
# Node types whose body may open with a docstring, which is dropped.
_WITH_DOCSTRING = {ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef}
_PASS = [ast.Pass()]
# In the canonical text: MARK stands where a name goes (names are resolved at the end, once the code's
# bound names are known); SEP separates the parts. repr() never writes a raw control character.
_MARK, _SEP = "\x00", "\x01"


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if type(first) is ast.Expr and type(first.value) is ast.Constant and type(first.value.value) is str:
        return body[1:]
    return body


def _canonical_text(tree: ast.Module) -> str:
    """The tree written as text, each bound name replaced by v0, v1, ... in order of first appearance.

    A node is written as its class name, then each of its fields in order, then ")"; a list as "[", its
    items, "]"; a name as MARK (its text goes to `names`); any other value (constants, operators' own
    fields) as its repr. Every field writes exactly one item, so the text has one reading.
    """
    parts: list[str] = []
    names: list[str] = []  # the name behind each MARK, in order
    bound: dict[str, bool] = {}  # name -> bound by the code (True), or declared global/nonlocal (False)
    out = parts.append

    def walk(node: ast.AST) -> None:
        cls = type(node)
        out(cls.__name__)
        if cls is ast.Name:
            names.append(node.id)
            if type(node.ctx) is not ast.Load:
                bound.setdefault(node.id, True)
            out(_MARK)
        elif cls is ast.Global or cls is ast.Nonlocal:  # declared names are never renamed
            for identifier in node.names:
                names.append(identifier)
                bound[identifier] = False
                out(_MARK)
        else:
            binding = _BINDING_FIELD.get(cls)
            for field in node._fields:
                value = getattr(node, field, None)
                if isinstance(value, ast.AST):
                    walk(value)
                elif type(value) is list:
                    if field == "body" and cls in _WITH_DOCSTRING:
                        value = _without_docstring(value) or (_PASS if cls is not ast.Module else [])
                    out("[")
                    for item in value:
                        if isinstance(item, ast.AST):
                            walk(item)
                        else:
                            out(repr(item))
                    out("]")
                elif field == binding and value is not None:
                    names.append(value)
                    bound.setdefault(value, True)
                    out(_MARK)
                else:
                    out(repr(value))
        out(")")

    walk(tree)
    renamed: dict[str, str] = {}
    resolved = [renamed.setdefault(n, f"v{len(renamed)}") if bound.get(n) else repr(n) for n in names]
    return _SEP.join(parts) + _SEP + _MARK + _SEP.join(resolved)


def ast_fingerprint(code: str, tree: ast.Module | None = None) -> str:
    """sha256 of the code's AST with docstrings removed and every name the code binds renamed to v0, v1, ...

    Whitespace, comments, docstrings and the names the code binds (the function's own name, so its
    recursive calls too, parameters, locals, nested defs) do not change it; globals, builtins,
    attributes and keyword-argument names do. Code that does not parse, or nests deeper than the walk's
    stack allows, falls back to `text_fingerprint`, so it still dedups exactly.
    `tree`: the code's tree, if the caller parsed it already (it is only read).
    """
    tree = tree if tree is not None else parse(code)
    if tree is not None:
        try:
            return text_hash(_canonical_text(tree))
        except RecursionError:
            pass
    return text_fingerprint(code)


def text_fingerprint(code: str) -> str:
    """`ast_fingerprint` of code that does not parse: a hash of its text without trailing whitespace."""
    stripped = "\n".join(line.rstrip() for line in code.strip().splitlines())
    return text_hash("text:" + stripped)
