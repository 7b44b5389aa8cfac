"""JSONL reading and atomic writing: a killed job never leaves a file that looks complete."""

from __future__ import annotations

import glob
import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes 0600 files; outputs get the mode any program's files get (0644 under umask 0022)
FILE_MODE = 0o666 & ~_read_umask()


def _dumps(record: BaseModel | dict) -> str:
    if isinstance(record, BaseModel):
        return record.model_dump_json()
    return json.dumps(record, ensure_ascii=False, sort_keys=False)


@contextmanager
def atomic_open(path: str | Path) -> Iterator[IO[str]]:
    """Write to a temporary file beside `path`, then fsync and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)  # left by a writer that was killed; only one job writes a given output
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def jsonl_writer(path: str | Path) -> Iterator[Callable[[BaseModel | dict], None]]:
    """`write(record)`, one record at a time, to a file that appears complete or not at all."""
    with atomic_open(path) as fh:
        yield lambda record: fh.write(_dumps(record) + "\n")


def write_jsonl(path: str | Path, records: Iterable[BaseModel | dict]) -> int:
    count = 0
    with atomic_open(path) as fh:
        for record in records:
            fh.write(_dumps(record) + "\n")
            count += 1
    return count


def write_json(path: str | Path, data: Any, sort_keys: bool = True) -> None:
    """`sort_keys=False` keeps the dict's own order, e.g. a funnel's stages in the order samples pass them."""
    with atomic_open(path) as fh:
        json.dump(data, fh, indent=2, sort_keys=sort_keys, ensure_ascii=False)
        fh.write("\n")


def _loads(line: str, path: str | Path, number: int) -> dict:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg}); delete it and rerun") from None


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """Records of a file this pipeline wrote (inputs from users go through `inputs.py`)."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                yield _loads(line, path, number)


def scan_jsonl(path: str | Path) -> Iterator[tuple[int, int, dict]]:
    """`(byte offset, byte length, record)` of each record of a file this pipeline wrote, for `LineReader`."""
    offset = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.decode("utf-8")
            if line.strip():
                yield offset, len(raw), _loads(line, path, number)
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
