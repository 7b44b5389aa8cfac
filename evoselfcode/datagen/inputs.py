"""Reading users' description files (JSONL `{"id"?, "desc"}` or `.txt`, one per line) and sharding them.

Shard k holds the non-blank input lines [k * shard_size, (k + 1) * shard_size), so the shard list is
known from a cheap line count when Snakemake builds the DAG, and a bad line never moves another
description into a different shard.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from evoselfcode.datagen.schemas import Description

BOM = b"\xef\xbb\xbf"


class InputError(ValueError):
    """The description file cannot be used as it is; the message names the file and lines."""


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str
    detail: str

    def describe(self, path: str | Path) -> str:
        return f"{path}:{self.line}: {self.reason}: {self.detail}"


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines as (1-based line number, raw bytes without the line end)."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                yield number, raw


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"description file {path} does not exist (io.input_desc_path): check the path")


def count_descriptions(path: str | Path) -> int:
    """Number of non-blank lines: what the shard list is computed from."""
    path = Path(path)
    _check_exists(path)
    return sum(1 for _ in _lines(path))


def shard_count(path: str | Path, shard_size: int) -> int:
    return max(1, -(-count_descriptions(path) // shard_size))


def shard_ids(path: str | Path, shard_size: int) -> list[str]:
    return [f"{k:05d}" for k in range(shard_count(path, shard_size))]


def default_id(desc: str) -> str:
    return "d" + hashlib.sha1(desc.encode()).hexdigest()[:12]


def _parse(raw: bytes, is_jsonl: bool, max_chars: int) -> Description | tuple[str, str]:
    """A Description, or (reason, detail) saying why the line is bad."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "invalid_utf8", f"byte {exc.start} is not UTF-8; re-encode the file as UTF-8"
    if is_jsonl:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            return "invalid_json", f"{exc.msg} at column {exc.colno}; each line must be one JSON object"
        if not isinstance(obj, dict):
            return "not_an_object", 'each line must be a JSON object like {"id": "...", "desc": "..."}'
        desc, rid = obj.get("desc"), obj.get("id")
        if desc is None:
            return "missing_desc", 'the object has no "desc" key'
        if not isinstance(desc, str):
            return "desc_not_string", f'"desc" is a {type(desc).__name__}, not a string'
        if rid is not None and (isinstance(rid, bool) or not isinstance(rid, str | int) or str(rid).strip() == ""):
            return "bad_id", '"id" must be a non-empty string or an integer'
    else:
        desc, rid = text, None
    desc = desc.strip()
    if not desc:
        return "empty_desc", "the description is empty or whitespace"
    if len(desc) > max_chars:
        return "desc_too_long", f"{len(desc)} characters, more than io.max_desc_chars={max_chars}"
    return Description(id=str(rid).strip() if rid is not None else default_id(desc), desc=desc)


def read_descriptions(path: str | Path, *, max_chars: int) -> tuple[list[tuple[int, Description]], list[BadLine]]:
    """Every non-blank line, either parsed (with its line number) or as a bad line with a reason."""
    path = Path(path)
    _check_exists(path)
    is_jsonl = path.suffix.lower() != ".txt"
    good: list[tuple[int, Description]] = []
    bad: list[BadLine] = []
    seen_ids: dict[str, int] = {}
    seen_descs: dict[str, int] = {}
    for number, raw in _lines(path):
        parsed = _parse(raw, is_jsonl, max_chars)
        if isinstance(parsed, tuple):
            bad.append(BadLine(number, *parsed))
        elif parsed.id in seen_ids:
            bad.append(BadLine(number, "duplicate_id", f"id {parsed.id!r} was used on line {seen_ids[parsed.id]}"))
        elif parsed.desc in seen_descs:
            bad.append(BadLine(number, "duplicate_desc", f"same description as line {seen_descs[parsed.desc]}"))
        else:
            seen_ids[parsed.id] = seen_descs[parsed.desc] = number
            good.append((number, parsed))
    if not good and not bad:
        raise InputError(f"description file {path} holds no descriptions: add one per line")
    return good, bad


def split_into_shards(
    path: str | Path, shard_size: int, *, max_chars: int, on_bad_line: str
) -> tuple[list[list[Description]], list[dict]]:
    """Shards in order and the quarantine records; raises InputError for bad lines unless skipping."""
    good, bad = read_descriptions(path, max_chars=max_chars)
    if bad and on_bad_line == "error":
        shown = "\n".join("  " + b.describe(path) for b in bad[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise InputError(
            f"{len(bad)} bad line(s) in {path}:\n{shown}{more}\n"
            "Fix them, or set io.on_bad_line: skip to quarantine them and go on."
        )
    # Positions count non-blank lines, good or bad, as count_descriptions does.
    positions = {n: i for i, (n, _) in enumerate(_lines(Path(path)))}
    shards: list[list[Description]] = [[] for _ in range(shard_count(path, shard_size))]
    for number, desc in good:
        shards[positions[number] // shard_size].append(desc)
    quarantine = [{"file": str(path), "line": b.line, "reason": b.reason, "detail": b.detail} for b in bad]
    return shards, quarantine
