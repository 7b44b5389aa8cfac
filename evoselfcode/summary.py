"""The few lines a finished run prints: kept per stage, the A/B verdict, where the files are, what to run next."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from evoselfcode.layout import DATASET, FAILURES, REPORT, STATE_DIR, Code, Names

MAKE_VARS = "EVOSELFCODE_MAKE_VARS"  # set by `make run` / `make report` to the variables they were given


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: the run has not made it yet") from None


def _per_source(counts: dict[str, int]) -> str:
    return ", ".join(f"{source} {n}" for source, n in counts.items())


def why_empty(names: dict, code: dict) -> str:
    """Why a run kept no function, from its metrics: what stopped the functions, or that none was generated."""
    generated = (code.get("accounting") or {}).get("generated", 0)
    if generated:
        reasons = sorted((code.get("reasons") or {}).items(), key=lambda item: (-item[1], item[0]))
        shown = ", ".join(f"`{r}` {n:,}" for r, n in reasons[:5]) or "none recorded"
        return f"all {generated:,} generated functions were dropped (most common reasons: {shown})"
    if not names.get("descriptions"):
        return "no description reached the model (every input line was set aside or quarantined)"
    kept_names = sum(m.get("kept", 0) for m in (names.get("modes") or {}).values())
    failed = (names.get("failed_requests") or 0) + (code.get("failed_requests") or 0)
    if not kept_names:
        return "no function name passed the name checks, so no code was asked for (see names/rejects.jsonl)"
    return f"no function was generated ({failed:,} requests failed after retries: see the failures files)"


def _shown(path: str | Path) -> str:
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def cli_command() -> str:
    """How to call the CLI from this shell: `evoselfcode` when on PATH, else the script beside this interpreter."""
    if shutil.which("evoselfcode"):
        return "evoselfcode"
    beside = Path(sys.executable).parent / "evoselfcode"
    return _shown(beside) if beside.is_file() else f"{_shown(sys.executable)} -m evoselfcode"


def report_command(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> str:
    """The command that collects this run's report: `make report` with the variables of the `make run` that made
    it, else Snakemake with this run's own arguments (its profile, config files and targets) and --report."""
    if MAKE_VARS in environ:
        return shlex.join(["make", "report", *environ[MAKE_VARS].split()])
    args = [a for a in argv[1:] if a not in ("-n", "--dry-run", "--dryrun")]
    return shlex.join(["snakemake", "--report", "report.html", *args])  # first: --configfile takes the words after it


def _remembered(code_dir: Path) -> Path:
    return STATE_DIR / f"report-command-{hashlib.sha256(os.path.normpath(code_dir).encode()).hexdigest()[:12]}.txt"


def remember_report_command(code_dir: str | Path, command: str) -> None:
    """Keep the run's report command, so that `evoselfcode summary` prints the same next steps as the run did."""
    path = _remembered(Path(code_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(command + "\n", encoding="utf-8")


def _selection(s: dict) -> str:
    """How the tests stage chose: candidates per description, the winners' groups, the assertions set aside."""
    descriptions = sum(s["candidates_per_description"].values())
    per_desc = s["candidates"] / descriptions if descriptions else 0
    winners = sum(s["winner_sizes"].values())
    return (f"by {s['selection']}: {per_desc:.1f} candidates per description, {winners} winning groups; of "
            f"{s['asserts']} test asserts {s['wrong']} wrong and {s['non_discriminating']} passed by anything, "
            "not counted")  # fmt: skip


def _requests(*timing_files: Path) -> str | None:
    """How many model answers came from the answer store and how many were asked, from the stages' timing.json."""
    entries = []
    for path in timing_files:
        if path.is_file():
            timing = _load(path)
            entries += [*timing.get("by_mode", {}).values(), *([timing["tests"]] if "tests" in timing else [])]
    if not entries:
        return None
    total, stored = sum(e["requests"] for e in entries), sum(e["resumed"] for e in entries)
    return f"{total} behind these outputs: {stored} read from the answer store, {total - stored} asked of the server"


def summary(names_dir: str | Path, code_dir: str | Path, report: str | None = None) -> str:
    """A short report of the run whose metrics are in `names_dir` and `code_dir`; reads only metrics files (and the
    report command the run remembered, when `report` is not given)."""
    names_dir, code_dir = Path(names_dir), Path(code_dir)
    names_files, code_files = Names(names_dir), Code(code_dir)
    if report is None:
        remembered = _remembered(code_dir)
        fallback = "snakemake --report report.html   (with the run's --profile and --configfile)"
        report = remembered.read_text(encoding="utf-8").strip() if remembered.is_file() else fallback
    names, code = _load(Path(names_files.metrics_json)), _load(Path(code_files.metrics_json))
    modes = names["modes"]
    acc = code["accounting"]
    final = Path(code_files.filtered())
    lines = [
        f"EvoSelfCode: {names['descriptions']} descriptions",
        f"  names      {sum(m['kept'] for m in modes.values())} kept of {sum(m['sampled'] for m in modes.values())}"
        f" sampled ({_per_source({mode: m['kept'] for mode, m in modes.items()})})",
        f"  functions  {acc['kept']} kept of {acc['generated']} generated"
        f" ({_per_source({source: s['kept'] for source, s in code['by_source'].items()})})",
        f"  A/B        {names['verdict'] or 'no metric compared'}",
    ]
    if selection := code.get("selection"):
        lines.append(f"  chosen     {_selection(selection)}")
    if not acc["kept"]:
        lines.append(f"  why none   {why_empty(names, code)}".replace("`", ""))
    if asked := _requests(Path(names_files.timing_json), Path(code_files.timing_json)):
        lines.append(f"  requests   {asked}")
    quarantined = names.get("quarantined_input_lines", 0)
    repeated = names.get("repeated_descriptions", 0)
    set_aside = sum(names.get("contaminated_descriptions", {}).values())
    left_out = []  # input the count of descriptions leaves out
    if quarantined:
        left_out.append(f"{quarantined} lines quarantined (bad lines)")
    if repeated:
        left_out.append(f"{repeated} repeated descriptions set aside (repeated_desc)")
    if set_aside:
        left_out.append(f"{set_aside} descriptions set aside (benchmark matches)")
    if left_out:
        lines.insert(1, "  input      " + ", ".join(left_out))
    failed = names.get("failed_requests", 0) + code.get("failed_requests", 0)  # code's counts the tests' requests
    if failed:
        files = [Path(names_files.failures()), Path(code_files.failures()), Path(code_files.tests.folder(FAILURES))]
        lines.append(
            f"  failed     {failed} requests after retries, in {', '.join(map(str, filter(Path.exists, files)))}"
        )
    lines.append(f"Outputs: {final}; beside it and in {names_dir}/ the rejects with reasons, metrics.json, timing.json")
    plots, dataset = Path(code_files.beside(REPORT)), Path(code_files.beside(DATASET))
    if plots.is_dir():
        lines.append(f"Plots:   {plots}/")
    if dataset.is_dir() and not acc["kept"]:
        lines.append(f"Dataset: {dataset}/ (empty: its card says why; datasets loads it with streaming=True)")
    elif dataset.is_dir():
        lines.append(f"Dataset: {dataset}/ (Parquet and its card: datasets.load_dataset({str(dataset)!r}))")
    cli = cli_command()
    lines += ["Next:", f"  {cli} stats {final}", f"  {cli} sample {final} -n 5 --seed 1", f"  {report}"]
    return "\n".join(lines)
