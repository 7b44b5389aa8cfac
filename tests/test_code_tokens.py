"""The two token streams of `utils.code_tokens`, pinned: near dedup's shingles and the benchmark index are
built from them, so a change to either tokenizer would change which functions are dropped."""

from evoselfcode.datagen.utils.code_tokens import decontam_split, dedup_tokens

# Strings of every kind, comments, a docstring, f-strings, unicode names, numbers, multi-character operators.
SOURCE = r'''def größe(δ: int = 0x1F, *rest) -> float:  # ünïcode names
    """Docstring with 'quotes', # no comment, and f"{x}"."""
    s = f"{δ!r:>{w}}" + rb'\x00' + u"z" + """multi
line""" + 'a # b'
    return (δ ** 2 // 3) if δ else 1.5e-3j, .5, 1_000, lambda q: q, d[1:2, ::3]  # walrus next
    (n := len(rest)); s->t; x **= 2
'''
BROKEN = 'def f(a:\n    """open docstring\n    return [a,  # oops\n'


def test_dedup_tokens_are_the_tokens_as_written():
    assert dedup_tokens(SOURCE) == [
        "def", "größe", "(", "δ", ":", "int", "=", "0x1F", ",", "*", "rest", ")", "->", "float", ":",
        '"""Docstring with \'quotes\', # no comment, and f"{x}"."""',
        "s", "=", 'f"{δ!r:>{w}}"', "+", "rb'\\x00'", "+", 'u"z"', "+", '"""multi\nline"""', "+", "'a # b'",
        "return", "(", "δ", "**", "2", "//", "3", ")", "if", "δ", "else", "1.5e-3j", ",", ".5", ",", "1_000", ",",
        "lambda", "q", ":", "q", ",", "d", "[", "1", ":", "2", ",", ":", ":", "3", "]",
        "(", "n", ":=", "len", "(", "rest", ")", ")", ";", "s", "->", "t", ";", "x", "**=", "2",
    ]  # fmt: skip
    assert dedup_tokens(BROKEN) == ["def", "f", "(", "a", ":", '"""open docstring\n    return [a,  # oops\n']


def test_decontam_split_gives_the_tokens_that_survive_reformatting_and_the_prose_apart():
    tokens, prose = decontam_split(SOURCE)
    assert tokens == [
        "def", "ID", "ID", ":", "int", "=", "31", "*", "ID", "-", ">", "float", ":",
        "ID", "=", "'{δ!r:>{w}}'", "+", "\"b'\\\\\\\\x00'\"", "+", "'z'", "+", "'multi\\nline'", "+", "'a # b'",
        "return", "ID", "*", "*", "2", "/", "/", "3", "if", "ID", "else", "1.5e", "-", "3j", ".", "5", "1000",
        "lambda", "ID", ":", "ID", "ID", "[", "1", ":", "2", ":", ":", "3", "]",
        "ID", ":", "=", "len", "ID", "ID", "-", ">", "ID", "ID", "*", "*", "=", "2",
    ]  # fmt: skip
    assert prose == " ünïcode names\nDocstring with 'quotes', # no comment, and f\"{x}\".\n walrus next"
    assert decontam_split(BROKEN) == (["def", "ID", "ID", ":", "''", '"', "open", "ID", "return", "[", "ID"], " oops")
