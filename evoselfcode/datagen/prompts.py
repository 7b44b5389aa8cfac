"""Prompt texts for stage A (names, FIM vs L2R) and stage B (code), and the FIM token presets.

Where each mode puts the description, where its prompt ends, and how FIM tokens are laid out: docs/architecture.md,
"Decisions" 1 and 2. Templates can be replaced in config (`namegen.templates`, `{desc}` marks the description).
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from evoselfcode.config import CodeGen, NameGen, Tests
from evoselfcode.datagen.assertions import UNPARSABLE
from evoselfcode.datagen.schemas import CodeRecord

GLOBAL_PREFIX = "This is an algorithm function.\n\n"
DESC = "{desc}"
FUNC_NAME = "{func_name}"

L2R_TEMPLATE = GLOBAL_PREFIX + "# {desc}\ndef"
FIM_PREFIX_TEMPLATE = GLOBAL_PREFIX + "def "
FIM_SUFFIX_TEMPLATE = '():\n    """{desc}"""\n'
# For models with no FIM tokens: the docstring the real FIM prompt puts after the hole, moved before `def`.
EMULATED_TEMPLATE = GLOBAL_PREFIX + '"""{desc}"""\ndef'
CODE_TEMPLATE = GLOBAL_PREFIX + "# {desc}\ndef {func_name}("
# After the code prompt and the function, verbatim (the server's prefix cache reuses them): asserts, one a line.
TEST_TEMPLATE = (
    "\n\n\n# Check that {func_name} does what the task above asks, one assert per line:\nassert {func_name}("
)


@dataclass(frozen=True)
class FimFormat:
    """FIM tokens and order; no tokens means the model has none and the prompt is emulated."""

    prefix: str | None
    suffix: str | None
    middle: str | None
    order: Literal["psm", "spm"] = "psm"
    stop: tuple[str, ...] = field(default=())

    @property
    def emulated(self) -> bool:
        return self.prefix is None


DEEPSEEK_BEGIN = "<\uff5cfim\u2581begin\uff5c>"  # fullwidth vertical bars and U+2581, as in DeepSeek's tokenizer
DEEPSEEK_HOLE = "<\uff5cfim\u2581hole\uff5c>"
DEEPSEEK_END = "<\uff5cfim\u2581end\uff5c>"

FIM_PRESETS: dict[str, FimFormat] = {
    "qwen2.5-coder": FimFormat(
        prefix="<|fim_prefix|>",
        suffix="<|fim_suffix|>",
        middle="<|fim_middle|>",
        stop=(
            "<|endoftext|>",
            "<|fim_pad|>",
            "<|file_sep|>",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
            "<|repo_name|>",
            "<|im_end|>",
        ),
    ),
    "starcoder": FimFormat(
        prefix="<fim_prefix>",
        suffix="<fim_suffix>",
        middle="<fim_middle>",
        stop=("<|endoftext|>", "<file_sep>"),
    ),
    "deepseek-coder": FimFormat(
        prefix=DEEPSEEK_BEGIN,
        suffix=DEEPSEEK_HOLE,
        middle=DEEPSEEK_END,
        stop=("<\uff5cend\u2581of\u2581sentence\uff5c>", "<|EOT|>"),
    ),
    "emulated": FimFormat(prefix=None, suffix=None, middle=None),
}

# Control tokens of every preset: a description containing one would reach the model as that token.
SPECIAL_TOKENS: frozenset[str] = frozenset(
    tok for fmt in FIM_PRESETS.values() for tok in (fmt.prefix, fmt.suffix, fmt.middle, *fmt.stop) if tok
)


def fim_format(cfg: NameGen) -> FimFormat:
    """The preset named by `namegen.fim_preset`, with the fields set in `namegen.fim` replacing its own."""
    preset = FIM_PRESETS[cfg.fim_preset]
    over = cfg.fim
    if over is None:
        return preset
    return FimFormat(
        prefix=over.prefix if over.prefix is not None else preset.prefix,
        suffix=over.suffix if over.suffix is not None else preset.suffix,
        middle=over.middle if over.middle is not None else preset.middle,
        order=over.order or preset.order,
        stop=tuple(over.stop) if over.stop is not None else preset.stop,
    )


def _strip_tokens(desc: str, tokens: set[str] | frozenset[str]) -> str:
    for tok in sorted(tokens, key=len, reverse=True):
        desc = desc.replace(tok, "")
    return desc


def escape_comment(desc: str, lead: str = "# ") -> str:
    """`desc` as the rest of a comment line: every further line starts with `lead` again."""
    lines = desc.strip().splitlines() or [""]
    return "\n".join([lines[0], *((lead + line).rstrip() for line in lines[1:])])


def escape_docstring(desc: str, indent: str = "    ") -> str:
    """`desc` as the body of a `\"\"\"` docstring: it cannot end the string early, and reads back unchanged."""
    text = desc.strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if text.endswith('"'):  # a quote right before the closing `"""` would close it one character early
        text = text[:-1] + '\\"'
    lines = text.splitlines() or [""]
    return "\n".join([lines[0], *((indent + line).rstrip() for line in lines[1:])])


def render(template: str, desc: str, *, strip: set[str] | frozenset[str] = SPECIAL_TOKENS) -> str:
    """Fill `{desc}` in `template`, escaped for the comment or docstring that holds it.

    After `#` on its line the description is a comment, and every further line of it gets the same lead; otherwise
    it is a docstring, with backslashes and quotes escaped so it cannot close early, and further lines indented
    like the `{desc}` line.
    """
    desc = _strip_tokens(desc, strip)
    parts = template.split(DESC)
    out = [parts[0]]
    for part in parts[1:]:
        lead = out[-1].rsplit("\n", 1)[-1]
        if lead.lstrip().startswith("#"):
            out.append(escape_comment(desc, lead))
        else:
            out.append(escape_docstring(desc, lead[: len(lead) - len(lead.lstrip())]))
        out.append(part)
    return "".join(out)


def name_prompt(mode: Literal["FIM", "L2R"], desc: str, cfg: NameGen) -> str:
    """The stage-A prompt after which the model writes a function name."""
    templates = cfg.templates
    if mode == "L2R":
        return render(templates.get("l2r", L2R_TEMPLATE), desc)
    fmt = fim_format(cfg)
    strip = SPECIAL_TOKENS | {t for t in (fmt.prefix, fmt.suffix, fmt.middle) if t}
    if fmt.emulated:
        return render(templates.get("emulated", EMULATED_TEMPLATE), desc, strip=strip)
    prefix = render(templates.get("fim_prefix", FIM_PREFIX_TEMPLATE), desc, strip=strip)
    suffix = render(templates.get("fim_suffix", FIM_SUFFIX_TEMPLATE), desc, strip=strip)
    if fmt.order == "spm":
        return f"{fmt.suffix}{suffix}{fmt.prefix}{prefix}{fmt.middle}"
    return f"{fmt.prefix}{prefix}{fmt.suffix}{suffix}{fmt.middle}"


def name_stop(mode: Literal["FIM", "L2R"], cfg: NameGen) -> list[str]:
    """`namegen.stop`, plus the FIM format's own stop tokens in FIM mode; no repeats, order kept."""
    stop = list(cfg.stop)
    if mode == "FIM":
        stop += fim_format(cfg).stop
    return list(dict.fromkeys(stop))


def code_head(func_name: str) -> str:
    """The end of every code prompt: the function is this plus the model's continuation."""
    return f"def {func_name}("


def code_prompt(desc: str, func_name: str, cfg: CodeGen) -> str:
    """The stage-B prompt: global prefix, the description as `# ` lines, then `def {func_name}(`."""
    template = cfg.template or CODE_TEMPLATE
    # the name goes in first, so a description that mentions `{func_name}` stays as written
    return render(template.replace(FUNC_NAME, func_name), desc)


def _arguments(signature: str) -> ast.arguments | None:
    try:
        node = ast.parse(signature + "\n    pass").body[0]
    except UNPARSABLE:
        return None
    return node.args if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else None


def parameters(signature: str) -> list[str]:
    """The names of the parameters a call can fill by position in a `def` line, in order; none when it does not
    parse (`def f(...):`)."""
    args = _arguments(signature)
    return [a.arg for a in (*args.posonlyargs, *args.args)] if args else []


def head_of_tests(func_name: str, signature: str) -> str:
    """The end of every test prompt: `assert {func_name}(` and the first parameter by keyword when it can be
    passed so; the tests are this plus the model's continuation."""
    args = _arguments(signature)
    # a small model passes a list as one value after `f(numbers=`, its items one by one after `f(`
    first = f"{args.args[0].arg}=" if args and args.args and not args.posonlyargs else ""
    return f"assert {func_name}({first}"


def _def_line(code: str, func_name: str) -> str | None:
    """The `def` line of `func_name` in `code` as the parser reads it: decorators and body left out."""
    try:
        tree = ast.parse(code)
    except UNPARSABLE:
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == func_name:
            node.decorator_list, node.body = [], [ast.Pass()]  # the tree is ours: parsed above
            return ast.unparse(node).rsplit("\n", 1)[0]
    return None


def signature_for(candidates: Sequence[CodeRecord]) -> tuple[str, str]:
    """The name a description's tests call and the `def` line their prompt shows, chosen from its candidates.

    The most common name (a tie: the first in the candidates' order) and its first candidate's `def` line;
    `def name(...):` when that candidate's code holds none the parser can read.
    """
    counts = Counter(c.func_name for c in candidates)
    name = max(counts, key=lambda n: counts[n])  # max keeps the first of equals, in the candidates' order
    first = next(c for c in candidates if c.func_name == name)
    return name, _def_line(first.code, name) or f"def {name}(...):"


def prompt_for_desc_tests(desc: str, func_name: str, signature: str, codegen: CodeGen, tests: Tests) -> str:
    """The code prompt up to its `def`, then the signature with the description as docstring and `...` for a
    body, then the test template, which ends with `head_of_tests`: tests written from the task, not from any
    candidate's code."""
    prompt, head = code_prompt(desc, func_name, codegen), code_head(func_name)
    start = prompt[: -len(head)] if prompt.endswith(head) else prompt
    docstring = escape_docstring(_strip_tokens(desc, SPECIAL_TOKENS))
    template = (tests.template or TEST_TEMPLATE).replace(FUNC_NAME, func_name)
    template = template.removesuffix(f"assert {func_name}(") + head_of_tests(func_name, signature)
    return f'{start}{signature}\n    """{docstring}"""\n    ...{template}'
