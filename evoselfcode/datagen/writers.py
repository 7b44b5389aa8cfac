"""Atomic writing of JSON and JSONL: a killed job never leaves a file that looks complete."""

from __future__ import annotations

import glob
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes 0600 files (mkdtemp 0700 folders); outputs get the modes any program's get (0644/0755 under 0022)
FILE_MODE = 0o666 & ~_read_umask()
DIR_MODE = 0o777 & ~_read_umask()


def _dumps(record: BaseModel | dict) -> str:
    if isinstance(record, BaseModel):
        return record.model_dump_json()
    return json.dumps(record, ensure_ascii=False, sort_keys=False)


@contextmanager
def atomic_open(path: str | Path, *, shared: bool = False) -> Iterator[IO[str]]:
    """Write to a temporary file beside `path`, then fsync and rename it into place.

    `shared`: other processes may write the same content at once, so their temporary files are left alone.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in [] if shared else path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
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
