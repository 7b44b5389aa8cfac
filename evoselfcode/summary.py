"""The few lines a finished run prints: kept per stage, the A/B verdict, where the files are, what to run next."""

from __future__ import annotations

import json
from pathlib import Path


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: the run has not made it yet") from None


def _per_source(counts: dict[str, int]) -> str:
    return ", ".join(f"{source} {n}" for source, n in counts.items())


def summary(names_dir: str | Path, code_dir: str | Path) -> str:
    """A short report of the run whose metrics are in `names_dir` and `code_dir`; reads only metrics files."""
    names_dir, code_dir = Path(names_dir), Path(code_dir)
    names, code = _load(names_dir / "metrics.json"), _load(code_dir / "metrics.json")
    modes = names["modes"]
    acc = code["accounting"]
    final = code_dir / "filtered.jsonl"
    lines = [
        f"EvoSelfCode: {names['descriptions']} descriptions",
        f"  names      {sum(m['kept'] for m in modes.values())} kept of {sum(m['sampled'] for m in modes.values())}"
        f" sampled ({_per_source({mode: m['kept'] for mode, m in modes.items()})})",
        f"  functions  {acc['kept']} kept of {acc['generated']} generated"
        f" ({_per_source({source: s['kept'] for source, s in code['by_source'].items()})})",
        f"  A/B        {names['verdict'] or 'no metric compared'}",
    ]
    quarantined = names.get("quarantined_input_lines", 0)
    set_aside = sum(names.get("contaminated_descriptions", {}).values())
    left_out = []  # input the count of descriptions leaves out
    if quarantined:
        left_out.append(f"{quarantined} lines quarantined (bad lines)")
    if set_aside:
        left_out.append(f"{set_aside} descriptions set aside (benchmark matches)")
    if left_out:
        lines.insert(1, "  input      " + ", ".join(left_out))
    failed = names.get("failed_requests", 0) + code.get("failed_requests", 0)  # code's counts the tests' requests
    if failed:
        files = [names_dir / "failures.jsonl", code_dir / "failures.jsonl", code_dir / "tests/failures"]
        lines.append(
            f"  failed     {failed} requests after retries, in {', '.join(map(str, filter(Path.exists, files)))}"
        )
    lines.append(f"Outputs: {final}; beside it and in {names_dir}/ the rejects with reasons, metrics.json, timing.json")
    plots, dataset = code_dir.parent / "report", code_dir.parent / "dataset"
    if plots.is_dir():
        lines.append(f"Plots:   {plots}/")
    if dataset.is_dir():
        lines.append(f"Dataset: {dataset}/ (Parquet and its card: datasets.load_dataset({str(dataset)!r}))")
    lines += [
        "Next:",
        f"  evoselfcode stats {final}",
        f"  evoselfcode sample {final} -n 5 --seed 1",
        "  snakemake --report report.html   (with this run's --profile and --configfile; or `make report`)",
    ]
    return "\n".join(lines)
