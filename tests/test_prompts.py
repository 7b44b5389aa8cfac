import ast
import inspect

import pytest

from evoselfcode.config import CodeGen, ConfigError, NameGen, validate_config
from evoselfcode.datagen.name_filters import normalise_name
from evoselfcode.datagen.prompts import (
    EMULATED_TEMPLATE,
    FIM_PRESETS,
    GLOBAL_PREFIX,
    code_head,
    code_prompt,
    escape_docstring,
    fim_format,
    name_prompt,
    name_stop,
)

DESC = "Sort a list of integers in place."
QWEN_STOP = [
    "<|endoftext|>",
    "<|fim_pad|>",
    "<|file_sep|>",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    "<|repo_name|>",
    "<|im_end|>",
]
TRICKY = [
    'Say "hello"',
    'Ends with a quote"',
    'Ends with two quotes""',
    'Contains """ a triple quote',
    'Four """" quotes',
    "Backslash \\ inside and at the end \\",
    "Escapes like \\n and \\t stay literal",
    "Line one\nline two\r\nline three\n\nafter a blank line",
    "Tabs\tand 'single' quotes and '''triple single'''",
    "Braces {desc} and {func_name} and {0}",
    "",
]


def test_global_prefix():
    assert GLOBAL_PREFIX == "This is an algorithm function.\n\n"


def test_l2r_default():
    assert name_prompt("L2R", DESC, NameGen()) == (
        "This is an algorithm function.\n\n# Sort a list of integers in place.\ndef"
    )


def test_fim_qwen_psm_default():
    assert name_prompt("FIM", DESC, NameGen()) == (
        "<|fim_prefix|>This is an algorithm function.\n\ndef "
        '<|fim_suffix|>():\n    """Sort a list of integers in place."""\n'
        "<|fim_middle|>"
    )


def test_fim_qwen_spm():
    cfg = NameGen(fim={"order": "spm"})
    assert name_prompt("FIM", DESC, cfg) == (
        '<|fim_suffix|>():\n    """Sort a list of integers in place."""\n'
        "<|fim_prefix|>This is an algorithm function.\n\ndef "
        "<|fim_middle|>"
    )


def test_fim_starcoder():
    assert name_prompt("FIM", DESC, NameGen(fim_preset="starcoder")) == (
        "<fim_prefix>This is an algorithm function.\n\ndef "
        '<fim_suffix>():\n    """Sort a list of integers in place."""\n'
        "<fim_middle>"
    )


def test_fim_deepseek_exact_characters():
    prompt = name_prompt("FIM", DESC, NameGen(fim_preset="deepseek-coder"))
    begin = "<" + chr(0xFF5C) + "fim" + chr(0x2581) + "begin" + chr(0xFF5C) + ">"
    hole = "<" + chr(0xFF5C) + "fim" + chr(0x2581) + "hole" + chr(0xFF5C) + ">"
    end = "<" + chr(0xFF5C) + "fim" + chr(0x2581) + "end" + chr(0xFF5C) + ">"
    assert begin == "<｜fim▁begin｜>"
    assert prompt == (
        f'{begin}This is an algorithm function.\n\ndef {hole}():\n    """Sort a list of integers in place."""\n{end}'
    )


def test_fim_emulated_default():
    assert name_prompt("FIM", DESC, NameGen(fim_preset="emulated")) == (
        'This is an algorithm function.\n\n"""Sort a list of integers in place."""\ndef'
    )
    assert name_prompt("FIM", "a\nb", NameGen(fim_preset="emulated")) == (
        'This is an algorithm function.\n\n"""a\nb"""\ndef'
    )


def test_fim_emulated_is_valid_python_up_to_def():
    prompt = name_prompt("FIM", 'Tricky """ desc \\', NameGen(fim_preset="emulated"))
    tree = ast.parse(prompt.removeprefix(GLOBAL_PREFIX) + " f(): pass\n")
    assert ast.literal_eval(tree.body[0].value) == 'Tricky """ desc \\'


def test_every_name_prompt_ends_where_the_name_starts():
    for preset in FIM_PRESETS:
        cfg = NameGen(fim_preset=preset)
        fim = name_prompt("FIM", DESC, cfg)
        fmt = fim_format(cfg)
        assert fim.endswith(fmt.middle if fmt.middle else "\ndef")
        assert name_prompt("L2R", DESC, cfg).endswith("\ndef")


@pytest.mark.parametrize("preset", list(FIM_PRESETS))
def test_each_arm_ends_where_its_model_continues_and_no_stop_cuts_a_leading_space(preset):
    # BPE (Qwen's) writes " name" as one token after L2R's `def`; FIM learned holes cut at characters
    cfg = NameGen(fim_preset=preset)
    fmt = fim_format(cfg)
    fim = name_prompt("FIM", DESC, cfg)
    if fmt.emulated:
        assert fim.endswith('"""\ndef')  # a plain left-to-right prompt, like L2R
    else:
        assert fim.split(fmt.suffix if fmt.order == "psm" else fmt.middle)[0].endswith("\n\ndef ")
    assert name_prompt("L2R", DESC, cfg).endswith("\ndef")
    for mode in ("FIM", "L2R"):
        assert not [s for s in name_stop(mode, cfg) if s[:1] in (" ", "\t")], mode
    assert normalise_name(" sort_list") == normalise_name("sort_list") == "sort_list"


def test_custom_tokens_override_the_preset():
    cfg = NameGen(fim={"prefix": "<PRE>", "suffix": "<SUF>", "middle": "<MID>", "stop": ["<EOT>"]})
    assert name_prompt("FIM", "x y", cfg) == (
        '<PRE>This is an algorithm function.\n\ndef <SUF>():\n    """x y"""\n<MID>'
    )
    assert name_stop("FIM", cfg) == ["(", "\n", "<EOT>"]


def test_custom_tokens_turn_emulated_into_real_fim():
    cfg = NameGen(fim_preset="emulated", fim={"prefix": "<P>", "suffix": "<S>", "middle": "<M>"})
    assert name_prompt("FIM", "d", cfg).startswith("<P>This is")


def test_fim_tokens_must_be_set_together():
    with pytest.raises(ConfigError, match="together"):
        validate_config({"namegen": {"fim": {"prefix": "<P>"}}})


def test_templates_override_and_allow_unconditioned_prompts():
    cfg = NameGen(
        templates={
            "l2r": GLOBAL_PREFIX + "def ",
            "fim_prefix": "P {desc} ",
            "fim_suffix": "# {desc}\n",
            "emulated": "E: {desc}\ndef ",
        }
    )
    assert name_prompt("L2R", "ignored", cfg) == "This is an algorithm function.\n\ndef "
    assert name_prompt("FIM", "a\nb", cfg) == "<|fim_prefix|>P a\nb <|fim_suffix|># a\n# b\n<|fim_middle|>"
    emulated = cfg.model_copy(update={"fim_preset": "emulated"})
    assert name_prompt("FIM", "a", emulated) == "E: a\ndef "


def test_name_stop():
    assert name_stop("L2R", NameGen()) == ["(", "\n"]
    assert name_stop("FIM", NameGen()) == ["(", "\n", *QWEN_STOP]
    assert name_stop("FIM", NameGen(fim_preset="starcoder")) == ["(", "\n", "<|endoftext|>", "<file_sep>"]
    assert name_stop("FIM", NameGen(fim_preset="emulated")) == ["(", "\n"]
    assert name_stop("FIM", NameGen(stop=["\n", "<|endoftext|>"])) == ["\n", *QWEN_STOP]


def test_l2r_multiline_description_stays_in_comments():
    prompt = name_prompt("L2R", "First line.\nsecond line\r\n\nthird: print('x')\n", NameGen())
    assert prompt == ("This is an algorithm function.\n\n# First line.\n# second line\n#\n# third: print('x')\ndef")


@pytest.mark.parametrize("desc", TRICKY)
def test_l2r_description_cannot_leave_the_comment(desc):
    prompt = name_prompt("L2R", desc, NameGen())
    body = prompt.removeprefix(GLOBAL_PREFIX).removesuffix("def")
    assert all(line.startswith("#") for line in body.splitlines())
    assert ast.parse(body + "def f(): pass\n").body[0].name == "f"


@pytest.mark.parametrize("desc", TRICKY)
def test_fim_description_reads_back_as_the_docstring(desc):
    prompt = name_prompt("FIM", desc, NameGen())
    prefix, _, rest = prompt.partition("<|fim_suffix|>")
    suffix = rest.removesuffix("<|fim_middle|>")
    source = prefix.removeprefix("<|fim_prefix|>" + GLOBAL_PREFIX) + "f" + suffix + "    pass\n"
    func = ast.parse(source).body[0]
    expected = inspect.cleandoc("\n".join(desc.strip().splitlines()))
    assert ast.get_docstring(func) == expected


def test_docstring_escapes_exactly():
    assert escape_docstring('a """ b') == 'a \\"\\"\\" b'
    assert escape_docstring('quote"') == 'quote\\"'
    assert escape_docstring("back\\slash\\") == "back\\\\slash\\\\"
    assert escape_docstring("one\ntwo", indent="  ") == "one\n  two"


def test_special_tokens_are_removed_from_descriptions():
    cfg = NameGen()
    prompt = name_prompt("FIM", "a <|fim_middle|> b <|endoftext|>", cfg)
    assert prompt.count("<|fim_middle|>") == 1
    assert "<|endoftext|>" not in prompt
    assert "<|fim_prefix|>" not in name_prompt("L2R", "x <|fim_prefix|>", cfg)


def test_emulated_template_has_one_placeholder():
    assert EMULATED_TEMPLATE.count("{desc}") == 1
    assert EMULATED_TEMPLATE.endswith('"""\ndef')


def test_code_prompt_default():
    assert code_prompt(DESC, "sort_in_place", CodeGen()) == (
        "This is an algorithm function.\n\n# Sort a list of integers in place.\ndef sort_in_place("
    )
    assert code_prompt(DESC, "sort_in_place", CodeGen()).endswith(code_head("sort_in_place"))


def test_code_head():
    assert code_head("merge_sort") == "def merge_sort("


def test_code_prompt_multiline_and_placeholders_in_description():
    prompt = code_prompt("Use {func_name}\nand {desc}", "f_x", CodeGen())
    assert prompt == "This is an algorithm function.\n\n# Use {func_name}\n# and {desc}\ndef f_x("


def test_code_template_override():
    cfg = CodeGen(template='"""{desc}"""\n\n\ndef {func_name}(')
    assert code_prompt('say "hi"', "greet", cfg) == '"""say "hi\\""""\n\n\ndef greet('


def test_code_template_must_end_with_the_head():
    with pytest.raises(ConfigError, match="def {func_name}"):
        validate_config({"codegen": {"template": "# {desc}\ndef {func_name}():"}})
