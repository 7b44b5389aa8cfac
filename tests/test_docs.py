"""docs/architecture.md against the package: the module table names every module, and every name in it exists."""

import ast
import re

import pytest
from conftest import ROOT

PACKAGE = ROOT / "evoselfcode"
ARCHITECTURE = ROOT / "docs/architecture.md"


def modules() -> set[str]:
    """Every module of the package by its path under evoselfcode/, `__init__.py` and `__main__.py` aside."""
    aside = ("__init__.py", "__main__.py")
    return {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if p.name not in aside}


def table_rows(text: str) -> list[list[str]]:
    """The names in the first cell of each row of "Where the modules live", as the doc says to read them: a bare
    file name is in the folder of the path before it in the cell."""
    section = text.split("## Where the modules live", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names, folder = [], ""
        for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
            if "/" in name:
                folder = name.rsplit("/", 1)[0] + "/"
                names.append(name)
            else:
                names.append(folder + name)
        rows.append(names)
    return rows


def covered(rows: list[list[str]], found: set[str]) -> tuple[dict[str, str], list[str]]:
    """Which row names each module ({module: name}), and the names that stand for nothing."""
    files = {n for row in rows for n in row if n.endswith(".py")}
    owner = {m: m for m in found & files}
    stale = sorted(files - found)
    for folder in (n for row in rows for n in row if n.endswith("/")):
        rest = [m for m in found - files if m.startswith(folder)]
        owner.update({m: folder for m in rest if len(folder) > len(owner.get(m, ""))})  # the deepest folder
        if not rest:
            stale.append(folder)
    return owner, stale


def test_the_module_table_names_every_module_and_nothing_else():
    found = modules()
    owner, stale = covered(table_rows(ARCHITECTURE.read_text(encoding="utf-8")), found)
    assert not sorted(found - owner.keys()), "modules missing from docs/architecture.md's table"
    assert not stale, "names in docs/architecture.md's table that are no module or folder of the package"


def test_the_rule_finds_a_missing_module_and_a_stale_name():
    rows = table_rows("## Where the modules live\n\n| `a.py`, `b.py` | x |\n| `d/e.py`, `f.py` | y |\n"
                      "| `d/` (the rest) | z |\n| `g/` | w |\n\n## Next\n| `h.py` | v |\n")  # fmt: skip
    assert rows == [["a.py", "b.py"], ["d/e.py", "d/f.py"], ["d/"], ["g/"]]
    owner, stale = covered(rows, {"a.py", "d/e.py", "d/f.py", "d/k.py", "c.py"})
    assert owner == {"a.py": "a.py", "d/e.py": "d/e.py", "d/f.py": "d/f.py", "d/k.py": "d/"}  # c.py: missing
    assert stale == ["b.py", "g/"]


@pytest.mark.parametrize("section", ["## Data flow", "## Stages and their settings"])
def test_the_data_flow_and_the_stages_show_every_rule(section):
    text = ARCHITECTURE.read_text(encoding="utf-8").split(section, 1)[1].split("\n## ", 1)[0]
    rules = {m[1] for p in (ROOT / "rules").glob("*.smk") for m in re.finditer(r"^rule (\w+):", p.read_text(), re.M)}
    missing = sorted(r for r in rules if not re.search(rf"\b{r}\b", text))
    assert rules and not missing, f"rules missing from docs/architecture.md's {section[3:]}: {missing}"


def test_every_module_docstring_opens_with_one_sentence_on_its_first_line():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(source), clean=False)
        if not source.strip():
            continue
        first = (doc or "").split("\n", 1)
        if not first[0].rstrip().endswith(".") or (len(first) > 1 and first[1].strip() and first[1][0] != "\n"):
            long.append(path.relative_to(ROOT).as_posix())
    assert not long, f"a module docstring's first line is one whole sentence, then a blank line: {long}"


def test_no_text_cites_a_document_outside_the_repository():
    texts = [*PACKAGE.rglob("*.py"), *(ROOT / "docs").glob("*.md"), ROOT / "README.md", *(ROOT / "rules").glob("*.smk")]
    outside = re.compile(r"\bDESIGN\b|design card|design doc|\bissue #?\d+")
    cites = [p.relative_to(ROOT).as_posix() for p in texts if outside.search(p.read_text(encoding="utf-8"))]
    assert not cites, f"documents outside the repository cited in {cites}"
