"""One function per pipeline step: read the step's input files, run the stage, write its outputs.

Snakemake schedules the steps (rules/*.smk); each rule calls one of these through the CLI.
"""

from __future__ import annotations

import json
import logging
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evoselfcode.config import Config, Dedup
from evoselfcode.datagen import inputs
from evoselfcode.datagen.filters.code import DUPLICATE, NEAR_DUPLICATE, check_samples
from evoselfcode.datagen.filters.dedup import near_duplicate_positions
from evoselfcode.datagen.filters.names import filter_names, select_names
from evoselfcode.datagen.pipeline.abtest import name_metrics
from evoselfcode.datagen.pipeline.code_metrics import CodeMetrics
from evoselfcode.datagen.pipeline.journal import Journal
from evoselfcode.datagen.pipeline.runner import check_failure_budget
from evoselfcode.datagen.schemas import (
    CodeRecord,
    CodeReject,
    CodeSample,
    Description,
    NameCandidate,
    NameReject,
    NameSample,
    RequestTiming,
)
from evoselfcode.datagen.utils.hashing import ast_fingerprint
from evoselfcode.datagen.writer import (
    LineReader,
    jsonl_writer,
    read_jsonl,
    read_models,
    scan_jsonl,
    write_json,
    write_jsonl,
)
from evoselfcode.workflow import index_input

log = logging.getLogger("evoselfcode")


def split(cfg: Config, source: str, shard: str, out: str) -> None:
    descs = inputs.read_shard(index_input(cfg, source), shard, max_chars=cfg.io.max_desc_chars)
    write_jsonl(out, descs)
    log.info("shard %s: %d descriptions", shard, len(descs))


def quarantine(cfg: Config, source: str, out: str) -> None:
    bad = index_input(cfg, source).quarantine()
    write_jsonl(out, bad)
    log.info("%d bad input lines quarantined", len(bad))


def journal_path(out: str) -> Path:
    """A hidden file beside a generation job's output: Snakemake does not remove it when the job fails."""
    return Path(out).with_name(f".{Path(out).stem}.journal.jsonl")


def journal_for(out: str) -> Journal:
    return Journal(journal_path(out))


# A generation job keeps its journal when it ends: a kill between its end and Snakemake recording it would
# rerun it (--rerun-incomplete) and, without the journal, ask all its requests again. The filter step, which
# runs only once the job is recorded as done, removes it.
def drop_journal(raw: str) -> None:
    journal_path(raw).unlink(missing_ok=True)


def generate_names(cfg: Config, client, shard: str, out_raw: str, out_failures: str, out_timing: str) -> None:
    from evoselfcode.datagen.pipeline.namegen import generate_names as run

    descs = read_models(shard, Description)
    journal = journal_for(out_raw)
    samples, failures, timings = run(descs, cfg, client, journal)
    write_jsonl(out_failures, failures)
    check_failure_budget(cfg, failures, len(descs) * len(cfg.namegen.modes), "name")
    write_jsonl(out_timing, timings)
    write_jsonl(out_raw, samples)
    journal.close()  # see drop_journal
    log.info("%d name samples for %d descriptions, %d failed requests", len(samples), len(descs), len(failures))


def timing(shards: Sequence[str], kept: str, out: str) -> None:
    """Wall-clock per mode from the shards' request timings; `kept` gives the records kept per mode."""
    from evoselfcode.datagen.pipeline.timing import timing_summary

    timings = (RequestTiming.model_validate(r) for p in shards for r in read_jsonl(p))
    kept_modes = (r["source"] for r in read_jsonl(kept))
    write_json(out, timing_summary(timings, kept_modes))


def filter_names_step(cfg: Config, raw: str, out_kept: str, out_rejects: str) -> None:
    samples = read_models(raw, NameSample)
    kept, rejects = filter_names(samples, cfg.namegen, cfg.filters)
    write_jsonl(out_kept, kept)
    write_jsonl(out_rejects, rejects)
    drop_journal(raw)
    log.info("kept %d of %d names", len(kept), len(samples))


def names_metrics(
    cfg: Config, raw: str, kept: str, rejects: str, failures: str, shards: Sequence[str], quarantined: str, out: str
) -> None:
    descriptions = sum(1 for s in shards for _ in read_jsonl(s))
    metrics = name_metrics(
        read_models(raw, NameSample), read_models(kept, NameCandidate), read_models(rejects, NameReject), descriptions
    )
    metrics["failed_requests"] = sum(1 for _ in read_jsonl(failures))
    metrics["quarantined_input_lines"] = sum(1 for _ in read_jsonl(quarantined))
    write_json(out, metrics)


def generate_code(cfg: Config, client, names: str, out_raw: str, out_failures: str, out_timing: str) -> None:
    from evoselfcode.datagen.pipeline.codegen import generate_code as run

    selected = select_names(read_models(names, NameCandidate), cfg.namegen.select)
    journal = journal_for(out_raw)
    samples, failures, timings = run(selected, cfg, client, journal)
    write_jsonl(out_failures, failures)
    check_failure_budget(cfg, failures, len(selected), "code")
    write_jsonl(out_timing, timings)
    write_jsonl(out_raw, samples)
    journal.close()  # see drop_journal
    log.info("%d code samples for %d names, %d failed requests", len(samples), len(selected), len(failures))


def final_record(sample: CodeSample, cfg: Config) -> CodeRecord:
    cg = cfg.codegen
    return CodeRecord(
        desc=sample.desc,
        func_name=sample.func_name,
        source=sample.source,
        code=sample.code,
        meta={
            "desc_id": sample.desc_id,
            "params": {"temperature": cg.temperature, "top_p": cg.top_p, "max_new_tokens": cg.max_new_tokens},
            "seed": sample.seed,
            "sample_index": sample.sample_index,
            "model": cfg.api.model,
            "finish_reason": sample.finish_reason,
            "trimmed": sample.trimmed,
        },
    )


def filter_code_step(cfg: Config, raw: str, out_kept: str, out_rejects: str) -> None:
    samples = read_models(raw, CodeSample)
    reasons = check_samples(samples, cfg.filters)
    kept = [final_record(s, cfg) for s, r in zip(samples, reasons, strict=True) if r is None]
    rejects = [CodeReject(**s.model_dump(), reason=r) for s, r in zip(samples, reasons, strict=True) if r]
    write_jsonl(out_kept, kept)
    write_jsonl(out_rejects, rejects)
    drop_journal(raw)
    log.info("kept %d of %d functions", len(kept), len(samples))


_KEEP, _DUPLICATE, _NEAR_DUPLICATE = 0, 1, 2
_GLOBAL_REASONS = {_DUPLICATE: DUPLICATE, _NEAR_DUPLICATE: NEAR_DUPLICATE}


def _text_key(text: str) -> bytes:
    """Bytes that sort as `text` does in a tuple: UTF-8 keeps code-point order; NUL escaped, then a terminator."""
    return text.encode("utf-8", "surrogatepass").replace(b"\0", b"\0\xff") + b"\0\0"


def _sort_key(r: CodeRecord, sequence: int) -> bytes:
    """(desc_id, func_name, sample_index) as bytes that sort the same way; the sequence number keeps ties in order.

    A list of these takes ~80 bytes per record where the tuples took ~300: a million fit in ~90 MB.
    """
    index = r.meta.model_extra.get("sample_index", 0)
    if not isinstance(index, int):
        raise ValueError(f"{r.meta.desc_id}/{r.func_name}: meta.sample_index must be an integer, not {index!r}")
    return _text_key(r.meta.desc_id) + _text_key(r.func_name) + struct.pack(">QQ", index + 2**63, sequence)


@dataclass(frozen=True)
class _RecordIndex:
    """Per kept record, in sorted order: where it lies (shard number, byte offset, length), its AST fingerprint."""

    file: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    fingerprint: np.ndarray | None  # 32-byte sha256 digests (dtype S32)

    def place(self, position: int) -> tuple[int, int, int]:
        return int(self.file[position]), int(self.offset[position]), int(self.length[position])


def _index_records(paths: Sequence[str], fingerprints: bool) -> _RecordIndex:
    """Validate every record and note its place, keeping none of it: the first of merge-code's two passes."""
    keys: list[bytes] = []
    file, offset, length, digests = array("I"), array("q"), array("q"), bytearray()
    for number, path in enumerate(paths):
        for start, size, data in scan_jsonl(path):
            r = CodeRecord.model_validate(data)
            keys.append(_sort_key(r, len(keys)))
            file.append(number)
            offset.append(start)
            length.append(size)
            if fingerprints:
                digests += bytes.fromhex(ast_fingerprint(r.code))
    keys.sort()
    order = np.fromiter((int.from_bytes(k[-8:], "big") for k in keys), dtype=np.int64, count=len(keys))
    del keys
    return _RecordIndex(
        file=np.frombuffer(file, dtype=np.uint32)[order],
        offset=np.frombuffer(offset, dtype=np.int64)[order],
        length=np.frombuffer(length, dtype=np.int64)[order],
        fingerprint=np.frombuffer(digests, dtype="S32")[order] if fingerprints else None,
    )


def _first_copies(fingerprints: np.ndarray) -> np.ndarray:
    """For each record in sorted order, whether no earlier record has its fingerprint (`exact_duplicates`' rule)."""
    first = np.zeros(len(fingerprints), dtype=bool)
    first[np.unique(fingerprints, return_index=True)[1]] = True
    return first


class _Codes(Sequence):
    """`(str(position), code)` of the records at `positions`, each read from its shard when asked for.

    Near dedup sees every code; memory holds none of them.
    """

    def __init__(self, index: _RecordIndex, positions: np.ndarray, lines: LineReader) -> None:
        self.index, self.positions, self.lines = index, positions, lines

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> tuple[str, str]:
        position = int(self.positions[i])  # past the end: IndexError, which ends iteration
        return str(position), self.lines.read(*self.index.place(position))["code"]


def _verdicts(dedup: Dedup, index: _RecordIndex, lines: LineReader) -> np.ndarray:
    """Per record in sorted order: _KEEP, _DUPLICATE or _NEAR_DUPLICATE."""
    verdicts = np.zeros(len(index.file), dtype=np.uint8)
    if dedup.exact:
        verdicts[~_first_copies(index.fingerprint)] = _DUPLICATE
    if dedup.near:
        rest = _Codes(index, np.flatnonzero(verdicts == _KEEP), lines)
        near = near_duplicate_positions(rest, threshold=dedup.threshold, num_perm=dedup.num_perm, ngram=dedup.ngram)
        verdicts[rest.positions[near]] = _NEAR_DUPLICATE
    return verdicts


def merge_code(
    cfg: Config,
    kept_shards: Sequence[str],
    reject_shards: Sequence[str],
    raw: str,
    failures: str,
    names_metrics: str,
    out: dict[str, str],
) -> None:
    """Merge shards, deduplicate across all of them (the first copy in sorted order survives), and measure.

    Streams in two passes, so that a million records fit in a few hundred MB: the first indexes every
    kept record (sort key, place in its shard, AST fingerprint); the second reads them back one at a
    time in sorted order and writes each to the kept or the rejects file. Each output appears whole or
    not at all (written aside, then renamed); Snakemake removes the others if the job fails.
    """
    names_verdict = json.loads(Path(names_metrics).read_text()).get("verdict")
    dedup = cfg.filters.dedup
    index = _index_records(kept_shards, fingerprints=dedup.exact)
    metrics = CodeMetrics()
    with LineReader(kept_shards) as lines:
        verdicts = _verdicts(dedup, index, lines)
        with jsonl_writer(out["kept"]) as keep, jsonl_writer(out["rejects"]) as reject:
            for path in reject_shards:
                for rejected in read_jsonl(path):
                    metrics.add_reject(rejected)
                    reject(rejected)
            for position, verdict in enumerate(verdicts.tolist()):
                data = lines.read(*index.place(position))
                r = CodeRecord.model_validate(data)
                if verdict == _KEEP:
                    metrics.add_kept(data)
                    keep(r)
                    continue
                rejected = {"desc_id": r.meta.desc_id, "func_name": r.func_name, "source": r.source,
                            "code": r.code, "reason": _GLOBAL_REASONS[verdict], "scope": "global"}  # fmt: skip
                metrics.add_reject(rejected)
                reject(rejected)
            for sample in read_jsonl(raw):
                metrics.add_raw(sample)
            for failure in read_jsonl(failures):
                metrics.add_failure(failure)
            result = metrics.result()
    write_json(out["metrics"], {**result, "names_verdict": names_verdict}, sort_keys=False)
    log.info("kept %d of %d functions after global dedup", result["accounting"]["kept"], len(verdicts))


def merge_jsonl(sources: Sequence[str], out: str) -> None:
    write_jsonl(out, (r for p in sources for r in read_jsonl(p)))
