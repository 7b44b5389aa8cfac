"""Benchmark decontamination: HumanEval's prompts and solutions are found however they are dressed up, and
ordinary descriptions and functions are not."""

import ast
import gzip
import json
import sysconfig
from pathlib import Path

import pytest

from evoselfcode.config import ConfigError, Decontamination, load_config
from evoselfcode.datagen import benchmark_index
from evoselfcode.datagen.benchmark_index import BenchmarkError, Index, build_index, read_benchmarks, words
from evoselfcode.datagen.utils.code_tokens import decontam_split

CFG = Decontamination()


@pytest.fixture(scope="module")
def humaneval():
    return read_benchmarks(CFG)


@pytest.fixture(scope="module")
def index(humaneval):
    return Index(build_index(humaneval, CFG))


def check_text(index, text):
    return index.check_text(text, CFG.desc_threshold)


def check_code(index, code):
    return index.check_code(code, CFG.code_threshold, CFG.desc_threshold)


def function_of(item) -> ast.FunctionDef:
    return [n for n in ast.parse(item.solution).body if isinstance(n, ast.FunctionDef)][-1]


class Rename(ast.NodeTransformer):
    """Every name a solution binds (function, arguments, locals) gets another name."""

    def __init__(self, bound: set[str]):
        self.new = {name: f"renamed_{i}" for i, name in enumerate(sorted(bound))}

    def visit_FunctionDef(self, node):
        node.name = self.new.get(node.name, node.name)
        return self.generic_visit(node)

    def visit_arg(self, node):
        node.arg = self.new.get(node.arg, node.arg)
        return node

    def visit_Name(self, node):
        node.id = self.new.get(node.id, node.id)
        return node


def disguised(item) -> str:
    """The solution with every name changed, its docstring replaced and a comment added."""
    tree = ast.parse(item.solution)
    bound = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    bound |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments) for a in n.args + n.kwonlyargs}
    bound |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    tree = Rename(bound).visit(tree)
    func = [n for n in tree.body if isinstance(n, ast.FunctionDef)][-1]
    func.body[0] = ast.Expr(ast.Constant("Does what the task says, quickly."))
    lines = ast.unparse(tree).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"def {func.name}")) + 2
    return "\n".join(lines[:at] + ["    # the interesting part starts here"] + lines[at:]) + "\n"


def test_humaneval_is_read_as_data_from_the_installed_package(humaneval):
    assert len(humaneval) == 164
    assert humaneval[0].id == "HumanEval/0" and "def has_close_elements" in humaneval[0].solution
    assert all(it.benchmark == "humaneval" and it.prompt and it.solution for it in humaneval)


def test_every_humaneval_prompt_and_docstring_given_as_a_description_matches(humaneval, index):
    with gzip.open(benchmark_index.humaneval_path(), "rt") as fh:
        prompts = {r["task_id"]: r["prompt"] for r in map(json.loads, fh)}
    matched, right_task = 0, 0
    for item in humaneval:
        doc = item.prompt  # the docstring (HumanEval/115's follows an import: then the whole prompt)
        for text in (prompts[item.id], doc, "Write a Python function for this task. " + doc):
            match = check_text(index, text)
            assert match is not None and match.benchmark == "humaneval", (item.id, text[:80])
            matched += 1
            right_task += match.task_id == item.id
    assert matched == 3 * 164
    assert right_task >= matched - 6  # a few tasks share their words (56 and 61: brackets "<>" and "()")


def test_a_docstring_first_line_matches_exactly_whatever_its_case_and_spacing(humaneval, index):
    match = check_text(index, "  RETURN length   of given string ")
    assert match is not None and (match.task_id, match.how, match.reason) == ("HumanEval/23", "exact",
                                                                              "contaminated:humaneval")  # fmt: skip
    firsts = [it.prompt.split("\n\n")[0].split(">>>")[0] for it in humaneval]
    long_enough = [f for f in firsts if len(words(f)) >= CFG.min_words]
    assert len(long_enough) >= 160
    assert all(check_text(index, f) is not None for f in long_enough)


@pytest.mark.parametrize(
    "desc",
    [
        "Sum a list of numbers.",  # shorter than min_words: too generic to call a match
        "Return the length of a string.",
        "Sort a list of integers in ascending order using merge sort and return a new list.",
        "Parse an ISO 8601 date string into a datetime, raising ValueError on malformed input.",
    ],
)
def test_ordinary_descriptions_do_not_match(index, desc):
    assert check_text(index, desc) is None


def test_the_shipped_sample_descriptions_do_not_match(index):
    lines = Path("data/descriptions/sample.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines if check_text(index, json.loads(line)["desc"])] == []


def test_every_solution_is_found_with_its_names_changed_a_comment_added_and_its_docstring_replaced(humaneval, index):
    missed = []
    for item in humaneval:
        code = disguised(item)
        assert "renamed_0" in code and "# the interesting part" in code
        match = check_code(index, code)
        if match is None or match.task_id != item.id:
            missed.append((item.id, match))
    assert missed == []


def test_a_function_that_copies_a_benchmark_docstring_is_found(index):
    code = (
        "def closest(xs, t):\n"
        '    """Check if in given list of numbers, are any two numbers closer to each other than\n'
        '    given threshold."""\n'
        "    return any(abs(a - b) < t for i, a in enumerate(xs) for b in xs[i + 1 :])\n"
    )
    assert check_code(index, code).task_id == "HumanEval/0"


def stdlib_functions(
    modules=("textwrap", "json/encoder", "csv", "fractions", "statistics", "heapq", "bisect", "difflib", "calendar"),
):
    root = Path(sysconfig.get_paths()["stdlib"])
    for module in modules:
        source = (root / f"{module}.py").read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef):
                yield ast.get_source_segment(source, node)


def test_ordinary_functions_are_not_flagged(index):
    functions = list(stdlib_functions())
    assert len(functions) > 250
    assert [f.splitlines()[0] for f in functions if check_code(index, f)] == []


def test_code_tokens_drop_comments_docstrings_and_formatting_and_hide_only_chosen_names():
    code = 'def f(xs, n=2):\n    """Doc."""\n    # note\n    out = sorted(xs, key=len)  # why\n'
    code += "    return out.copy()[:n]\n"
    tokens, prose = decontam_split(code)
    assert " ".join(tokens) == "def ID ID ID = 2 : ID = sorted ID ID = len return ID . copy [ : ID ]"
    assert prose == "Doc.\n note\n why"
    dressed = "def g(values,\n      k=(2),):\n    'Another docstring'\n    result = (sorted(values, key=len))\n"
    assert decontam_split(dressed + "    return result.copy()[:k];\n")[0] == tokens


def test_literals_count_by_value_and_code_need_not_parse():
    tokens, prose = decontam_split("    x = 'a # b' + r'\\s' + 1. + 0x10\n  return x  # odd indent\n")
    assert tokens == ["ID", "=", "'a # b'", "+", repr("\\s"), "+", "1.0", "+", "16", "return", "ID"]
    assert prose == " odd indent"
    assert decontam_split("y = '\\\\s' + 1.0 + 16")[0][2:] == tokens[4:-2]


def test_the_index_is_the_same_bytes_every_time(humaneval):
    assert json.dumps(build_index(humaneval, CFG)) == json.dumps(build_index(list(humaneval), CFG))


def test_the_index_file_is_built_once_named_by_its_content_and_rebuilt_the_same(tmp_path, capsys):
    folder = tmp_path / "benchmarks"  # made when missing
    path = Path(benchmark_index.benchmark_index(CFG, folder))
    tasks = len(read_benchmarks(CFG))
    assert capsys.readouterr().err == f"decontamination: indexed {tasks} benchmark tasks (humaneval) in {path}\n"
    assert path.parent == folder and path.name.startswith("index-")
    built, mtime = path.read_bytes(), path.stat().st_mtime_ns
    (folder / f".{path.name}.other.tmp").write_text("")  # another process writing it now
    assert benchmark_index.benchmark_index(CFG, folder) == str(path) and path.stat().st_mtime_ns == mtime  # not rebuilt
    assert capsys.readouterr().err == ""
    path.unlink()
    assert benchmark_index.benchmark_index(CFG, folder) == str(path) and path.read_bytes() == built
    assert (folder / f".{path.name}.other.tmp").exists()  # left to its writer
    assert benchmark_index.benchmark_index(CFG.model_copy(update={"min_words": 4}), folder) != str(path)
    capsys.readouterr()
    benchmark_index.benchmark_index(Decontamination(enabled=False), folder)
    assert capsys.readouterr().err == ""  # switched off: nothing indexed, nothing to say


def test_disabled_or_empty_matches_nothing(humaneval):
    assert read_benchmarks(Decontamination(enabled=False)) == []
    empty = Index(build_index([], CFG))
    assert check_text(empty, humaneval[0].prompt) is None and check_code(empty, humaneval[0].solution) is None


def test_an_index_of_another_version_is_refused(tmp_path, humaneval):
    path = tmp_path / "index.json"
    path.write_text(json.dumps({**build_index(humaneval[:2], CFG), "version": 0}))
    with pytest.raises(BenchmarkError, match="version 0, expected 1: rebuild it"):
        Index.load(path)


def write_jsonl(path: Path, records: list, gz: bool = False) -> Path:
    data = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    if gz:
        path.write_bytes(gzip.compress(data.encode()))
    else:
        path.write_text(data)
    return path


MBPP = [
    {"task_id": 11, "text": "Write a python function to remove first and last occurrence of a given character "
     "from the string.", "code": "def remove_Occ(s,ch):\n    for i in range(len(s)):\n        if (s[i] == ch):\n"
     "            s = s[0 : i] + s[i + 1:]\n            break\n    for i in range(len(s) - 1,-1,-1):\n"
     "        if (s[i] == ch):\n            s = s[0 : i] + s[i + 1:]\n            break\n    return s "},
    {"task_id": 12, "text": "Write a function to sort a given matrix in ascending order according to the sum of "
     "its rows.", "code": "def sort_matrix(M):\n    result = sorted(M, key=sum)\n    return result"},
]  # fmt: skip


@pytest.mark.parametrize("gz", [False, True], ids=["jsonl", "jsonl.gz"])
def test_a_user_benchmark_is_read_with_the_fields_named_in_config(tmp_path, gz):
    path = write_jsonl(tmp_path / ("mbpp.jsonl.gz" if gz else "mbpp.jsonl"), MBPP, gz)
    user = {"name": "mbpp", "path": str(path), "prompt_field": "text", "solution_field": "code", "id_field": "task_id"}
    cfg = Decontamination(benchmarks=["humaneval", user])
    items = read_benchmarks(cfg)
    assert len(items) == 166 and [(it.benchmark, it.id) for it in items[-2:]] == [("mbpp", "11"), ("mbpp", "12")]
    index = Index(build_index(items, cfg))
    match = check_text(
        index, "Write a function to sort a given matrix in ascending order according to the sum of its rows"
    )
    assert (match.reason, match.task_id) == ("contaminated:mbpp", "12")
    renamed = MBPP[0]["code"].replace("remove_Occ", "strip_char").replace("ch", "c").replace("s", "text")
    assert check_code(index, renamed).task_id == "11"


@pytest.mark.parametrize(
    ("records", "fields", "message"),
    [
        (None, {"prompt_field": "text"}, "decontamination.benchmarks[1].path: benchmark file {path} does not exist"),
        ([{"text": "a"}, {"txt": "b"}], {"prompt_field": "text"},
         "decontamination.benchmarks[1].prompt_field: {path}:2 has no field 'text'"),
        ([{"text": "a", "code": 3}], {"prompt_field": "text", "solution_field": "code"},
         "decontamination.benchmarks[1].solution_field: {path}:1 field 'code' is not a string"),
        (["{oops"], {"prompt_field": "text"}, "decontamination.benchmarks[1]: {path}:1: not valid JSON"),
        ([], {"prompt_field": "text"}, "decontamination.benchmarks[1].path: benchmark file {path} holds no records"),
    ],
    ids=["missing-file", "missing-field", "not-a-string", "not-json", "empty"],
)  # fmt: skip
def test_a_bad_user_benchmark_is_an_error_naming_the_key_and_the_file(tmp_path, records, fields, message):
    path = tmp_path / "bench.jsonl"
    if records is not None:
        write_jsonl(path, records)
    cfg = Decontamination(benchmarks=["humaneval", {"name": "mine", "path": str(path), **fields}])
    with pytest.raises(BenchmarkError) as exc:
        benchmark_index.check_benchmarks(cfg)
    assert message.format(path=path) in str(exc.value)


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("decontamination: {min_words: 20}", "min_words is larger than ngram"),
        ("decontamination: {benchmarks: [humaneval, humaneval]}", "humaneval used more than once"),
        ("decontamination: {benchmarks: [{name: x, path: x.jsonl}]}", "set prompt_field, solution_field or both"),
        ("decontamination: {benchmarks: [mbpp]}", "decontamination.benchmarks.0"),
        ("decontamination: {threshold: 0.5}", "decontamination.threshold (in"),
    ],
)
def test_bad_decontamination_settings_are_named(tmp_path, yaml, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_config(path)


def test_set_aside_records_validate_and_stats_counts_them_per_benchmark(tmp_path, index, humaneval, capsys):
    from evoselfcode import tools
    from evoselfcode.cli import main
    from evoselfcode.datagen.schemas import Description

    descs = [Description(id="ok", desc="Parse a CSV line into fields, honouring quoted commas.")]
    descs += [Description(id=it.id, desc=it.prompt) for it in humaneval[:3]]
    kept, contaminated = benchmark_index.set_aside(descs, index, CFG.desc_threshold)
    assert [d.id for d in kept] == ["ok"] and [c.task_id for c in contaminated] == [it.id for it in humaneval[:3]]
    path = tmp_path / "data/shards/contaminated/00000.jsonl"
    write_jsonl(path.parent.mkdir(parents=True) or path, [c.model_dump() for c in contaminated])
    assert tools.detect_schema(path) == "contaminated" and tools.validate(path, "contaminated") == (3, [])
    assert main(["stats", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["contaminated"] == {"humaneval": 3}


def test_the_check_drops_matching_functions_before_dedup_and_needs_its_index(tmp_path, humaneval):
    from evoselfcode.config import Config
    from evoselfcode.datagen.checks import check_samples
    from evoselfcode.datagen.schemas import CodeSample

    index = tmp_path / "index.json"
    index.write_text(json.dumps(build_index(humaneval, CFG)))
    copy = disguised(humaneval[13])  # greatest_common_divisor: no import it needs (ruff runs first)
    other = "def total(xs):\n    result = 0\n    for x in xs:\n        result += x\n    return result\n"
    name = [n.name for n in ast.parse(copy).body if isinstance(n, ast.FunctionDef)][-1]
    named = [(name, copy), (name, copy), ("total", other), ("total", other)]
    samples = [CodeSample(desc_id="d", desc="x", func_name=name, source="L2R", sample_index=i, seed=0, completion="",
                          code=code) for i, (name, code) in enumerate(named)]  # fmt: skip
    reasons = check_samples(samples, Config(), inputs={"index": str(index)})
    assert reasons == ["contaminated:humaneval", "contaminated:humaneval", None, "duplicate"]
    with pytest.raises(ValueError, match="needs the benchmark index"):
        check_samples(samples, Config())
    assert check_samples(samples, Config(decontamination={"enabled": False})) == [None, "duplicate", None, "duplicate"]
