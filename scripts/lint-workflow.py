"""`snakemake --lint` on the workflow: fails on any finding but the accepted ones below, each with its reason.

Run from the repository root with the project's Python: `.venv/bin/python scripts/lint-workflow.py` (make lint).
Snakemake 9's `--lint json` prints text, so the findings are read from the text: `Lints for ...:` heads,
then one `    * <finding>:` line each.
"""

from __future__ import annotations

import re
import subprocess
import sys

ACCEPTED_IN = "scripts/lint-workflow.py (ACCEPTED, with the reason)"
ACCEPTED = {
    "Specify a conda environment or container for each rule.": (
        "every rule runs `python -m evoselfcode` with the interpreter that runs Snakemake: one environment, the "
        "package's own (make install)"
    ),
    "Shell command directly uses variable EVO from outside of the rule": (
        "the interpreter's path: as a param, moving the virtualenv would rerun every job"
    ),
    "Shell command directly uses variable CONFIG_FILE from outside of the rule": (
        "named by the whole config's digest: as a param, any setting (even io.concurrency) would rerun every job; "
        "params.spec holds the settings each rule depends on (evoselfcode/rule_settings.py)"
    ),
}


def findings(text: str) -> list[tuple[str, str]]:
    """(where, finding) for each finding in `snakemake --lint`'s text output."""
    out, where = [], None
    for line in text.splitlines():
        if head := re.match(r"Lints for (.+):$", line):
            where = head[1]
        elif where and (item := re.match(r"    \* (.+):$", line)):
            out.append((where, item[1]))
    return out


def main() -> int:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    found = findings(text)
    if proc.returncode != 0 and not found:  # Snakemake failed before it could lint
        print(text, file=sys.stderr)
        return 1
    new = [(where, what) for where, what in found if what not in ACCEPTED]
    for where, what in new:
        print(f"{where}: {what}", file=sys.stderr)
    if new:
        print(f"snakemake --lint: {len(new)} new finding(s); fix them, or accept one in {ACCEPTED_IN}", file=sys.stderr)
        return 1
    print(f"snakemake --lint: {len(found)} finding(s), all of the {len(ACCEPTED)} accepted kinds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
