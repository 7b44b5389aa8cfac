"""Reading users' description files (JSONL `{"id"?, "desc"}` or `.txt`, one per line) and sharding them.

Shard k holds the non-blank input lines [k * shard_size, (k + 1) * shard_size). When Snakemake builds
the DAG, one pass over the file (`index_descriptions`, cached by the file's size and mtime) checks
every line and records each shard's byte range and a digest of its lines (and of which repeat an earlier one): a
shard job reads only its range, and appending lines changes only the digests of the last shard and
the new ones, so only those shards rerun.
"""

from __future__ import annotations

import hashlib
import json
import json.scanner
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

from evoselfcode.config import Config
from evoselfcode.datagen.schemas import Description, Quarantined
from evoselfcode.layout import STATE_DIR

BOM = b"\xef\xbb\xbf"
NUL_CHARACTER, CR_LINE_ENDS, LONE_SURROGATE = "nul_character", "cr_line_ends", "lone_surrogate"
# Reasons that made good lines of INDEX_VERSION 1 bad: such a line is marked in its shard's digest, so the shard is
# split again and the line leaves the shard's outputs for the quarantine (its bytes, all v1 digested, did not change).
NEWLY_BAD = {NUL_CHARACTER, CR_LINE_ENDS, LONE_SURROGATE}
CR_INSIDE = CR_LINE_ENDS, "a CR inside the line: save the file with LF or CRLF line ends"
GZIP_MAGIC = b"\x1f\x8b"
# A description repeated on a line without an id (whose id would be its hash) is set aside, not an error: the
# quarantine holds it with this reason; a repeat the user gave an id of its own is still a bad line.
REPEATED_DESC = "repeated_desc"
INDEX_VERSION = 3  # 3: repeats without an id are set aside (`repeats`), no longer bad lines


class InputError(ValueError):
    """The description file cannot be used as it is; the message names the file and lines."""


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str
    detail: str

    def describe(self, path: str | Path) -> str:
        return f"{path}:{self.line}: {self.reason}: {self.detail}"


@dataclass(frozen=True)
class Span:
    """One shard: its byte range in the input, the line number at its start, and a digest of its lines."""

    id: str
    start: int
    end: int
    start_line: int
    digest: str


@dataclass
class InputIndex:
    path: str
    spans: list[Span] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    count: int = 0
    repeats: list[BadLine] = field(default_factory=list)  # set aside whatever io.on_bad_line says

    @property
    def shard_ids(self) -> list[str]:
        return [s.id for s in self.spans]

    def span(self, shard: str) -> Span:
        try:
            return self._spans_by_id[shard]
        except KeyError:
            raise InputError(
                f"{self.path} has no shard {shard!r}: its {len(self.spans)} shard(s) are "
                f"{self.spans[0].id}..{self.spans[-1].id} at io.shard_size as configured; check --shard"
            ) from None

    @cached_property
    def _spans_by_id(self) -> dict[str, Span]:  # the DAG asks once per shard: a scan each would be quadratic
        return {s.id: s for s in self.spans}

    def bad_digest(self) -> str:
        """A digest of the lines the quarantine holds (as before repeats were set aside, when there are none)."""
        repeats = [{"repeats": [asdict(b) for b in self.repeats]}] if self.repeats else []
        listed = [asdict(b) for b in self.bad] + repeats
        return hashlib.sha256(json.dumps(listed).encode()).hexdigest()[:16]

    def quarantine(self) -> list[Quarantined]:
        """The bad lines and the repeated descriptions, in line order."""
        lines = sorted(self.bad + self.repeats, key=lambda b: b.line)
        return [Quarantined(file=self.path, line=b.line, reason=b.reason, detail=b.detail) for b in lines]

    def error(self) -> InputError:
        shown = "\n".join("  " + b.describe(self.path) for b in self.bad[:20])
        more = f"\n  ... and {len(self.bad) - 20} more" if len(self.bad) > 20 else ""
        # a file of plain descriptions not named .txt is read as JSONL: no line is good
        txt = len(self.bad) == self.count and self.bad[0].reason == "invalid_json" and _is_jsonl(Path(self.path))
        hint = "\nFor plain-text descriptions, one a line, name the file .txt." if txt else ""
        return InputError(
            f"{len(self.bad)} bad line(s) in {self.path}:\n{shown}{more}\n"
            f"Fix them, or set io.on_bad_line: skip to quarantine them and go on.{hint}"
        )


def _lines(path: Path, start: int = 0, end: int | None = None, first_line: int = 1) -> Iterator[tuple[int, int, bytes]]:
    """Non-blank lines as (line number, byte offset after the line, raw bytes without the line end)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        offset = start
        for number, raw in enumerate(fh, first_line):
            offset += len(raw)
            if raw.startswith(BOM):  # on any line: files saved with one are often concatenated (`cat a b`)
                raw = raw[len(BOM) :]
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                yield number, offset, raw
            if end is not None and offset >= end:
                return


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"description file {path} does not exist (io.input_desc_path): check the path")
    with open(path, "rb") as fh:
        if fh.read(2) == GZIP_MAGIC:  # else every line would be "not UTF-8"
            raise InputError(f"{path} is gzip-compressed: decompress it (gunzip -k) and set io.input_desc_path to that")


def default_id(desc: str) -> str:
    return "d" + hashlib.sha1(desc.encode()).hexdigest()[:12]


def _parse(raw: bytes, is_jsonl: bool, max_chars: int) -> Description | tuple[str, str]:
    """A Description, or (reason, detail) saying why the line is bad."""
    parsed = _check(raw, is_jsonl, max_chars)
    if parsed[0] is not None:
        return parsed  # type: ignore[return-value]
    _, rid, desc = parsed
    return Description(id=default_id(desc) if rid is None else rid, desc=desc)


_scan_once = json.scanner.make_scanner(json.JSONDecoder())


def _loads(text: str) -> object:
    """`json.loads`, without its Python layers for a line that is exactly one JSON value (1.7 -> 0.6 s per 1M)."""
    try:
        obj, end = _scan_once(text, 0)
    except (StopIteration, json.JSONDecodeError):
        return json.loads(text)  # leading whitespace, or the error message json.loads gives
    return obj if end == len(text) else json.loads(text)


def _check(raw: bytes, is_jsonl: bool, max_chars: int) -> tuple[None, str | None, str] | tuple[str, str]:
    """(None, id or None when the line has none, desc) for a good line, or (reason, detail); no model objects, as
    it runs once per input line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "invalid_utf8", f"byte {exc.start} is not UTF-8; re-encode the file as UTF-8"
    if "\0" in text:  # before any other check: a UTF-16 line breaks them all (its CRLF leaves a CR and a NUL)
        return NUL_CHARACTER, "the line holds a NUL character: if the file is UTF-16, re-encode it as UTF-8"
    if is_jsonl:
        try:
            obj = _loads(text)
        except json.JSONDecodeError as exc:
            if "\r" in text:  # JSON objects joined by CRs: a file with old Mac line ends is one line
                return CR_INSIDE
            # json's "Unterminated string starting at" already ends in "at"
            where = exc.msg.removesuffix(" at")
            return "invalid_json", f"{where} at column {exc.colno}; each line must be one JSON object"
        if not isinstance(obj, dict):
            return "not_an_object", 'each line must be a JSON object like {"id": "...", "desc": "..."}'
        desc, rid = obj.get("desc"), obj.get("id")
        if desc is None:
            return "missing_desc", 'the object has no "desc" key'
        if not isinstance(desc, str):
            return "desc_not_string", f'"desc" is a {type(desc).__name__}, not a string'
        if rid is not None and (isinstance(rid, bool) or not isinstance(rid, str | int) or str(rid).strip() == ""):
            return "bad_id", '"id" must be a non-empty string or an integer'
        if "\\u" in text and not _encodable(desc, rid):  # only a \uD800-\uDFFF escape makes such a string
            return LONE_SURROGATE, "a \\uD800-\\uDFFF escape that is half a character; fix the escape or drop it"
    else:
        desc, rid = text, None
        if "\r" in text:  # with no LF in the file, every description would be on this one line
            return CR_INSIDE
    desc = desc.strip()
    if not desc:
        return "empty_desc", "the description is empty or whitespace"
    if "\0" in desc:  # a \u0000 escape
        return NUL_CHARACTER, "the description holds a NUL character: if the file is UTF-16, re-encode it as UTF-8"
    if len(desc) > max_chars:
        return "desc_too_long", f"{len(desc)} characters, more than io.max_desc_chars={max_chars}"
    return None, str(rid).strip() if rid is not None else None, desc


def _encodable(*texts: object) -> bool:
    try:
        for text in texts:
            str(text).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_jsonl(path: Path) -> bool:
    return path.suffix.lower() != ".txt"


def _scan(
    path: Path, max_chars: int, shard_size: int, keep: bool = False
) -> tuple[list[tuple[int, Description]], InputIndex]:
    """One pass: every line checked (duplicates included), the shard spans, and with `keep` the good lines."""
    _check_exists(path)
    is_jsonl = _is_jsonl(path)
    good: list[tuple[int, Description]] = []
    index = InputIndex(path=str(path))
    seen_ids: dict[str, int] = {}
    seen_descs: dict[bytes, int] = {}  # digests, so a million descriptions cost little memory
    start, start_line, digest = 0, 1, hashlib.sha256()
    for number, offset, raw in _lines(path):
        parsed = _check(raw, is_jsonl, max_chars)
        mark = b""
        if parsed[0] is not None:
            index.bad.append(BadLine(number, *parsed))
            mark = b"\0bad\n" if parsed[0] in NEWLY_BAD else b""
        else:
            _, own_id, desc = parsed
            rid = default_id(desc) if own_id is None else own_id
            desc_key = hashlib.sha1(desc.encode()).digest()
            first = seen_ids.get(rid) or seen_descs.get(desc_key)
            if own_id is None and desc_key in seen_descs:
                detail = f"same description as line {seen_descs[desc_key]}, set aside (the line has no id)"
                index.repeats.append(BadLine(number, REPEATED_DESC, detail))
            elif rid in seen_ids:
                index.bad.append(BadLine(number, "duplicate_id", f"id {rid!r} was used on line {seen_ids[rid]}"))
            elif desc_key in seen_descs:
                index.bad.append(BadLine(number, "duplicate_desc", f"same description as line {seen_descs[desc_key]}"))
            else:
                seen_ids[rid] = seen_descs[desc_key] = number
                if keep:
                    good.append((number, Description(id=rid, desc=desc)))
            # a repeat of an earlier shard's line is not in this shard's bytes: the digest says so, so freeing it by
            # an edit there splits this one again (a repeat within the shard is freed by editing the shard itself)
            mark = b"\0repeats\n" if first is not None and first < start_line else b""
        digest.update(mark + raw + b"\n")
        index.count += 1
        if index.count % shard_size == 0:
            index.spans.append(Span(f"{len(index.spans):05d}", start, offset, start_line, digest.hexdigest()[:16]))
            start, start_line, digest = offset, number + 1, hashlib.sha256()
    if index.count == 0:
        raise InputError(f"description file {path} holds no descriptions: add one per line")
    if index.count % shard_size:
        end = path.stat().st_size
        index.spans.append(Span(f"{len(index.spans):05d}", start, end, start_line, digest.hexdigest()[:16]))
    return good, index


def read_descriptions(path: str | Path, *, max_chars: int) -> tuple[list[tuple[int, Description]], list[BadLine]]:
    """Every non-blank line, either parsed (with its line number) or as a bad or repeated line with a reason."""
    good, index = _scan(Path(path), max_chars, shard_size=1, keep=True)
    return good, sorted(index.bad + index.repeats, key=lambda b: b.line)


def quarantine_counts(records: Iterable[dict]) -> dict[str, int]:
    """The quarantine's lines counted apart: bad lines (io.on_bad_line: skip), and repeated descriptions set aside."""
    reasons = [r["reason"] for r in records]
    repeated = reasons.count(REPEATED_DESC)
    return {"quarantined_input_lines": len(reasons) - repeated, "repeated_descriptions": repeated}


def index_descriptions(path: str | Path, *, shard_size: int, max_chars: int) -> InputIndex:
    """Check every line and cut the file into shards of `shard_size` non-blank lines."""
    return _scan(Path(path), max_chars, shard_size)[1]


def cached_index(path: str | Path, *, shard_size: int, max_chars: int, cache_dir: str | Path) -> InputIndex:
    """`index_descriptions`, kept on disk for as long as the file's size and mtime stay the same."""
    path = Path(path)
    _check_exists(path)
    stat = path.stat()
    key = json.dumps([INDEX_VERSION, str(path.resolve()), stat.st_size, stat.st_mtime_ns, shard_size, max_chars])
    cache = Path(cache_dir) / f"index-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    try:
        data = json.loads(cache.read_text())
        return InputIndex(
            path=data["path"],
            spans=[Span(**s) for s in data["spans"]],
            bad=[BadLine(**b) for b in data["bad"]],
            count=data["count"],
            repeats=[BadLine(**b) for b in data["repeats"]],
        )
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        pass
    index = index_descriptions(path, shard_size=shard_size, max_chars=max_chars)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{id(index)}.tmp")
    tmp.write_text(json.dumps(asdict(index)))
    tmp.replace(cache)
    return index


def read_shard(index: InputIndex, shard: str, *, max_chars: int) -> list[Description]:
    """The good descriptions of one shard, reading only its byte range."""
    span = index.span(shard)
    bad_lines = {b.line for b in index.bad + index.repeats}
    path = Path(index.path)
    out = []
    for number, _, raw in _lines(path, span.start, span.end, span.start_line):
        if number not in bad_lines:
            parsed = _parse(raw, _is_jsonl(path), max_chars)
            assert isinstance(parsed, Description), f"{path}:{number} changed since it was indexed"
            out.append(parsed)
    return out


def index_input(cfg: Config, source: str | None = None, cache_dir: Path = STATE_DIR) -> InputIndex:
    """The checked, sharded input; its bad lines are an error unless `io.on_bad_line: skip`."""
    io = cfg.io
    source = source or io.input_desc_path
    index = cached_index(source, shard_size=io.shard_size, max_chars=io.max_desc_chars, cache_dir=cache_dir)
    if index.bad and io.on_bad_line == "error":
        raise index.error()
    return index
