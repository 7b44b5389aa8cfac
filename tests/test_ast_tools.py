import ast
import time

import pytest

from evoselfcode.datagen.utils.ast_tools import extract_function, find_function, is_trivial, parse
from evoselfcode.datagen.utils.hashing import ast_fingerprint, text_hash

ADD = 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n'


def test_clean_function_is_returned_untouched():
    assert extract_function(ADD, "add") == (ADD, False)


def test_trailing_whitespace_is_not_a_trim():
    assert extract_function(ADD + "\n\n   \n", "add") == (ADD, False)


@pytest.mark.parametrize(
    "junk",
    [
        "\nprint(add(1, 2))\nadd(3, 4)\n",
        "\n\ndef sub(a, b):\n    return a - b\n",
        '\nif __name__ == "__main__":\n    import doctest\n    doctest.testmod()\n',
        "\nresult = add(1,",  # the model stopped mid-call: the full text does not parse
        "\nclass Helper:\n    pass\n# trailing comment\n",
        "\n# Example usage:\n",
    ],
)
def test_trailing_junk_is_cut_off(junk):
    assert extract_function(ADD + junk, "add") == (ADD, True)


def test_broken_last_line_inside_the_function_is_dropped():
    source = "def scale(x, k):\n    y = x * k\n    return y +"
    assert extract_function(source, "scale") == ("def scale(x, k):\n    y = x * k\n", True)


def test_unclosed_bracket_falls_back_to_the_last_parseable_prefix():
    source = "def first(xs):\n    return xs[0]\n\nvalues = [1, 2,\n    3, 4\n"
    assert extract_function(source, "first") == ("def first(xs):\n    return xs[0]\n", True)


def test_decorators_and_docstring_are_kept():
    source = "@functools.lru_cache(maxsize=None)\n@other\ndef fib(n):\n    '''Fibonacci.'''\n    return n\n\nfib(3)\n"
    code, trimmed = extract_function(source, "fib")
    assert code == "@functools.lru_cache(maxsize=None)\n@other\ndef fib(n):\n    '''Fibonacci.'''\n    return n\n"
    assert trimmed


def test_a_later_decorated_function_does_not_leak_in():
    source = ADD + "\n@decorator\ndef other():\n    pass\n"
    assert extract_function(source, "add") == (ADD, True)


def test_nested_function_with_the_same_name_stays_inside():
    source = "def walk(tree):\n    def walk(node):\n        return [node]\n    return walk(tree)\n\nwalk(1)\n"
    code, trimmed = extract_function(source, "walk")
    assert code == "def walk(tree):\n    def walk(node):\n        return [node]\n    return walk(tree)\n"
    assert trimmed


def test_nested_function_alone_does_not_count_as_the_function():
    source = "def outer():\n    def wanted():\n        return 1\n    return wanted\n"
    assert extract_function(source, "wanted") is None


def test_first_of_two_top_level_definitions_wins():
    source = "def f(x):\n    return x\n\ndef f(x):\n    return -x\n"
    assert extract_function(source, "f") == ("def f(x):\n    return x\n", True)


def test_async_function():
    source = "async def fetch(url):\n    return await get(url)\n\nasyncio.run(fetch('x'))\n"
    assert extract_function(source, "fetch") == ("async def fetch(url):\n    return await get(url)\n", True)


@pytest.mark.parametrize(
    "source",
    [
        "def other(x):\n    return x\n",
        "def add(a, b):\n    return a +",  # the only body line is broken
        "",
        "def add(a, b):\n\x00    return a\n",
        "(" * 10_000,
    ],
)
def test_no_parseable_function_of_that_name_is_none(source):
    assert extract_function(source, "add") is None


def test_line_numbers_agree_with_the_parser_on_unusual_line_breaks():
    source = 'def f():\r\n    return "a\u2028b\x0cc"\r\n\r\nprint(f())\r\n'
    code, trimmed = extract_function(source, "f")
    assert code == 'def f():\r\n    return "a\u2028b\x0cc"\n'
    assert trimmed
    assert parse(code) is not None


def test_long_broken_continuation_is_cut_quickly():
    source = "def f(x):\n    return x\n\ny = (\n" + "    x +\n" * 5000
    start = time.perf_counter()
    assert extract_function(source, "f") == ("def f(x):\n    return x\n", True)
    assert time.perf_counter() - start < 2


def _func(source: str) -> ast.FunctionDef:
    return find_function(ast.parse(source), "f")


@pytest.mark.parametrize(
    "body",
    [
        "pass",
        "...",
        '"""Only a docstring."""',
        "raise NotImplementedError",
        "raise NotImplementedError('later')",
        '"""Doc."""\n    pass\n    ...',
        '"""Doc."""\n    raise NotImplementedError()',
    ],
)
def test_placeholder_bodies_are_trivial(body):
    assert is_trivial(_func(f"def f(x):\n    {body}\n"))


@pytest.mark.parametrize(
    "body",
    ["return x", "raise ValueError(x)", '"""Doc."""\n    return None', "x += 1", "pass\n    return x", "raise"],
)
def test_real_bodies_are_not_trivial(body):
    assert not is_trivial(_func(f"def f(x):\n    {body}\n"))


ORIGINAL = '''def mean(values, default=0.0):
    """Arithmetic mean."""
    total = 0
    for value in values:  # accumulate
        total += value
    return total / len(values) if values else default
'''


@pytest.mark.parametrize(
    "variant",
    [
        ORIGINAL.replace("    ", "\t"),
        ORIGINAL.replace("  # accumulate", "").replace('    """Arithmetic mean."""\n', ""),
        ORIGINAL.replace("total", "acc").replace("value", "item").replace("default", "fallback"),
        ORIGINAL.replace("total", "s").replace("values", "xs").replace("value", "x") + "\n\n",
        ORIGINAL.replace("def mean", "def average"),  # the function's own name
    ],
)
def test_cosmetic_variants_share_a_fingerprint(variant):
    assert ast_fingerprint(variant) == ast_fingerprint(ORIGINAL)


@pytest.mark.parametrize(
    "variant",
    [
        ORIGINAL.replace("len(values)", "sum(values)"),  # a builtin
        ORIGINAL.replace("total += value", "total -= value"),
        ORIGINAL.replace("default=0.0", "default=1.0"),
        ORIGINAL.replace("total += value", "total += value.real"),  # an attribute
        ORIGINAL.replace("for value in values", "for value in VALUES"),  # a global
    ],
)
def test_real_changes_change_the_fingerprint(variant):
    assert ast_fingerprint(variant) != ast_fingerprint(ORIGINAL)


FACTORIAL = "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\n"


def test_own_name_and_recursive_calls_are_renamed_like_locals():
    renamed = "def factorial(k):\n    return 1 if k < 2 else k * factorial(k - 1)\n"
    assert ast_fingerprint(renamed) == ast_fingerprint(FACTORIAL)
    # calling another function is not recursion: a different function
    assert ast_fingerprint(FACTORIAL.replace("* fact(", "* gamma(")) != ast_fingerprint(FACTORIAL)
    # a helper beside it is renamed as consistently
    helper = "def helper(x):\n    return x + 1\n\n\ndef main(y):\n    return helper(y) * 2\n"
    other = helper.replace("helper", "inc").replace("main", "twice")
    assert ast_fingerprint(other) == ast_fingerprint(helper)
    assert ast_fingerprint(helper.replace("helper(y)", "main(y)")) != ast_fingerprint(helper)


def test_renaming_follows_order_of_first_appearance():
    # Swapping which parameter is used where is a different function, even though the names are the same set.
    assert ast_fingerprint("def f(a, b):\n    return a - b\n") != ast_fingerprint("def f(a, b):\n    return b - a\n")
    assert ast_fingerprint("def f(a, b):\n    return a - b\n") == ast_fingerprint("def f(b, a):\n    return b - a\n")


def test_keyword_argument_names_are_kept():
    assert ast_fingerprint("def f(x):\n    return g(key=x)\n") != ast_fingerprint("def f(x):\n    return g(k=x)\n")


def test_unparseable_code_still_gets_a_stable_fingerprint():
    assert ast_fingerprint("def f(:\n  pass  \n") == ast_fingerprint("def f(:\n  pass\n")
    assert ast_fingerprint("def f(:\n  pass\n") != ast_fingerprint("def g(:\n  pass\n")


def test_text_hash_is_sha256_hex():
    assert text_hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


BINDINGS = """async def f(p, *args, key=None, **kw):
    global counter
    counter = p
    try:
        async with open(p) as handle:
            data = [row async for row in handle if row]
    except OSError as error:
        raise ValueError(p) from error
    match data:
        case [first, *rest] if first:
            return lambda q: (first, rest, q, key, args, kw)
        case {"k": value, **others}:
            return value, others
        case Point(x=px) | Point(y=px):
            return px
    return counter
"""


RENAMES = [
    ("p,", "a,"), ("(p)", "(a)"), ("= p", "= a"), ("args", "many"), ("kw", "named"), ("handle", "h"), ("row", "r"),
    ("error", "exc"), ("first", "head"), ("rest", "tail"), ("q", "z"), ("value", "v"), ("others", "more"), ("px", "c"),
]  # fmt: skip


def test_every_kind_of_binding_is_renamed():
    renamed = BINDINGS
    for old, new in RENAMES:
        renamed = renamed.replace(old, new)
    assert ast_fingerprint(renamed) == ast_fingerprint(BINDINGS)


@pytest.mark.parametrize(
    ("old", "new"),
    [("counter", "total"), ("Point", "Pair"), ("x=px", "z=px"), ('"k"', '"j"'), ("OSError", "IOError")],
)
def test_globals_attributes_and_pattern_keys_are_kept(old, new):
    assert ast_fingerprint(BINDINGS.replace(old, new)) != ast_fingerprint(BINDINGS)
