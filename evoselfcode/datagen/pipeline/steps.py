"""One function per pipeline step: read the step's input files, run the stage, write its outputs.

Snakemake schedules the steps (rules/*.smk); each rule runs one through the CLI, as `evoselfcode/step_table.py`
declares it. The steps that carry engines of their own live beside their engine: generate-tests in `testgen.py`,
execute-tests in `selection.py`, merge-code in `merge.py`, score in `scoring.py`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence

from evoselfcode.config import Config
from evoselfcode.datagen import benchmark_index, inputs
from evoselfcode.datagen.checks import checks_for, run_checks
from evoselfcode.datagen.name_filters import filter_names, select_names
from evoselfcode.datagen.pipeline.abtest import name_metrics
from evoselfcode.datagen.pipeline.codegen import CODE
from evoselfcode.datagen.pipeline.driver import drop_private_store, open_store, run_stage, write_stage
from evoselfcode.datagen.pipeline.namegen import NAMES
from evoselfcode.datagen.pipeline.timing import timing_summary
from evoselfcode.datagen.readers import read_jsonl, read_models
from evoselfcode.datagen.schemas import (
    CONTAMINATED_PREFIX,
    CodeRecord,
    CodeReject,
    CodeSample,
    Description,
    NameCandidate,
    NameReject,
    NameSample,
    RequestTiming,
)
from evoselfcode.datagen.writers import write_json, write_jsonl

log = logging.getLogger("evoselfcode")


def split(cfg: Config, *, source: str, shard: str, index: str, out: str, contaminated: str) -> None:
    """One shard of the checked input; descriptions that match a benchmark go to `contaminated` instead."""
    descs = inputs.read_shard(inputs.index_input(cfg, source), shard, max_chars=cfg.io.max_desc_chars)
    kept, set_aside = benchmark_index.set_aside(
        descs, benchmark_index.Index.load(index), cfg.decontamination.desc_threshold
    )
    write_jsonl(out, kept)
    write_jsonl(contaminated, set_aside)
    log.info("shard %s: %d descriptions, %d set aside as benchmark tasks", shard, len(kept), len(set_aside))


def quarantine(cfg: Config, *, source: str, out: str) -> None:
    bad = inputs.index_input(cfg, source).quarantine()
    write_jsonl(out, bad)
    log.info("%d bad input lines quarantined", len(bad))


def generate_names(cfg: Config, client, *, shard: str, out: str, failures: str, timing: str) -> None:
    descs = read_models(shard, Description)
    result = run_stage(NAMES, descs, cfg, client, open_store(cfg, out))
    write_stage(cfg, NAMES, result, {"raw": out, "failures": failures, "timing": timing})
    log.info("%d name samples for %d descriptions, %d failed requests", len(result.records), len(descs),
             len(result.failures))  # fmt: skip


def timing(*, shards: Sequence[str], kept: str, out: str, test_shards: Sequence[str] | None = None) -> None:
    """Wall-clock per mode from the shards' request timings (and their tests', if run); `kept`: records kept."""

    def read(paths: Sequence[str]) -> Iterator[RequestTiming]:
        return (RequestTiming.model_validate(r) for p in paths for r in read_jsonl(p))

    kept_modes = (r["source"] for r in read_jsonl(kept))
    write_json(out, timing_summary(read(shards), kept_modes, read(test_shards) if test_shards else None))


def filter_names_step(cfg: Config, *, raw: str, out: str, rejects: str) -> None:
    samples = read_models(raw, NameSample)
    kept, rejected = filter_names(samples, cfg.namegen, cfg.filters)
    write_jsonl(out, kept)
    write_jsonl(rejects, rejected)
    drop_private_store(raw)
    log.info("kept %d of %d names", len(kept), len(samples))


def names_metrics_step(
    cfg: Config,
    *,
    raw: str,
    kept: str,
    rejects: str,
    failures: str,
    shards: Sequence[str],
    quarantine: str,
    contaminated: Sequence[str],
    out: str,
) -> None:
    descriptions = sum(1 for s in shards for _ in read_jsonl(s))
    metrics = name_metrics(
        read_models(raw, NameSample), read_models(kept, NameCandidate), read_models(rejects, NameReject), descriptions
    )
    metrics["failed_requests"] = sum(1 for _ in read_jsonl(failures))
    metrics.update(inputs.quarantine_counts(read_jsonl(quarantine)))  # bad lines; repeats set aside
    # per benchmark, the descriptions set aside before any request (not counted in `descriptions`)
    set_aside = Counter(r["reason"].removeprefix(CONTAMINATED_PREFIX) for p in contaminated for r in read_jsonl(p))
    metrics["contaminated_descriptions"] = dict(sorted(set_aside.items()))
    write_json(out, metrics)
    for warning in metrics["warnings"]:
        log.warning("names A/B: %s", warning)


def generate_code(cfg: Config, client, *, names: str, out: str, failures: str, timing: str) -> None:
    selected = select_names(read_models(names, NameCandidate), cfg.namegen.select)
    result = run_stage(CODE, selected, cfg, client, open_store(cfg, out))
    write_stage(cfg, CODE, result, {"raw": out, "failures": failures, "timing": timing})
    log.info("%d code samples for %d names, %d failed requests", len(result.records), len(selected),
             len(result.failures))  # fmt: skip


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


def filter_code_step(cfg: Config, *, raw: str, index: str, out: str, rejects: str) -> None:
    samples = read_models(raw, CodeSample)
    reasons = run_checks(checks_for("filter_code", cfg, {"index": index}), samples)
    kept = [final_record(s, cfg) for s, r in zip(samples, reasons, strict=True) if r is None]
    rejected = [CodeReject(**s.model_dump(), reason=r) for s, r in zip(samples, reasons, strict=True) if r]
    write_jsonl(out, kept)
    write_jsonl(rejects, rejected)
    drop_private_store(raw)
    log.info("kept %d of %d functions", len(kept), len(samples))


def merge_jsonl(sources: Sequence[str], out: str) -> None:
    write_jsonl(out, (r for p in sources for r in read_jsonl(p)))
