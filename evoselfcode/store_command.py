"""`evoselfcode store`: the answer store's size, how many of a run's answers it gave, and pruning it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from evoselfcode.config import Config
from evoselfcode.datagen.pipeline.store import AnswerStore
from evoselfcode.datagen.readers import read_jsonl
from evoselfcode.layout import Layout, timing_files


def run_timing_files(cfg: Config) -> list[Path]:
    run = Layout.of(cfg)
    return [*timing_files(run.names.root), *timing_files(run.code.root)]


def used_keys(files: Iterable[Path]) -> set[str]:
    return {r["key"] for f in files for r in read_jsonl(f) if r.get("key")}


def show_store(cfg: Config, *, prune: bool = False, keep: Iterable[str] = ()) -> str:
    store = AnswerStore(cfg.store.dir)
    files = run_timing_files(cfg)
    timings = [r for f in files for r in read_jsonl(f)]
    from_store = sum(bool(r.get("resumed")) for r in timings)
    lines = []
    if prune:
        used = used_keys(files) | used_keys(f for d in keep for f in timing_files(d))
        removed = store.prune(used)
        also = f" or of {', '.join(keep)}" if keep else ""
        lines.append(f"pruned {removed} answers that no output of this run{also} used")
    size = store.size()
    per_answer = f", {size.bytes / size.answers / 1024:.1f} KiB per answer" if size.answers else ""
    lines.append(f"{cfg.store.dir}: {size.answers} answers, {size.bytes / 2**20:.1f} MiB{per_answer}")
    if size.temporary:
        lines.append(f"  {size.temporary} unfinished writes (a killed job's; --prune removes those older than an hour)")
    if timings:
        lines.append(f"this run's last jobs: {len(timings)} answered requests, {from_store} from the store, "
                     f"{len(timings) - from_store} asked ({from_store / len(timings):.0%} from the store)")  # fmt: skip
    else:
        lines.append("this run has no request timings yet (io.out_names_dir, io.out_code_dir)")
    if not cfg.store.enabled:
        lines.append("store.enabled is false: answers are dropped once their job is done")
    return "\n".join(lines)
