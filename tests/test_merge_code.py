"""merge-code streams (index, then read back by offset) and writes what the in-memory version wrote, byte for byte."""

from __future__ import annotations

import json
import logging
import random
import statistics
from collections import Counter
from pathlib import Path

import pytest

from evoselfcode.config import load_config
from evoselfcode.datagen.checks import funnel
from evoselfcode.datagen.dedup import exact_duplicates, near_duplicates, without_own_name
from evoselfcode.datagen.pipeline import merge
from evoselfcode.datagen.pipeline.merge import _sort_key, merge_code
from evoselfcode.datagen.readers import LineReader, read_jsonl, read_models, scan_jsonl
from evoselfcode.datagen.schemas import CodeRecord, GlobalReject
from evoselfcode.datagen.utils.ruff import ruff_format
from evoselfcode.datagen.writers import write_json, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["alpha", "beta", "gamma", "delta", "items", "rows", "cache", "total", "count", "index", "value", "node"]


# The in-memory merge-code and code metrics as they were before streaming: the reference.
def _old_quantiles(values: list[int]) -> dict:
    if not values:
        return {"count": 0}
    q = statistics.quantiles(values, n=20, method="inclusive") if len(values) > 1 else [values[0]] * 19
    return {"count": len(values), "min": min(values), "p5": q[0], "p50": q[9], "p95": q[18], "max": max(values),
            "mean": round(statistics.fmean(values), 1)}  # fmt: skip


def _old_tokens(raw: list[dict], kept: list[dict], rejects: list[dict]) -> dict:
    code = sum(r.get("tokens") or 0 for r in raw)
    tests = sum(r["meta"].get("tests", {}).get("completion_tokens", 0) for r in kept)
    tests += sum(r.get("test_tokens", 0) for r in rejects)
    return {"code": code, "tests": tests, "per_kept_function": round((code + tests) / len(kept), 1) if kept else None}


def _old_code_metrics(raw: list[dict], kept: list[dict], rejects: list[dict], failures: list[dict]) -> dict:
    reasons = Counter(r["reason"] for r in rejects)
    across = [r for r in rejects if r.get("scope") == "global"]  # dropped by merge-code, after every check
    by_source = {}
    for source in sorted({r["source"] for r in raw}):
        generated = sum(r["source"] == source for r in raw)
        n_kept = sum(r["source"] == source for r in kept)
        by_source[source] = {
            "generated": generated,
            "kept": n_kept,
            "pass_rate": round(n_kept / generated, 4) if generated else None,
            "reasons": dict(sorted(Counter(r["reason"] for r in rejects if r["source"] == source).items())),
        }
    return {
        "funnel": funnel(
            [None] * (len(kept) + len(across)) + [r["reason"] for r in rejects if r not in across], len(across)
        ),
        "accounting": {
            "generated": len(raw),
            "kept": len(kept),
            "rejected": len(rejects),
            "adds_up": len(kept) + len(rejects) == len(raw),
        },  # fmt: skip
        "reasons": dict(sorted(reasons.items())),
        "by_source": by_source,
        "pass_rate": round(len(kept) / len(raw), 4) if raw else None,
        "trimmed": sum(bool(r.get("trimmed")) for r in raw),
        "failed_requests": len(failures),
        "completion_tokens": _old_tokens(raw, kept, rejects),
        "code_chars": _old_quantiles([len(r["code"]) for r in kept]),
        "code_lines": _old_quantiles([r["code"].count("\n") + 1 for r in kept]),
    }


def _old_merge_code(cfg, *, kept, shard_rejects, raw, failures, names_metrics, out, rejects, metrics) -> None:
    def sort_key(r: CodeRecord) -> tuple:
        return (r.meta.desc_id, r.func_name, r.meta.sample_index)

    records = sorted((r for p in kept for r in read_models(p, CodeRecord)), key=sort_key)
    rejected = [r for p in shard_rejects for r in read_jsonl(p)]
    items = [(str(i), r.code) for i, r in enumerate(records)]
    dedup = cfg.filters.dedup
    dropped: dict[str, str] = {}
    if dedup.exact:
        dropped.update({k: "duplicate" for k in exact_duplicates(items)})
    if dedup.near:
        rest = [(key, without_own_name(code, records[int(key)].func_name)) for key, code in items if key not in dropped]
        near = near_duplicates(rest, threshold=dedup.threshold, num_perm=dedup.num_perm, ngram=dedup.ngram)
        dropped.update({k: "near_duplicate" for k in near})
    survivors = [r for i, r in enumerate(records) if str(i) not in dropped]
    survivors = [
        r.model_copy(update={"code": code})
        for r, code in zip(survivors, ruff_format([r.code for r in survivors]), strict=True)
    ]
    global_rejects = [
        GlobalReject(
            desc_id=r.meta.desc_id, desc=r.desc, func_name=r.func_name, source=r.source, code=r.code, reason=reason
        )
        for i, r in enumerate(records)
        if (reason := dropped.get(str(i))) is not None
    ]
    summary = _old_code_metrics(
        list(read_jsonl(raw)),
        [r.model_dump() for r in survivors],
        rejected + [r.model_dump() for r in global_rejects],
        [f for path in failures for f in read_jsonl(path)],
    )
    names = json.loads(Path(names_metrics).read_text())
    summary["names_verdict"] = names.get("verdict")
    removed = {r.split(":", 1)[1]: n for r, n in summary["reasons"].items() if r.startswith("contaminated:")}
    summary["decontamination"] = {"descriptions": names.get("contaminated_descriptions", {}), "functions": removed}
    write_jsonl(out, survivors)
    write_jsonl(rejects, [*rejected, *global_rejects])
    write_json(metrics, summary, sort_keys=False)


def _function(rng: random.Random, name: str) -> str:
    lines = [f"def {name}({rng.choice(WORDS)}, {rng.choice(WORDS)}_arg):"]
    for _ in range(rng.randint(8, 14)):
        a, b, c = (rng.choice(WORDS) for _ in range(3))
        lines.append(f"    {a} = {b}.get({c}, {rng.randint(0, 99)}) + len({c})")
    lines.append(f"    return {rng.choice(WORDS)}")
    return "\n".join(lines)


def _renamed(code: str) -> str:
    """An exact copy: a comment and different layout do not change the AST fingerprint."""
    head, *body = code.split("\n")
    return "\n".join([head, "    # the same function", *body]) + "\n"


def _near(code: str) -> str:
    """A near copy: one constant changed."""
    lines = code.split("\n")
    lines[2] = lines[2].replace(".get(", ".get( 1000 +", 1)
    return "\n".join(lines)


def _record(desc_id: str, func_name: str, code: str, source: str, index: int | None, trimmed: bool) -> CodeRecord:
    meta = {"desc_id": desc_id, "params": {"temperature": 0.2, "top_p": 0.95, "max_new_tokens": 384}, "seed": 7,
            "model": "m", "finish_reason": "stop", "trimmed": trimmed}  # fmt: skip
    if index is not None:
        meta["sample_index"] = index
    return CodeRecord(desc="do it", func_name=func_name, source=source, code=code, meta=meta)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """Four kept shards with exact and near copies across them, ties in the sort key, odd ids; rejects, raw."""
    tmp = tmp_path_factory.mktemp("merge")
    rng = random.Random(3)
    desc_ids = ["d1", "d10", "d2", "d1\x00x", "d1x", "é-task", "\U0001f600", "z", ""]
    records: list[CodeRecord] = []
    for k in range(60):
        desc_id, index = rng.choice(desc_ids), rng.choice([0, 1, 2, 10, -3, None])
        name = rng.choice(["f", "g", "f_a", "f\x00"])
        code = _function(rng, name)
        records.append(_record(desc_id, name, code, rng.choice(["FIM", "L2R"]), index, k % 7 == 0))
        if k % 4 == 0:  # an exact copy under another key
            records.append(_record(rng.choice(desc_ids), name, _renamed(code), "FIM", index, False))
        if k % 5 == 0:  # a near copy
            records.append(_record(rng.choice(desc_ids), name, _near(code), "L2R", 0, False))
        if k % 9 == 0:  # the same sort key again, other code: input order decides
            records.append(_record(desc_id, name, _function(rng, name), "FIM", index, False))
    shards = [[] for _ in range(4)]
    for r in records:
        shards[rng.randrange(4)].append(r)
    kept_paths = []
    for number, shard in enumerate(shards):
        path = tmp / f"kept{number}.jsonl"
        if number == 1:  # not the pipeline's own layout: spaces, a blank line; outputs are re-serialized
            path.write_text("".join(json.dumps(r.model_dump()) + "\n\n" for r in shard))
        else:
            write_jsonl(path, shard)
        kept_paths.append(str(path))
    reject_paths, raw = [], [r.model_dump() for r in records]
    for number in range(2):
        rejects = [{"desc_id": f"r{number}{i}", "func_name": "h", "source": rng.choice(["FIM", "L2R"]),
                    "code": "def h(:", "reason": rng.choice(["syntax_error", "too_short", "ruff:F821", "duplicate"])}
                   for i in range(5)]  # fmt: skip
        write_jsonl(tmp / f"rejects{number}.jsonl", rejects)
        reject_paths.append(str(tmp / f"rejects{number}.jsonl"))
        raw += rejects
    write_jsonl(tmp / "raw.jsonl", [{"source": r["source"], "trimmed": r.get("meta", {}).get("trimmed")} for r in raw])
    write_jsonl(tmp / "failures.jsonl", [{"stage": "code", "desc_id": "d9", "error": "Timeout", "message": "t"}])
    (tmp / "names_metrics.json").write_text('{"verdict": "FIM"}')
    return {"tmp": tmp, "kept": kept_paths, "rejects": reject_paths, "lines": len(records)}


def _run(function, inputs: dict, tmp: Path, exact: bool, near: bool) -> dict[str, Path]:
    cfg = load_config(ROOT / "configs/datagen.yaml", overrides={"filters": {"dedup": {"exact": exact, "near": near}}})
    out = {"kept": tmp / "kept.jsonl", "rejects": tmp / "rejects.jsonl", "metrics": tmp / "metrics.json"}
    src = inputs["tmp"]
    function(cfg, kept=inputs["kept"], shard_rejects=inputs["rejects"], raw=str(src / "raw.jsonl"),
             failures=[str(src / "failures.jsonl")], names_metrics=str(src / "names_metrics.json"),
             out=str(out["kept"]), rejects=str(out["rejects"]), metrics=str(out["metrics"]))  # fmt: skip
    return out


@pytest.mark.parametrize(("exact", "near"), [(True, True), (True, False), (False, True), (False, False)])
def test_outputs_are_byte_identical_to_the_in_memory_merge(inputs, tmp_path, exact, near):
    new = _run(merge_code, inputs, tmp_path / "new", exact, near)
    old = _run(_old_merge_code, inputs, tmp_path / "old", exact, near)
    for name in ("kept", "rejects", "metrics"):
        assert new[name].read_bytes() == old[name].read_bytes(), name
    reasons = Counter(r["reason"] for r in read_jsonl(new["rejects"]) if r.get("scope") == "global")
    assert bool(reasons["duplicate"]) == exact and bool(reasons["near_duplicate"]) == near, reasons


def test_kept_code_is_what_ruffs_formatter_gives_in_any_batch_size(inputs, tmp_path, monkeypatch):
    whole = _run(merge_code, inputs, tmp_path / "whole", True, True)
    kept = read_models(whole["kept"], CodeRecord)
    raw = {(r.meta.desc_id, r.func_name, r.desc): r.code for p in inputs["kept"] for r in read_models(p, CodeRecord)}
    assert any(r.code != raw[r.meta.desc_id, r.func_name, r.desc] for r in kept)  # the inputs' spacing is not ruff's
    assert [r.code for r in kept] == ruff_format([r.code for r in kept])  # formatted: formatting again changes nothing
    monkeypatch.setattr(merge, "_FORMAT_BATCH", 7)
    batched = _run(merge_code, inputs, tmp_path / "batched", True, True)
    for name in ("kept", "rejects", "metrics"):
        assert batched[name].read_bytes() == whole[name].read_bytes(), name


def test_failed_requests_count_the_tests_requests_too(inputs, tmp_path):
    tests = tmp_path / "tests_failures.jsonl"
    write_jsonl(tests, [{"stage": "tests", "desc_id": f"d{i}", "error": "Timeout", "message": "t"} for i in range(2)])
    cfg = load_config(ROOT / "configs/datagen.yaml")
    out = {name: str(tmp_path / f"{name}.json") for name in ("kept", "rejects", "metrics")}
    src = inputs["tmp"]
    failures = [str(src / "failures.jsonl"), str(tests)]
    merge_code(cfg, kept=inputs["kept"], shard_rejects=inputs["rejects"], raw=str(src / "raw.jsonl"),
               failures=failures, names_metrics=str(src / "names_metrics.json"), out=out["kept"],
               rejects=out["rejects"], metrics=out["metrics"])  # fmt: skip
    assert json.loads(Path(out["metrics"]).read_text())["failed_requests"] == 3


def test_every_test_request_counts_its_tokens_even_with_no_candidate_to_select(inputs, tmp_path):
    # d1's candidates all failed the static checks: it has no selection record, but its test request was answered
    asked = tmp_path / "tests_raw.jsonl"
    write_jsonl(asked, [{"desc_id": "d0", "tokens": 40}, {"desc_id": "d1", "tokens": 25}])
    chosen = tmp_path / "selection.jsonl"
    write_jsonl(chosen, [{"desc_id": "d0", "selection": "agreement", "candidates": 2, "duplicates": 0, "asserts": 3,
                          "tokens": 40, "kept": 1}])  # fmt: skip
    cfg = load_config(ROOT / "configs/datagen.yaml")
    out = {name: str(tmp_path / f"{name}.json") for name in ("kept", "rejects", "metrics")}
    src = inputs["tmp"]
    merge_code(cfg, kept=inputs["kept"], shard_rejects=inputs["rejects"], raw=str(src / "raw.jsonl"),
               failures=[str(src / "failures.jsonl")], names_metrics=str(src / "names_metrics.json"), out=out["kept"],
               rejects=out["rejects"], metrics=out["metrics"], selection=[str(chosen)], tests=[str(asked)])  # fmt: skip
    assert json.loads(Path(out["metrics"]).read_text())["completion_tokens"]["tests"] == 65


def test_every_record_is_kept_or_rejected_once_in_sorted_order(inputs, tmp_path):
    out = _run(merge_code, inputs, tmp_path, True, True)
    kept = read_models(out["kept"], CodeRecord)
    keys = [(r.meta.desc_id, r.func_name, r.meta.sample_index) for r in kept]
    assert keys == sorted(keys)
    dropped = [r for r in read_jsonl(out["rejects"]) if r.get("scope") == "global"]
    assert len(kept) + len(dropped) == inputs["lines"]
    assert not {r.code for r in kept} & {r["code"] for r in dropped}
    metrics = json.loads(out["metrics"].read_text())
    assert metrics["accounting"]["adds_up"] and metrics["names_verdict"] == "FIM"
    assert list(metrics["funnel"]) == list(funnel([])), "the funnel's stages in the order samples pass them"
    # found after every shard's checks, the global drops are the funnel's last step, not counted at `unique`
    assert metrics["funnel"]["unique_across_shards"] == len(kept)
    assert metrics["funnel"]["tested"] - len(kept) == len(dropped) > 0


def test_a_function_neither_kept_nor_rejected_is_a_warning(inputs, tmp_path, caplog):
    raw = tmp_path / "raw.jsonl"
    raw.write_text((inputs["tmp"] / "raw.jsonl").read_text() + '{"source": "FIM"}\n')  # one the shards lost
    for name in ("failures.jsonl", "names_metrics.json"):
        (tmp_path / name).write_bytes((inputs["tmp"] / name).read_bytes())
    with caplog.at_level(logging.WARNING):
        out = _run(merge_code, {**inputs, "tmp": tmp_path}, tmp_path / "out", True, True)
    assert not json.loads(out["metrics"].read_text())["accounting"]["adds_up"]
    assert f"{inputs['lines'] + 10 + 1} functions generated (raw) but" in caplog.text


def test_the_same_body_under_other_names_across_shards_is_a_global_duplicate(inputs, tmp_path):
    body = "({n}, k):\n    if {n} <= 1:\n        return k\n    return {f}({n} - 1, k * {n}) + len(str(k))\n"
    for exact, near, args in [(True, False, ["n", "m", "count"]), (False, True, ["n", "n", "n"])]:
        kept_paths = []
        for number, (name, arg) in enumerate(zip(["walk", "descend", "step_down"], args, strict=True)):
            code = f"def {name}" + body.format(n=arg, f=name)  # one shard each; sorted by desc_id, the last first
            write_jsonl(tmp_path / f"kept{number}.jsonl", [_record(f"d{2 - number}", name, code, "L2R", 0, False)])
            kept_paths.append(str(tmp_path / f"kept{number}.jsonl"))
        out = _run(merge_code, {**inputs, "kept": kept_paths}, tmp_path / f"{exact}", exact, near)
        assert [r.func_name for r in read_models(out["kept"], CodeRecord)] == ["step_down"]
        dropped = [r for r in read_jsonl(out["rejects"]) if r.get("scope") == "global"]
        assert sorted(r["func_name"] for r in dropped) == ["descend", "walk"]
        assert {r["reason"] for r in dropped} == {"duplicate" if exact else "near_duplicate"}


def test_a_broken_shard_is_named_and_nothing_is_written(inputs, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(Path(inputs["kept"][0]).read_text() + '{"desc": \n')
    broken = {**inputs, "kept": [*inputs["kept"], str(bad)]}
    with pytest.raises(ValueError, match=r"bad\.jsonl:\d+: not valid JSON"):
        _run(merge_code, broken, tmp_path / "out", True, True)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_sort_keys_as_bytes_sort_like_the_tuples():
    rng = random.Random(5)
    alphabet = ["a", "b", "\x00", "\x01", "é", "\ud800", "\uffff", "\U0001f600", "\U0010ffff"]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3)))

    tuples = [(text(), text(), rng.choice([0, 1, 2, 255, 256, -1, -(2**40), 2**40])) for _ in range(3000)]
    records = [_record(d, f, "def f(): pass", "FIM", i, False) for d, f, i in tuples]
    by_bytes = sorted(range(len(records)), key=lambda i: _sort_key(records[i], i))
    assert by_bytes == sorted(range(len(records)), key=lambda i: tuples[i])  # stable: ties in input order


def test_line_reader_reads_back_what_scan_found_with_few_files_open(tmp_path):
    paths = []
    for f in range(5):
        write_jsonl(tmp_path / f"{f}.jsonl", [{"file": f, "line": i, "text": "é" * i} for i in range(20)])
        paths.append(tmp_path / f"{f}.jsonl")
    places = [(f, offset, length, record) for f, p in enumerate(paths) for offset, length, record in scan_jsonl(p)]
    random.Random(0).shuffle(places)
    with LineReader(paths, max_open=2) as lines:
        assert all(lines.read(f, offset, length) == record for f, offset, length, record in places)
        assert len(lines._fds) == 2


def test_no_records_at_all(inputs, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    nothing = {**inputs, "kept": [str(empty)]}
    new, old = (
        _run(merge_code, nothing, tmp_path / "new", True, True),
        _run(_old_merge_code, nothing, tmp_path / "old", True, True),
    )
    assert all(new[name].read_bytes() == old[name].read_bytes() for name in ("kept", "rejects", "metrics"))
