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


def _top_level_names(tree: ast.Module) -> set[str]:
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}


# Nodes whose `name` field binds a name: nested defs and classes, `except ... as e`, `case [*rest]`, `case x`.
_NAMED_BINDERS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler, ast.MatchAs, ast.MatchStar)


def _bound_names(tree: ast.Module) -> set[str]:
    """Names the code itself binds: parameters, assignment/loop/with/except/match targets, nested defs."""
    bound: set[str] = set()
    declared_global: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, _NAMED_BINDERS) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            declared_global.update(node.names)
    return bound - declared_global - _top_level_names(tree)


class _Normaliser(ast.NodeTransformer):
    """Renames bound names to v0, v1, ... in order of first appearance and drops docstrings."""

    def __init__(self, local_names: set[str]) -> None:
        self.local_names = local_names
        self.renamed: dict[str, str] = {}

    def _rename(self, name: str | None) -> str | None:
        if name is None or name not in self.local_names:
            return name
        return self.renamed.setdefault(name, f"v{len(self.renamed)}")

    def visit_Module(self, node: ast.Module) -> ast.Module:
        node.body = _drop_docstring(node.body)
        return self.generic_visit(node)

    def _visit_def(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> ast.AST:
        node.name = self._rename(node.name)
        node.body = _drop_docstring(node.body) or [ast.Pass()]
        return self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_def

    def visit_Name(self, node: ast.Name) -> ast.Name:
        node.id = self._rename(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.arg = self._rename(node.arg)
        return self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        node.name = self._rename(node.name)
        return self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> ast.AST:
        node.name = self._rename(node.name)
        return self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> ast.AST:
        node.name = self._rename(node.name)
        return node

    def visit_MatchMapping(self, node: ast.MatchMapping) -> ast.AST:
        node.rest = self._rename(node.rest)
        return self.generic_visit(node)

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> ast.AST:
        node.names = [self._rename(n) for n in node.names]
        return node

    visit_Nonlocal = visit_Global


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
    normalised = _Normaliser(_bound_names(tree)).visit(tree)
    return text_hash(ast.dump(normalised, include_attributes=False))
