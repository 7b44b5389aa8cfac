"""merge-code: merge the kept shards, deduplicate across all of them out of core, and measure the funnel."""

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
from evoselfcode.datagen.checks.duplicates import DUPLICATE, NEAR_DUPLICATE
from evoselfcode.datagen.dedup import first_copies, near_duplicate_positions, without_own_name
from evoselfcode.datagen.pipeline.code_metrics import CodeMetrics
from evoselfcode.datagen.readers import LineReader, read_jsonl, scan_jsonl
from evoselfcode.datagen.schemas import CONTAMINATED_PREFIX, CodeRecord, GlobalReject
from evoselfcode.datagen.utils.hashing import ast_fingerprint
from evoselfcode.datagen.utils.ruff import ruff_format
from evoselfcode.datagen.writers import jsonl_writer, write_json

log = logging.getLogger("evoselfcode")

_KEEP, _DUPLICATE, _NEAR_DUPLICATE = 0, 1, 2
_GLOBAL_REASONS = {_DUPLICATE: DUPLICATE, _NEAR_DUPLICATE: NEAR_DUPLICATE}
_FORMAT_BATCH = 5000  # kept records per `ruff format` process: ~20 MB in /dev/shm, a fraction of a second


def _text_key(text: str) -> bytes:
    """Bytes that sort as `text` does in a tuple: UTF-8 keeps code-point order; NUL escaped, then a terminator."""
    return text.encode("utf-8", "surrogatepass").replace(b"\0", b"\0\xff") + b"\0\0"


def _sort_key(r: CodeRecord, sequence: int) -> bytes:
    """(desc_id, func_name, sample_index) as bytes that sort the same way; the sequence number keeps ties in order.

    A list of these takes ~80 bytes per record where the tuples took ~300: a million fit in ~90 MB.
    """
    index = r.meta.sample_index + 2**63
    return _text_key(r.meta.desc_id) + _text_key(r.func_name) + struct.pack(">QQ", index, sequence)


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


class _Codes(Sequence):
    """The codes of the records at `positions` as near dedup compares them, each read from its shard when asked for.

    Near dedup sees every code; memory holds none of them.
    """

    def __init__(self, index: _RecordIndex, positions: np.ndarray, lines: LineReader) -> None:
        self.index, self.positions, self.lines = index, positions, lines

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> str:
        position = int(self.positions[i])  # past the end: IndexError, which ends iteration
        record = self.lines.read(*self.index.place(position))
        return without_own_name(record["code"], record["func_name"])


def _verdicts(dedup: Dedup, index: _RecordIndex, lines: LineReader) -> np.ndarray:
    """Per record in sorted order: _KEEP, _DUPLICATE or _NEAR_DUPLICATE."""
    verdicts = np.zeros(len(index.file), dtype=np.uint8)
    if dedup.exact:
        verdicts[~first_copies(index.fingerprint)] = _DUPLICATE
    if dedup.near:
        rest = _Codes(index, np.flatnonzero(verdicts == _KEEP), lines)
        near = near_duplicate_positions(rest, threshold=dedup.threshold, num_perm=dedup.num_perm, ngram=dedup.ngram)
        verdicts[rest.positions[near]] = _NEAR_DUPLICATE
    return verdicts


class _Formatted:
    """Writes kept records with their code as ruff's formatter gives it, a few thousand to a `ruff format` process.

    The model's own text stays in code/raw.jsonl; the checks and dedup judged the same AST.
    """

    def __init__(self, keep, metrics: CodeMetrics) -> None:
        self.keep, self.metrics, self.pending = keep, metrics, []

    def add(self, record: CodeRecord) -> None:
        self.pending.append(record)
        if len(self.pending) >= _FORMAT_BATCH:
            self.flush()

    def flush(self) -> None:
        codes = ruff_format([r.code for r in self.pending])
        for r, code in zip(self.pending, codes, strict=True):
            formatted = r.model_copy(update={"code": code})
            self.metrics.add_kept({"source": r.source, "code": code})
            self.keep(formatted)
        self.pending = []


def merge_code(
    cfg: Config,
    *,
    kept: Sequence[str],
    shard_rejects: Sequence[str],
    raw: str,
    failures: Sequence[str],
    names_metrics: str,
    out: str,
    rejects: str,
    metrics: str,
    selection: Sequence[str] = (),
    tests: Sequence[str] = (),
) -> None:
    """Merge shards, deduplicate across all of them (the first copy in sorted order survives), and measure.

    Streams in two passes, so that a million records fit in a few hundred MB: the first indexes every
    kept record (sort key, place in its shard, AST fingerprint); the second reads them back one at a
    time in sorted order and writes each to the kept or the rejects file. Each output appears whole or
    not at all (written aside, then renamed); Snakemake removes the others if the job fails.
    """
    names = json.loads(Path(names_metrics).read_text())
    dedup = cfg.filters.dedup
    index = _index_records(kept, fingerprints=dedup.exact)
    counts = CodeMetrics()
    with LineReader(kept) as lines:
        verdicts = _verdicts(dedup, index, lines)
        with jsonl_writer(out) as keep, jsonl_writer(rejects) as reject:
            for path in shard_rejects:
                for rejected in read_jsonl(path):
                    counts.add_reject(rejected)
                    reject(rejected)
            formatted = _Formatted(keep, counts)
            for position, verdict in enumerate(verdicts.tolist()):
                data = lines.read(*index.place(position))
                r = CodeRecord.model_validate(data)
                counts.add_tested(data)
                if verdict == _KEEP:
                    formatted.add(r)
                    continue
                rejected = GlobalReject(
                    desc_id=r.meta.desc_id,
                    desc=r.desc,
                    func_name=r.func_name,
                    source=r.source,
                    code=r.code,
                    reason=_GLOBAL_REASONS[verdict],
                )
                counts.add_reject(rejected.model_dump())
                reject(rejected)
            formatted.flush()
            for sample in read_jsonl(raw):
                counts.add_raw(sample)
            for failure in (f for path in failures for f in read_jsonl(path)):  # code's and tests' requests
                counts.add_failure(failure)
            for chosen in (s for path in selection for s in read_jsonl(path)):
                counts.add_selection(chosen)
            for asked in (t for path in tests for t in read_jsonl(path)):
                counts.add_tests(asked)
            result = counts.result()
    removed = {r.removeprefix(CONTAMINATED_PREFIX): n for r, n in result["reasons"].items()
               if r.startswith(CONTAMINATED_PREFIX)}  # fmt: skip
    decontamination = {"descriptions": names.get("contaminated_descriptions", {}), "functions": removed}
    summary = {**result, "names_verdict": names.get("verdict"), "decontamination": decontamination}
    write_json(metrics, summary, sort_keys=False)
    log.info("kept %d of %d functions after global dedup", result["accounting"]["kept"], len(verdicts))
    if not (accounting := result["accounting"])["adds_up"]:  # a function generated but neither kept nor rejected, or so
        log.warning("%d functions generated (raw) but %d kept and %d rejected: some shard's raw, kept and rejects "
                    "files disagree (one edited or lost?)", accounting["generated"], accounting["kept"],
                    accounting["rejected"])  # fmt: skip
