"""The request journal (docs/architecture.md, "Invariants"): answers kept as they arrive, so a rerun after a crash
asks only what was never answered. Append-only JSONL, one answered request a line, keyed by the hash
of the canonical request; a line cut short by a kill is ignored when read back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from evoselfcode.clients.base import Choice


def request_key(prompt: str, params: dict, model: str) -> str:
    canonical = json.dumps({"model": model, "prompt": prompt, "params": params}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.answers: dict[str, list[Choice]] = {}
        if self.path.exists():
            # errors="replace": a kill may cut the last line inside a character; that line is then not JSON either
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # the tail of a write that a kill interrupted
                    self.answers[entry["key"]] = [_choice(c) for c in entry["choices"]]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if self._fh.tell() and not _ends_with_newline(self.path):
            self._fh.write("\n")  # end the cut line, or the next answer would be glued to it and lost

    def get(self, key: str) -> list[Choice] | None:
        return self.answers.get(key)

    def record(self, key: str, choices: list[Choice]) -> None:
        self.answers[key] = choices
        self._fh.write(json.dumps({"key": key, "choices": [asdict(c) for c in choices]}, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


def _choice(data: dict) -> Choice:
    return Choice(
        text=data["text"],
        finish_reason=data.get("finish_reason"),
        tokens=tuple(data.get("tokens", ())),
        token_logprobs=tuple(data.get("token_logprobs", ())),
        usage=data.get("usage", {}),
        latency=data.get("latency", 0.0),
    )
