"""Looking at any output JSONL: `evoselfcode stats`, `sample` and `validate` (no config needed)."""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from evoselfcode import layout
from evoselfcode.datagen import schemas

# schema name (what `layout` says a file holds) -> the record models a line may match, tried in order
SCHEMAS: dict[str, tuple[type[BaseModel], ...]] = {
    "shards": (schemas.Description,),
    "quarantine": (schemas.Quarantined,),
    "names/raw": (schemas.NameSample,),
    "names/filtered": (schemas.NameCandidate,),
    "names/rejects": (schemas.NameReject,),
    "code/raw": (schemas.CodeSample,),
    "code/filtered": (schemas.CodeRecord,),
    "code/rejects": (schemas.CodeReject, schemas.CodeTestsReject, schemas.SelectionReject, schemas.GlobalReject),
    "code/tested": (schemas.CodeRecord,),
    "tests/raw": (schemas.CodeTests, schemas.DescTests),
    "tests/rejects": (schemas.CodeTestsReject, schemas.SelectionReject),
    "tests/selection": (schemas.DescSelection,),
    "code/scored": (schemas.ScoredRecord,),
    "code/score_rejects": (schemas.ScoreReject,),
    "failures": (schemas.Failure,),
    "contaminated": (schemas.Contaminated,),
    "timing": (schemas.RequestTiming,),
}


def detect_schema(path: str | Path) -> str:
    """The schema of a pipeline file, from where the layout puts it: `names/raw.jsonl`, `code/tests/raw/00000.jsonl`."""
    if schema := layout.schema_of(path):
        return schema
    raise ValueError(f"cannot tell the schema of {path} from its name; pass --schema ({', '.join(SCHEMAS)})")


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                yield number, line


def validate(path: str | Path, schema: str) -> tuple[int, list[str]]:
    """(records checked, problems as `FILE:LINE: ...`), trying each model of the schema per line."""
    models = SCHEMAS[schema]
    count, problems = 0, []
    for number, line in iter_lines(path):
        count += 1
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: not JSON: {exc.msg}")
            continue
        errors = []
        for model in models:
            try:
                model.model_validate(data)
                break
            except ValidationError as exc:
                errors.append(exc)
        else:
            err = errors[0].errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "(record)"
            problems.append(f"{path}:{number}: {where}: {err['msg']} (schema {schema})")
    return count, problems


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    cuts = statistics.quantiles(values, n=20, method="inclusive") if len(values) > 1 else [values[0]] * 19
    return {"min": min(values), "p5": cuts[0], "p50": cuts[9], "p95": cuts[18], "max": max(values)}


def _length_field(record: dict) -> str | None:
    return next((f for f in ("code", "desc", "func_name", "text") if isinstance(record.get(f), str)), None)


def stats(path: str | Path) -> dict[str, Any]:
    """Counts of a JSONL: records, sources/modes, reasons, lengths of its main text field, score quantiles."""
    records, bad = [], 0
    for _, line in iter_lines(path):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            bad += 1
    field = next((f for r in records if (f := _length_field(r))), None)
    out: dict[str, Any] = {"file": str(path), "records": len(records), "bad_lines": bad}
    for key in ("source", "mode", "reason", "stage", "error"):
        counts = Counter(r[key] for r in records if isinstance(r.get(key), str))
        if counts:
            out[key] = dict(counts.most_common())
    prefix = schemas.CONTAMINATED_PREFIX
    removed = {r.removeprefix(prefix): n for r, n in out.get("reason", {}).items() if r.startswith(prefix)}
    if removed:  # benchmark matches, per benchmark (set-aside descriptions, or functions among rejects)
        out["contaminated"] = removed
    if "desc_id" in (records[0] if records else {}) or any("meta" in r for r in records):
        out["descriptions"] = len({r.get("desc_id") or r.get("meta", {}).get("desc_id") for r in records})
    if field:
        out[f"{field}_chars"] = _quantiles([float(len(r[field])) for r in records if isinstance(r.get(field), str)])
    tests = [r["tests"] for r in records if isinstance(r.get("tests"), list)]
    if tests:  # kept records carry the assertions they passed; test rejects their outcomes
        out["tests_per_record"] = _quantiles([float(len(t)) for t in tests])
    outcomes = Counter(o.split(":")[0] for r in records if isinstance(r.get("outcomes"), list) for o in r["outcomes"])
    if outcomes:
        out["test_outcomes"] = dict(outcomes.most_common())
    for key in ("ppl", "mean_logprob"):
        values = [float(r["score"][key]) for r in records if isinstance(r.get("score"), dict) and key in r["score"]]
        if values:
            out[f"score_{key}"] = _quantiles(values)
    return out


def format_stats(result: dict[str, Any]) -> str:
    lines = []
    for key, value in result.items():
        if isinstance(value, dict):
            shown = ", ".join(f"{k} {_num(v)}" for k, v in value.items())
            lines.append(f"{key + ':':<20} {shown}")
        else:
            lines.append(f"{key + ':':<20} {value}")
    return "\n".join(lines)


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def pick(path: str | Path, n: int, seed: int | None) -> list[tuple[int, dict]]:
    """`n` records with their line numbers: the first ones, or a seeded random choice."""
    lines = list(iter_lines(path))
    if seed is not None:
        lines = sorted(random.Random(seed).sample(lines, min(n, len(lines))))
    return [(number, json.loads(line)) for number, line in lines[:n]]


def show(path: str | Path, n: int, seed: int | None, console=None) -> None:
    """Each record as a panel: its code syntax-highlighted, the other fields as JSON."""
    from rich.console import Console, Group
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.text import Text

    console = console or Console()
    for number, record in pick(path, n, seed):
        title = " · ".join(str(record[k]) for k in ("func_name", "source", "mode", "reason") if record.get(k))
        parts = []
        if desc := record.get("desc"):
            parts.append(Text(str(desc), style="bold"))  # a Text, not markup: descriptions hold [brackets]
        rest = {k: v for k, v in record.items() if k not in ("desc", "code", "completion")}
        parts.append(Syntax(json.dumps(rest, indent=1, ensure_ascii=False), "json", word_wrap=True))
        if isinstance(record.get("code"), str):
            parts.append(Syntax(record["code"], "python", line_numbers=True))
        console.print(Panel(Group(*parts), title=f"{Path(path).name}:{number} {title}", title_align="left"))
