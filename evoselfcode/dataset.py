"""The loadable dataset: a run's final records as Parquet, with a dataset card (`dataset_card.py`).

`export` checks every record, then writes `DIR/data/train-00000-of-0000N.parquet` and `DIR/README.md` into a
hidden folder beside DIR and renames it into place: a folder that exists is complete. The same records and
config give the same bytes; each Parquet file records the pyarrow version that wrote it (`created_by`), so
byte-identical files also need the same pyarrow.
"""

from __future__ import annotations

import glob
import json
import math
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from evoselfcode import dataset_card
from evoselfcode.config import Config
from evoselfcode.datagen.readers import numbered_records
from evoselfcode.datagen.schemas import CodeRecord, ScoredRecord
from evoselfcode.datagen.writers import DIR_MODE
from evoselfcode.layout import Layout

DATA_DIR = "data"
ROW_GROUP_ROWS = 10_000  # ~10 MB of typical functions: row groups small enough for the Hub's dataset viewer
COMPRESSION = "zstd"
EXAMPLES = 3

PARAMS = pa.struct([("temperature", pa.float64()), ("top_p", pa.float64()), ("max_new_tokens", pa.int64())])
META = [
    pa.field("desc_id", pa.string()),
    pa.field("params", PARAMS),
    pa.field("seed", pa.int64()),
    pa.field("sample_index", pa.int64()),
    pa.field("model", pa.string()),
    pa.field("finish_reason", pa.string()),
    pa.field("trimmed", pa.bool_()),
]
META_NAMES = {f.name for f in META}
SCORE = pa.struct([("ppl", pa.float64()), ("mean_logprob", pa.float64()), ("tokens", pa.int64())])
TESTS = pa.list_(pa.string())


def json_type(value: object) -> pa.DataType | None:
    """The column type of a JSON value; None for null, which fits any type."""
    if value is None:
        return None
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, str):
        return pa.string()
    if isinstance(value, list):
        item = None
        for v in value:
            item = unify(item, json_type(v))
        return pa.list_(pa.null() if item is None else item)
    if isinstance(value, dict):
        return pa.struct([(k, pa.null() if v is None else json_type(v)) for k, v in value.items()])
    raise TypeError(f"a {type(value).__name__}")


def unify(a: pa.DataType | None, b: pa.DataType | None) -> pa.DataType | None:
    """One type for values of types a and b: ints among floats are floats, objects take every key seen."""
    if a is None or pa.types.is_null(a):
        return b
    if b is None or pa.types.is_null(b) or a == b:
        return a
    if {a, b} == {pa.int64(), pa.float64()}:
        return pa.float64()
    if pa.types.is_list(a) and pa.types.is_list(b):
        return pa.list_(unify(a.value_type, b.value_type))
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        fields = {f.name: f.type for f in a}
        for f in b:
            fields[f.name] = unify(fields.get(f.name), f.type)
        return pa.struct(list(fields.items()))
    raise TypeError(f"{_kind(b)} where earlier records hold {_kind(a)}")


def settled(t: pa.DataType | None) -> pa.DataType | None:
    """The column type to write: what only ever held null becomes string; an object empty in every record (which
    Parquet cannot hold, and which says nothing) is left out, as None."""
    if t is None or pa.types.is_null(t):
        return pa.string()
    if pa.types.is_list(t):
        item = settled(t.value_type)
        return pa.list_(item) if item is not None else None
    if pa.types.is_struct(t):
        fields = [(f.name, settled(f.type)) for f in t]
        fields = [(name, ft) for name, ft in fields if ft is not None]
        return pa.struct(fields) if fields else None
    return t


def _kind(t: pa.DataType) -> str:
    if pa.types.is_struct(t):
        return "an object"
    if pa.types.is_list(t):
        return "a list"
    return {pa.bool_(): "a bool", pa.int64(): "an int", pa.float64(): "a float", pa.string(): "a string"}[t]


class DatasetError(ValueError):
    """Input the dataset cannot be written from; the message names the file (and line) and what to do."""


@dataclass(frozen=True)
class ExportInputs:
    """The run's files the dataset is made of."""

    records: Path  # Layout.final_records: the kept functions, or with scoring on the scored ones
    code_metrics: Path
    names_metrics: Path

    @classmethod
    def of(cls, layout: Layout) -> ExportInputs:
        """The files where the run laid out as `layout` wrote them."""
        return cls(Path(layout.final_records()), Path(layout.code.metrics_json), Path(layout.names.metrics_json))


@dataclass
class Scan:
    """What a first pass over the records found: how many, and what the schema needs."""

    rows: int = 0
    models: set[str] = field(default_factory=set)
    has_tests: bool = False
    extra_meta: dict[str, pa.DataType | None] = field(default_factory=dict)  # meta key -> its column type


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8") as fh:
        yield from numbered_records(fh, path, "rerun the step that wrote it", DatasetError)


def check_record(path: Path, number: int, record: dict, scored: bool) -> None:
    """The record's schema (CodeRecord, ScoredRecord with scoring on), plus `tests` as a list of strings."""
    model = ScoredRecord if scored else CodeRecord
    try:
        model.model_validate({k: v for k, v in record.items() if k != "tests"})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(record)"
        raise DatasetError(f"{path}:{number}: {where}: {err['msg']} (not a {model.__name__} record)") from None
    tests = record.get("tests")
    if tests is not None and not (isinstance(tests, list) and all(isinstance(t, str) for t in tests)):
        raise DatasetError(f"{path}:{number}: tests: must be a list of assertion strings")
    for f in META:  # the fixed meta fields, as the dataset types them (a param it does not know changes the type)
        value = record["meta"].get(f.name)
        try:
            fits = value is None or unify(f.type, json_type(value)) == f.type
        except TypeError:
            fits = False
        if not fits:
            raise DatasetError(
                f"{path}:{number}: meta.{f.name}: {json.dumps(value)} does not fit its column ({f.type})"
            )


def scan(path: Path, scored: bool) -> Scan:
    """Check every record and find the columns they need; an error names the file and the line."""
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: run the pipeline first (snakemake -j 4), or name its outputs")
    found = Scan()
    for number, record in _records(path):
        check_record(path, number, record, scored)
        found.rows += 1
        found.has_tests |= "tests" in record
        meta = record["meta"]
        found.models.add(meta.get("model"))
        for key in sorted(meta.keys() - META_NAMES):
            try:
                found.extra_meta[key] = unify(found.extra_meta.get(key), json_type(meta[key]))
            except TypeError as exc:
                raise DatasetError(f"{path}:{number}: meta.{key}: {exc}; a meta key holds one kind of value") from None
    return found  # no rows is a dataset too: an empty one, whose card says why (a run that kept nothing)


def schema_for(found: Scan, scored: bool, tests: bool = False) -> pa.Schema:
    """The record's fixed fields, meta keys as found, `score` with scoring on, and `tests` when records hold them
    (or, with `tests`, when the run's records would: an empty dataset has the columns of a full one)."""
    extras = [pa.field(k, t) for k in sorted(found.extra_meta) if (t := settled(found.extra_meta[k])) is not None]
    fields = [
        pa.field("desc", pa.string()),
        pa.field("func_name", pa.string()),
        pa.field("source", pa.string()),
        pa.field("code", pa.string()),
        pa.field("meta", pa.struct(META + extras)),
    ]
    if scored:
        fields.append(pa.field("score", SCORE))
    if found.has_tests or tests:
        fields.append(pa.field("tests", TESTS))
    return pa.schema(fields)


def write_parquet(path: Path, schema: pa.Schema, rows: int, shard_rows: int, out: Path) -> int:
    """The records as `data/train-{i:05d}-of-{n:05d}.parquet`, `shard_rows` rows a file; returns their Arrow bytes.

    No records still make one file, with the columns and no rows, so that the folder loads as an empty dataset."""
    shards = max(1, math.ceil(rows / shard_rows))
    (out / DATA_DIR).mkdir(parents=True)
    records = (record for _, record in _records(path))
    nbytes = 0
    for i in range(shards):
        name = out / DATA_DIR / f"{dataset_card.SPLIT}-{i:05d}-of-{shards:05d}.parquet"
        with pq.ParquetWriter(name, schema, compression=COMPRESSION) as writer:
            left = shard_rows
            while left and (batch := list(islice(records, min(left, ROW_GROUP_ROWS)))):
                table = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in batch], schema=schema)
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                nbytes += table.nbytes
                left -= len(batch)
    return nbytes


def examples(path: Path, rows: int) -> list[dict]:
    """Three records spread over the dataset: the first, the middle one and the last."""
    picks = sorted({0, rows // 2, rows - 1})[:EXAMPLES] if rows else []
    return [record for i, (_, record) in enumerate(_records(path)) if i in picks]


def read_metrics(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(
            f"{path} does not exist: the dataset card needs the run's metrics; rerun the pipeline"
        ) from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc.msg}); rerun the step that wrote it") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: must hold a JSON object")
    return data


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder to `out`; an earlier export there goes, anything else stops the export."""
    if not out.exists():
        tmp.rename(out)
        return
    card = out / "README.md"
    ours = card.is_file() and dataset_card.MARK in card.read_text(encoding="utf-8", errors="replace")
    if not ours and any(out.iterdir()):
        raise DatasetError(f"{out} exists and is not a dataset folder evoselfcode wrote: choose another --out")
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old)


def export(cfg: Config, inputs: ExportInputs, out: str | Path) -> int:
    """Write the dataset folder `out` from a run's outputs; returns the number of rows."""
    out = Path(out)
    scored = cfg.scoring.enabled
    found = scan(inputs.records, scored)
    if found.rows and found.models != {cfg.api.model}:
        made_by = ", ".join(sorted(map(str, found.models)))
        raise DatasetError(f"{inputs.records}: the records were made with {made_by}, but the config says "
                           f"{cfg.api.model}: pass the run's config files with --config")  # fmt: skip
    names, code = read_metrics(inputs.names_metrics), read_metrics(inputs.code_metrics)
    schema = schema_for(found, scored, tests=cfg.tests.enabled and not found.rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{glob.escape(out.name)}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)  # left by an export that was killed
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        arrow_bytes = write_parquet(inputs.records, schema, found.rows, cfg.dataset.shard_rows, tmp)
        run = dataset_card.Run(
            cfg=cfg,
            names_metrics=names,
            code_metrics=code,
            schema=schema,
            rows=found.rows,
            arrow_bytes=arrow_bytes,
            parquet_bytes=sum(f.stat().st_size for f in (tmp / DATA_DIR).iterdir()),
            examples=examples(inputs.records, found.rows),
        )
        (tmp / "README.md").write_text(dataset_card.render(run), encoding="utf-8")
        tmp.chmod(DIR_MODE)  # mkdtemp makes it private; this folder is for sharing
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return found.rows
