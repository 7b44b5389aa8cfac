"""Reading back the JSONL files this pipeline wrote (users' inputs go through `inputs.py`)."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


def parse_record(
    line: str, where: str | Path, number: int, fix: str = "delete it and rerun", error: type[Exception] = ValueError
) -> dict:
    """One JSONL line as a JSON object; else `error` naming `where` (the file) and the line, and saying `fix`."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise error(f"{where}:{number}: not valid JSON ({exc.msg}); {fix}") from None
    if not isinstance(record, dict):
        raise error(f"{where}:{number}: not a JSON object; {fix}")
    return record


def numbered_records(
    lines: Iterable[str], where: str | Path, fix: str = "delete it and rerun", error: type[Exception] = ValueError
) -> Iterator[tuple[int, dict]]:
    """`(line number, record)` of each non-blank line of an open JSONL file; errors as `parse_record`'s."""
    for number, line in enumerate(lines, 1):
        if line.strip():
            yield number, parse_record(line, where, number, fix, error)


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """Records of a file this pipeline wrote (inputs from users go through `inputs.py`)."""
    with open(path, encoding="utf-8") as fh:
        for _, record in numbered_records(fh, path):
            yield record


def scan_jsonl(path: str | Path) -> Iterator[tuple[int, int, dict]]:
    """`(byte offset, byte length, record)` of each record of a file this pipeline wrote, for `LineReader`."""
    offset = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.decode("utf-8")
            if line.strip():
                yield offset, len(raw), parse_record(line, path, number)
            offset += len(raw)


class LineReader:
    """Reads records back by (file number, byte offset, byte length), as `scan_jsonl` found them.

    Keeps at most `max_open` of the files open: a merge reads from thousands of shards.
    """

    def __init__(self, paths: Sequence[str | Path], max_open: int = 64) -> None:
        self.paths = list(paths)
        self.max_open = max_open
        self._fds: OrderedDict[int, int] = OrderedDict()  # least recently read first

    def read(self, file: int, offset: int, length: int) -> dict:
        data = os.pread(self._fd(file), length, offset)
        if len(data) != length:
            raise ValueError(f"{self.paths[file]} changed while it was read (offset {offset}); rerun")
        return json.loads(data.decode("utf-8"))

    def _fd(self, file: int) -> int:
        fd = self._fds.get(file)
        if fd is None:
            if len(self._fds) >= self.max_open:
                os.close(self._fds.popitem(last=False)[1])
            fd = self._fds[file] = os.open(self.paths[file], os.O_RDONLY)
        else:
            self._fds.move_to_end(file)
        return fd

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.popitem()[1])

    def __enter__(self) -> LineReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_models(path: str | Path, model: type[T]) -> list[T]:
    return [model.model_validate(r) for r in read_jsonl(path)]
