"""Synthetic, varied "generated" functions with the faults a code model makes, reproducible from a seed.

Mix (roughly): 80% distinct working functions of 5-40 lines built from random statement templates,
5% exact copies, 5% near copies (a renamed variable, a changed constant), 3% syntax errors, 3% undefined
names (ruff F821), 2% trivial bodies, 2% truncated at the token limit.
"""

from __future__ import annotations

import random

from evoselfcode.datagen.schemas import CodeSample

VERBS = [
    "parse",
    "count",
    "merge",
    "flatten",
    "find",
    "group",
    "split",
    "normalize",
    "validate",
    "compute",
    "load",
    "build",
    "filter",
    "sort",
    "rank",
]
NOUNS = [
    "words",
    "lines",
    "items",
    "records",
    "matrix",
    "graph",
    "tokens",
    "prices",
    "events",
    "users",
    "paths",
    "scores",
    "pairs",
    "intervals",
]
ARGS = ["items", "values", "data", "text", "rows", "nums", "mapping", "path", "limit", "key", "window", "graph"]


def _expr(rng: random.Random, names: list[str]) -> str:
    a, b = rng.choice(names), rng.choice(names)
    return rng.choice(
        [
            f"{a} + {rng.randint(1, 99)}",
            f"len({a})",
            f"{a} * {b}",
            f"sorted({a})",
            f"[x for x in {a} if x]",
            f"{{k: v for k, v in enumerate({a})}}",
            f"sum({a}) / max(len({a}), 1)",
            f"{a}.get({rng.randint(0, 9)}, {b})" if rng.random() < 0.5 else f"str({a}).strip()",
            f"min({a}, {b})",
            f"abs({a} - {b})",
        ]
    )


def _block(rng: random.Random, names: list[str], depth: int, budget: list[int]) -> list[str]:
    pad = "    " * depth
    out: list[str] = []
    for _ in range(rng.randint(1, 4)):
        if budget[0] <= 0:
            break
        budget[0] -= 1
        kind = rng.random()
        if kind < 0.35 or depth > 3:
            var = rng.choice(["result", "total", "count", "acc", "best", "seen", "out", f"tmp{rng.randint(0, 9)}"])
            out.append(f"{pad}{var} = {_expr(rng, names)}")
            if var not in names:
                names.append(var)
        elif kind < 0.55:
            var = rng.choice(["x", "item", "row", "value", "node", "i"])
            out.append(f"{pad}for {var} in {rng.choice(names)}:")
            out.extend(_block(rng, [*names, var], depth + 1, budget) or [f"{pad}    continue"])
        elif kind < 0.75:
            out.append(f"{pad}if {rng.choice(names)} {rng.choice(['>', '<', '==', '!=', 'in'])} {rng.choice(names)}:")
            out.extend(_block(rng, names, depth + 1, budget) or [f"{pad}    pass"])
            if rng.random() < 0.4:
                out.append(f"{pad}else:")
                out.extend(_block(rng, names, depth + 1, budget) or [f"{pad}    pass"])
        elif kind < 0.85:
            out.append(f"{pad}try:")
            out.extend(_block(rng, names, depth + 1, budget) or [f"{pad}    pass"])
            out.append(f"{pad}except {rng.choice(['ValueError', 'KeyError', 'TypeError'])}:")
            out.append(f"{pad}    {rng.choice(['return None', 'pass', 'raise'])}")
        elif kind < 0.93 and out:
            out.append(f"{pad}# {rng.choice(['keep the order', 'handle the empty case', 'avoid quadratic time'])}")
        else:
            out.append(f"{pad}while {rng.choice(names)} and {rng.choice(names)}:")
            out.append(f"{pad}    break")
    return out


def function(rng: random.Random, name: str) -> str:
    args = rng.sample(ARGS, rng.randint(1, 3))
    names = list(args)
    lines = [f"def {name}({', '.join(args)}):"]
    if rng.random() < 0.7:
        lines.append(f'    """{rng.choice(VERBS).capitalize()} the {rng.choice(NOUNS)} of the {args[0]}."""')
    lines.extend(_block(rng, names, 1, [rng.randint(4, 30)]))
    lines.append(f"    return {rng.choice(names)}")
    return "\n".join(lines) + "\n"


def near_copy(rng: random.Random, code: str) -> str:
    """One more statement before the final return: a different AST, most token n-grams shared."""
    head, _, ret = code.rpartition("\n    return ")
    return f"{head}\n    checked = {rng.randint(0, 9)}\n    return {ret}"


def samples(count: int, seed: int = 0) -> list[CodeSample]:
    rng = random.Random(seed)
    out: list[CodeSample] = []
    for i in range(count):
        name = f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}_{i % 997}"
        code, finish = function(rng, name), "stop"
        roll = rng.random()
        if roll < 0.05 and out:
            prev = rng.choice(out)
            name, code = prev.func_name, prev.code
        elif roll < 0.10 and out:
            prev = rng.choice(out)
            name, code = prev.func_name, near_copy(rng, prev.code)
        elif roll < 0.13:
            code = code.replace(":", "", 1)
        elif roll < 0.16:
            code = code.replace("    return ", "    return undefined_helper + ", 1)
        elif roll < 0.18:
            code = f"def {name}(x):\n    pass\n"
        elif roll < 0.20:
            code, finish = code[: len(code) // 2], "length"
        desc = f"{name.replace('_', ' ')}: a task description number {i}"
        out.append(
            CodeSample(
                desc_id=f"d{i}",
                desc=desc,
                func_name=name,
                source=rng.choice(["FIM", "L2R"]),
                sample_index=0,
                seed=i,
                completion=code,
                code=code,
                finish_reason=finish,
            )  # fmt: skip
        )
    return out
