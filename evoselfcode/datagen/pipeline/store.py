"""The answer store: every model answer kept under the digest of everything that determines it.

One file per answer, `<dir>/answers/<2 hex>/<2 hex>/<key>.json`, written to a temporary name and renamed into
place. A rename is atomic on local and network file systems alike, so many jobs on many nodes can write
the store at once with no lock, and a job killed mid-write leaves only a temporary file, never a torn
answer under a real name. Each file starts with its key and a checksum of the answer after it; a file that
fails either is read as missing (and asked again), never returned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from evoselfcode.clients.base import Choice

log = logging.getLogger("evoselfcode.store")

TMP_SUFFIX = ".tmp"


def request_key(server: str, route: str, prompt: str, params: dict) -> str:
    """The digest of a request: the server's identity, the route, the prompt and every parameter sent."""
    canonical = json.dumps({"server": server, "route": route, "prompt": prompt, "params": params},
                           sort_keys=True, ensure_ascii=False)  # fmt: skip
    return hashlib.sha256(canonical.encode()).hexdigest()


def encode(key: str, choices: list[Choice]) -> str:
    """An answer file's text: a line with its key and the checksum of the rest, then the choices as JSON."""
    body = json.dumps([asdict(c) for c in choices], ensure_ascii=False)
    return f"{key} {_checksum(body.encode())}\n{body}"


def _checksum(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:16]


@dataclass(frozen=True)
class StoreSize:
    answers: int
    bytes: int
    temporary: int  # files of writes a kill interrupted


class AnswerStore:
    """Model answers under their request key, shared by every job and run that points at `root`."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()  # `store: {dir: ~/answers}` in a profile means the home folder
        self._tmp_names = threading.local()

    def path(self, key: str) -> Path:
        return self.root / "answers" / key[:2] / key[2:4] / f"{key}.json"

    def get(self, key: str) -> list[Choice] | None:
        """The stored answer, or None when there is none or its file is damaged."""
        path = self.path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        head, _, body = raw.partition(b"\n")
        try:
            if head.decode("ascii", "replace") != f"{key} {_checksum(body)}":
                raise ValueError("key or checksum does not match")
            data = json.loads(body.decode("utf-8"))
            if not isinstance(data, list) or not data:  # an answer has at least one choice
                raise ValueError("not a list of choices")
            return [_choice(c) for c in data]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # bad JSON and UTF-8 are ValueErrors
            log.warning("%s: damaged stored answer (%s); it is asked again", path, exc)
            return None

    def put(self, key: str, choices: list[Choice]) -> None:
        """Store an answer: written aside, flushed to disk, then renamed into place."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = encode(key, choices)
        # unique per process and thread: two jobs writing the same answer never share a temporary file
        tmp = path.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}{TMP_SUFFIX}")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def keys(self) -> Iterator[str]:
        for path in (self.root / "answers").glob("*/*/*.json"):
            yield path.stem

    def size(self) -> StoreSize:
        answers = size = temporary = 0
        for path in (self.root / "answers").glob("*/*/*"):
            if path.name.endswith(TMP_SUFFIX):
                temporary += 1
            elif path.suffix == ".json":
                try:
                    size += path.stat().st_size
                except FileNotFoundError:  # pruned by another process since it was listed
                    continue
                answers += 1
        return StoreSize(answers, size, temporary)

    def prune(self, used: Iterable[str], *, tmp_older_than_s: float = 3600.0) -> int:
        """Remove the answers whose key is not in `used`, and stale temporary files; returns how many answers."""
        keep = set(used)
        removed = 0
        cutoff = time.time() - tmp_older_than_s
        for path in (self.root / "answers").glob("*/*/*"):
            if path.name.endswith(TMP_SUFFIX):
                try:
                    stale = path.stat().st_mtime < cutoff  # a younger one may be a write in progress
                except FileNotFoundError:  # that write has just been renamed into place
                    continue
                if stale:
                    path.unlink(missing_ok=True)
            elif path.suffix == ".json" and path.stem not in keep:
                try:
                    path.unlink()
                except FileNotFoundError:  # another prune was first: not this one's to count
                    continue
                removed += 1
        return removed


def _choice(data: dict) -> Choice:
    return Choice(
        text=data["text"],
        finish_reason=data.get("finish_reason"),
        tokens=tuple(data.get("tokens", ())),
        token_logprobs=tuple(data.get("token_logprobs", ())),
        usage=data.get("usage", {}),
        latency=data.get("latency", 0.0),
    )


# Fields of a /v1/models entry that say which weights answer; others (created, permissions) change per call.
_REPORTED_FIELDS = ("id", "root", "parent", "owned_by", "max_model_len", "meta")


def server_report(client, model: str) -> dict | None:
    """What the server says about the model it serves (`GET /v1/models`), or None when it cannot say."""
    transport = getattr(client, "transport", None)
    if transport is None:
        return None
    data, _ = transport.get("/v1/models", lambda d: d)
    entries = [e for e in data.get("data", []) if isinstance(e, dict)] if isinstance(data, dict) else []
    entries = [e for e in entries if e.get("id") == model] or entries
    return {"models": [{k: e[k] for k in _REPORTED_FIELDS if k in e} for e in entries]}


def server_identity(cfg, client, store: AnswerStore) -> str:
    """The digest of the server an answer comes from: its address, shape, model, weights and its own report.

    When the server cannot be asked (it is down, or has no /v1/models), the report last recorded for this
    address and model stands in, so a rerun served wholly from the store does not need the server.
    """
    from evoselfcode.clients.errors import LLMError
    from evoselfcode.config import EMBEDDED
    from evoselfcode.embedded import PRESETS

    api = cfg.api
    # without the user and password in the address: a rotated one reaches the same server (and no secret is hashed)
    address = re.sub(r"//[^/@]+@", "//", api.base_url)
    configured = {"base_url": address, "mode": api.mode, "route": api.route, "model": api.model,
                  "field_map": api.field_map}  # fmt: skip
    if api.base_url == EMBEDDED:  # its address changes per start; its weights do not
        configured["weights"] = PRESETS[cfg.embedded.model].sha256
    record = store.root / "servers" / f"{request_key('', '', '', configured)[:32]}.json"
    try:
        report = server_report(client, api.model)
    except LLMError as exc:
        try:
            report = json.loads(record.read_text(encoding="utf-8"))
            log.warning("the server's own report could not be read (%s); using the one recorded before", exc)
        except (OSError, ValueError):
            report = None
            log.warning("the server's own report could not be read (%s), and none is recorded", exc)
    else:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f".{record.name}.{os.getpid()}{TMP_SUFFIX}")
        tmp.write_text(json.dumps(report, sort_keys=True), encoding="utf-8")
        os.replace(tmp, record)
    return request_key("", "", "", {**configured, "reported": report})
