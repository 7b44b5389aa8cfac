"""Lint (and format) many generated sources with one `ruff check` (`ruff format`) process.

The sources are written to files in one temporary directory and only read by ruff; nothing is run.
The directory is in memory (/dev/shm) when that has room: creating a file on this project's ext4
disk cost 0.1-0.5 ms of kernel time, as much as all other checks of a sample together, in /dev/shm ~0.01 ms.
It holds a 4 KB page per source while ruff runs (8 MB for a shard of 2,000; 400 MB for 100,000).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

SYNTAX_ERROR = "syntax-error"

# What ruff has called a parse failure over the versions: E999, then a null code, then "invalid-syntax".
_SYNTAX_CODES = {None, "E999", "invalid-syntax"}


class RuffError(RuntimeError):
    """ruff itself failed (not found, crashed, bad arguments, or output that is not its JSON)."""


def ruff_command() -> list[str]:
    """The ruff binary beside this interpreter, else `python -m ruff`, else ruff on PATH."""
    sibling = Path(sys.executable).parent / ("ruff.exe" if sys.platform == "win32" else "ruff")
    if sibling.is_file():
        return [str(sibling)]
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    on_path = shutil.which("ruff")
    if on_path:
        return [on_path]
    raise RuffError("ruff is not installed: no ruff beside the interpreter, no ruff module, none on PATH")


_SHARED_MEMORY = Path("/dev/shm")
# Room asked of /dev/shm per file beyond its bytes (a page each, and more), so it never fills up.
_ROOM_PER_FILE = 16 * 1024


def _temporary_root(sources: Sequence[str]) -> str | None:
    """/dev/shm if it is a writable directory with room for the sources many times over, else the default."""
    try:
        if not os.access(_SHARED_MEMORY, os.W_OK | os.X_OK):
            return None
        stats = os.statvfs(_SHARED_MEMORY)
    except OSError:
        return None
    needed = sum(map(len, sources)) * 4 + len(sources) * _ROOM_PER_FILE
    return str(_SHARED_MEMORY) if stats.f_bavail * stats.f_frsize > 2 * needed else None


_PREFIX = "evoselfcode-ruff-"


def _remove_orphans(root: Path) -> None:
    """Directories a killed job left in /dev/shm (named after their process, which is gone): they hold RAM."""
    for path in root.glob(f"{_PREFIX}*-*"):
        pid = path.name[len(_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def _file_name(index: int) -> str:
    return f"s{index:07d}.py"


def _rule_code(diagnostic: dict) -> str:
    code = diagnostic.get("code")
    return SYNTAX_ERROR if code in _SYNTAX_CODES else str(code)


def _location(diagnostic: dict) -> tuple[int, int]:
    loc = diagnostic.get("location") or {}
    return loc.get("row", 0), loc.get("column", 0)


def _write_sources(root: Path, sources: Sequence[str]) -> None:
    directory = os.open(root, os.O_RDONLY)

    def in_directory(name: str, flags: int) -> int:  # relative to the open directory: 2x faster
        return os.open(name, flags, 0o600, dir_fd=directory)

    try:
        for index, source in enumerate(sources):
            with open(_file_name(index), "xb", opener=in_directory) as file:
                # surrogatepass keeps a lone surrogate from a JSON string as bytes ruff reports (E902), not a crash
                file.write(source.encode("utf-8", "surrogatepass"))
    finally:
        os.close(directory)


def _run_ruff(sources: Sequence[str], rules: Sequence[str], temp_root: str | None) -> subprocess.CompletedProcess:
    """ruff over the sources written as files in a new directory under `temp_root` (None: the default)."""
    if temp_root is not None:
        _remove_orphans(Path(temp_root))
    with tempfile.TemporaryDirectory(prefix=f"{_PREFIX}{os.getpid()}-", dir=temp_root) as tmp:
        root = Path(tmp)
        _write_sources(root, sources)
        command = [
            *ruff_command(),
            "check",
            "--output-format=json",
            f"--select={','.join(rules)}",
            "--no-cache",
            "--isolated",
            "--ignore-noqa",
            "--no-respect-gitignore",
            "--no-fix",
            f"--target-version=py3{sys.version_info.minor}",
            "--quiet",
            str(root),
        ]
        return subprocess.run(command, capture_output=True, text=True, cwd=root, check=False)


def ruff_check(sources: Sequence[str], rules: Sequence[str]) -> list[list[str]]:
    """Each source's violated rule codes, in order of position in the source; parse failures are "syntax-error".

    One ruff process lints all sources; a source that does not parse still lets the others be linted.
    `# noqa` comments in the sources are ignored: the code under test does not get to silence its checks.
    """
    if not sources:
        return []
    if not rules:
        return [[] for _ in sources]
    root = _temporary_root(sources)
    try:
        proc = _run_ruff(sources, rules, root)
    except OSError:
        if root is None:
            raise
        proc = _run_ruff(sources, rules, None)  # /dev/shm filled up under parallel jobs: the disk has room
    if proc.returncode not in (0, 1):
        raise RuffError(f"ruff check exited with {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    try:
        diagnostics = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise RuffError(f"ruff check printed something that is not JSON: {proc.stdout[:200]!r}") from exc
    index_of = {_file_name(i): i for i in range(len(sources))}
    found: list[list[tuple[tuple[int, int], str]]] = [[] for _ in sources]
    for diagnostic in diagnostics:
        index = index_of.get(Path(diagnostic.get("filename", "")).name)
        if index is None:
            raise RuffError(f"ruff reported a file it was not given: {diagnostic.get('filename')!r}")
        found[index].append((_location(diagnostic), _rule_code(diagnostic)))
    return [[code for _, code in sorted(per_source)] for per_source in found]


def _run_format(sources: Sequence[str], temp_root: str | None) -> list[str | None]:
    """`ruff format` over the sources as files in a new directory; each one's formatted text, None where it failed."""
    if temp_root is not None:
        _remove_orphans(Path(temp_root))
    with tempfile.TemporaryDirectory(prefix=f"{_PREFIX}{os.getpid()}-", dir=temp_root) as tmp:
        root = Path(tmp)
        _write_sources(root, sources)
        version = f"--target-version=py3{sys.version_info.minor}"
        command = [*ruff_command(), "format", "--isolated", "--no-cache", version, "--quiet", str(root)]
        proc = subprocess.run(command, capture_output=True, text=True, cwd=root, check=False)
        if proc.returncode not in (0, 2):  # 2: some file did not parse, and was left as it was
            raise RuffError(f"ruff format exited with {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
        failed = {Path(m).name for m in _FORMAT_FAILED.findall(proc.stderr)}
        out: list[str | None] = []
        for index in range(len(sources)):
            name = _file_name(index)
            out.append(None if name in failed else (root / name).read_bytes().decode("utf-8", "surrogatepass"))
        return out


_FORMAT_FAILED = re.compile(r"^error: Failed to (?:parse|format) (\S+?):", re.M)


def formatter_version() -> str:
    """Which formatter the kept functions go through, for merge_code's params: a ruff whose output may differ (or
    an older run, whose functions were not formatted) writes the final records again."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"ruff format {version('ruff')}"
    except PackageNotFoundError:  # ruff only on PATH: its version is not known without running it
        return "ruff format"


def ruff_format(sources: Sequence[str]) -> list[str]:
    """Each source as `ruff format` (its defaults, no project's config) writes it, with one `ruff format` process;
    a source ruff cannot format stays as it is. A source without a final newline gets none back.

    Formatting keeps the AST, so what the checks judged is what is kept; the same ruff gives the same bytes.
    """
    if not sources:
        return []
    root = _temporary_root(sources)
    try:
        formatted = _run_format(sources, root)
    except OSError:
        if root is None:
            raise
        formatted = _run_format(sources, None)  # /dev/shm filled up under parallel jobs: the disk has room
    return [
        source if text is None else (text if source.endswith("\n") else text.removesuffix("\n"))
        for source, text in zip(sources, formatted, strict=True)
    ]
