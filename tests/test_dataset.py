"""The dataset folder: Parquet plus a dataset card, read back by its real consumers (`datasets`, `huggingface_hub`).

One fake-server run of the default target makes the outputs; the export's own tests work on copies of them.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

os.environ["HF_DATASETS_OFFLINE"] = "1"  # read before `datasets` is imported; nothing here needs the network
os.environ["HF_HUB_OFFLINE"] = "1"

import datasets  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402
from conftest import make_workdir, snakemake  # noqa: E402
from fakeserver import FakeServer, Options  # noqa: E402
from huggingface_hub import DatasetCard  # noqa: E402

from evoselfcode import dataset, dataset_card  # noqa: E402
from evoselfcode.config import load_config  # noqa: E402
from evoselfcode.dataset import DatasetError, ExportInputs, export  # noqa: E402
from evoselfcode.layout import Layout  # noqa: E402

pytestmark = pytest.mark.workflow

DESCRIPTIONS = [{"id": f"t{i}", "desc": f"Task {i}: return the {w} of a list of numbers."} for i, w in
                enumerate(["sum", "mean", "median", "mode", "range", "product", "maximum"])]  # fmt: skip
CONFIG = """
api: {{base_url: "{url}", timeout: {{read: 5}}, backoff: {{base: 0.05, max: 0.2}}}}
namegen: {{n: 2}}
io: {{shard_size: 3, concurrency: 4}}
"""
DATASET = "data/generated/dataset"


@pytest.fixture(scope="module")
def server():
    with FakeServer(Options(seed=1)) as srv:
        yield srv


def _run(workdir: Path, url: str) -> Path:
    workdir.mkdir(exist_ok=True)
    make_workdir(workdir, DESCRIPTIONS, CONFIG.format(url=url))
    proc = snakemake(workdir)  # the default target
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir


@pytest.fixture(scope="module")
def done(tmp_path_factory, server) -> Path:
    return _run(tmp_path_factory.mktemp("run"), server.url)


@pytest.fixture
def outputs(done, tmp_path) -> Path:
    """A copy of the run's output folder, for tests that change or break it."""
    return Path(
        shutil.copytree(done / "data/generated", tmp_path / "generated", ignore=shutil.ignore_patterns("dataset"))
    )


def run_config(done: Path, **overrides):
    (resolved,) = (done / ".evoselfcode").glob("config-*.json")
    return load_config(resolved, overrides=overrides or None)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load(folder: Path, tmp_path: Path) -> datasets.Dataset:
    return datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf-cache"))


def as_row(record: dict, ds: datasets.Dataset) -> dict:
    """A JSONL record as the dataset gives it back: every column and struct field, a key a record lacks as None."""
    return {k: project(record.get(k), ds.features[k]) for k in ds.column_names}


def project(value, feature):
    if value is None:
        return None
    if isinstance(feature, dict):  # a struct: the keys the dataset has, those the value lacks as None
        return {k: project(value.get(k), f) for k, f in feature.items()}
    if isinstance(feature, datasets.List):
        return [project(v, feature.feature) for v in value]
    return value


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and p.name != ".snakemake_timestamp"}  # fmt: skip


def test_the_default_target_writes_a_dataset_that_loads_as_code_filtered(done, tmp_path):
    ds = load(done / DATASET, tmp_path)
    kept = records(done / "data/generated/code/filtered.jsonl")
    assert len(ds) == len(kept) > 0
    assert list(ds) == [as_row(r, ds) for r in kept]
    assert ds.column_names == ["desc", "func_name", "source", "code", "meta", "tests"]  # tests on, scoring off
    assert [p.name for p in (done / DATASET / "data").iterdir()] == ["train-00000-of-00001.parquet"]


def test_the_card_front_matter_is_what_the_hub_reads(done):
    card = DatasetCard.load(done / DATASET / "README.md")
    meta = card.data.to_dict()
    assert meta["license"] == "other"
    assert meta["language"] == ["en", "code"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    assert {"code", "python", "synthetic"} <= set(meta["tags"])
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    parquet = done / DATASET / "data/train-00000-of-00001.parquet"
    # the features the card states are those `datasets` reads from the Parquet schema
    expected = datasets.Features.from_arrow_schema(pq.read_schema(parquet))._to_yaml_list()
    assert meta["dataset_info"]["features"] == expected
    rows = len(records(done / "data/generated/code/filtered.jsonl"))
    assert meta["dataset_info"]["splits"][0]["num_examples"] == rows
    assert meta["dataset_info"]["download_size"] == parquet.stat().st_size


def test_the_card_body_tells_the_run_with_its_figures(done):
    text = (done / DATASET / "README.md").read_text()
    cfg = run_config(done)
    names = json.loads((done / "data/generated/names/metrics.json").read_text())
    code = json.loads((done / "data/generated/code/metrics.json").read_text())
    kept = records(done / "data/generated/code/filtered.jsonl")
    assert f"config digest `{cfg.digest()}`" in text
    assert "**No licence was chosen**" in text
    assert f"| descriptions | {len(DESCRIPTIONS)} |" in text
    assert f"| names sampled, FIM | {names['modes']['FIM']['sampled']} |" in text
    assert f"| functions: generated | {code['funnel']['generated']} |" in text
    assert f"| **rows in this dataset** | **{len(kept)}** |" in text
    assert names["verdict"] in text
    lo, hi = names["modes"]["FIM"]["coverage"]["ci95"]
    assert f"| coverage (descriptions with a kept name) | {names['modes']['FIM']['coverage']['value']:.3g} " \
           f"[{lo:.3g}, {hi:.3g}]" in text  # fmt: skip
    assert text.count("```python\ndef ") == 3  # three examples
    assert kept[0]["code"].rstrip("\n") in text and kept[-1]["code"].rstrip("\n") in text
    assert "## Decontamination" not in text  # a section this run's metrics lack
    assert f"| `code: passed` | {code['execution']['passed']} |" in text  # the tests stage's, with tests on
    assert 'load_dataset("path/to/this/folder", split="train")' in text
    assert f"base_url: {cfg.api.base_url}" in text  # the config to reproduce, keys that differ from the defaults


def test_a_second_run_with_the_same_seeds_writes_the_same_bytes(done, server, tmp_path):
    again = _run(tmp_path / "again", server.url)
    assert files(again / DATASET) == files(done / DATASET)


def test_the_export_command_writes_the_same_folder_without_snakemake(done, tmp_path):
    (resolved,) = (done / ".evoselfcode").glob("config-*.json")
    out = tmp_path / "exported"
    cmd = [
        sys.executable,
        "-m",
        "evoselfcode",
        "export",
        "data/generated",
        "--out",
        str(out),
        "--config",
        str(resolved),
    ]
    proc = subprocess.run(cmd, cwd=done, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert files(out) == files(done / DATASET)
    proc = subprocess.run(cmd, cwd=done, capture_output=True, text=True, timeout=300)  # again: replaces its own folder
    assert proc.returncode == 0, proc.stderr
    assert files(out) == files(done / DATASET)


def test_large_outputs_are_written_in_shards_that_load_in_order(done, outputs, tmp_path):
    path = outputs / "code/filtered.jsonl"
    many = records(path) * 5
    path.write_text("".join(json.dumps(r) + "\n" for r in many))
    cfg = run_config(done, dataset={"shard_rows": 3})
    export(cfg, ExportInputs.of(Layout.under(outputs, cfg)), tmp_path / "ds")
    shards = sorted(p.name for p in (tmp_path / "ds/data").iterdir())
    n = -(-len(many) // 3)
    assert shards == [f"train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    ds = load(tmp_path / "ds", tmp_path)
    assert list(ds) == [as_row(r, ds) for r in many]


def test_tests_scores_and_extra_meta_become_columns(done, outputs, tmp_path):
    kept = records(outputs / "code/filtered.jsonl")
    for i, r in enumerate(kept):  # as the execution stage writes them: passing asserts, counts in meta
        outcomes = {"pass": 3, **({"exec_error:ValueError": 1} if i % 2 else {})}
        r["tests"] = [f"assert {r['func_name']}([{j}]) == {i}" for j in range(1 + i % 3)]
        r["meta"]["tests"] = {"passed": 3, "run": 3 + i % 2, "outcomes": outcomes, "dropped": {}, "tokens": 10.5}
        r["meta"]["note"] = None if i else "first"
        r["score"] = {"ppl": 1.5 + i, "mean_logprob": -0.4, "tokens": 10 + i}
    kept[-1]["meta"]["tests"]["tokens"] = 12  # an int among floats
    (outputs / "code/scored.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    metrics = json.loads((outputs / "code/metrics.json").read_text())
    metrics["execution"] = {"functions": len(kept), "passed": 2, "reasons": {"tests_failed": 1}}
    (outputs / "code/metrics.json").write_text(json.dumps(metrics))
    cfg = run_config(done, scoring={"enabled": True}, dataset={"license": "apache-2.0"})
    export(cfg, ExportInputs.of(Layout.under(outputs, cfg)), tmp_path / "ds")
    ds = load(tmp_path / "ds", tmp_path)
    assert ds.column_names == ["desc", "func_name", "source", "code", "meta", "score", "tests"]
    assert list(ds) == [as_row(r, ds) for r in kept]
    tests = ds.features["meta"]["tests"]
    assert set(tests) == {"passed", "run", "outcomes", "tokens"}  # `dropped`, empty in every record, is left out
    assert set(tests["outcomes"]) == {"pass", "exec_error:ValueError"}
    assert tests["tokens"].dtype == "float64" and ds[len(kept) - 1]["meta"]["tests"]["tokens"] == 12.0
    assert ds.features["meta"]["note"].dtype == "string"
    card = DatasetCard.load(tmp_path / "ds/README.md")
    assert card.data.license == "apache-2.0"
    features = datasets.Features.from_arrow_schema(pq.read_schema(next((tmp_path / "ds/data").iterdir())))
    assert card.data.to_dict()["dataset_info"]["features"] == features._to_yaml_list()
    assert "## Execution" in card.text and "| `code: reasons.tests_failed` | 1 |" in card.text
    assert f"| functions scored and kept | {len(kept)} |" in card.text
    for i in {0, len(kept) // 2, len(kept) - 1}:  # the examples, with the tests they passed
        assert kept[i]["code"].rstrip("\n") in card.text and "\n".join(kept[i]["tests"]) in card.text


def test_the_card_names_only_the_checks_the_run_applied(done, outputs, tmp_path):
    cfg = run_config(done, filters={"enable_ruff": False, "dedup": {"near": False}}, tests={"enabled": False},
                     decontamination={"enabled": False})  # fmt: skip
    export(cfg, ExportInputs.of(Layout.under(outputs, cfg)), tmp_path / "ds")
    intro = (tmp_path / "ds/README.md").read_text().split("## Licence")[0]
    assert "filtered (AST checks, exact deduplication)." in intro
    assert "ruff" not in intro and "near" not in intro and "benchmark" not in intro
    default = (done / DATASET / "README.md").read_text().split("## Licence")[0]
    assert (
        "ruff checks, exact and near deduplication, decontamination against benchmark tasks, chosen by agreement: "
        in (default)
    )
    assert "## Selection" in (done / DATASET / "README.md").read_text()  # the selection's figures


def test_secrets_in_the_config_stay_off_the_card(done, outputs, tmp_path):
    cfg = run_config(
        done,
        api={"base_url": "http://user:hunter2@example.com:8000", "headers": {"Authorization": "Bearer sk-live-123",
                                                                            "X-Key": "${MY_KEY}"}},
    )  # fmt: skip
    export(cfg, ExportInputs.of(Layout.under(outputs, cfg)), tmp_path / "ds")
    text = (tmp_path / "ds/README.md").read_text()
    assert "hunter2" not in text and "sk-live-123" not in text
    assert "http://***@example.com:8000" in text and "${MY_KEY}" in text


def test_the_card_shows_what_decontamination_set_aside_per_benchmark(done, outputs, tmp_path):
    names_path, code_path = outputs / "names/metrics.json", outputs / "code/metrics.json"
    names, code = json.loads(names_path.read_text()), json.loads(code_path.read_text())
    names["contaminated_descriptions"] = {"humaneval": 5, "mbpp": 2}  # as names_metrics and merge_code write them
    code["decontamination"] = {"descriptions": names["contaminated_descriptions"], "functions": {"humaneval": 1}}
    names_path.write_text(json.dumps(names))
    code_path.write_text(json.dumps(code))
    cfg = run_config(done)
    export(cfg, ExportInputs.of(Layout.under(outputs, cfg)), tmp_path / "ds")
    text = (tmp_path / "ds/README.md").read_text()
    assert "| descriptions set aside (they match a benchmark) | 7 |" in text  # in the funnel
    assert "## Decontamination" in text
    for row in ("descriptions set aside: humaneval` | 5", "descriptions set aside: mbpp` | 2",
                "functions dropped: humaneval` | 1"):  # fmt: skip
        assert f"| `{row} |" in text


def _no_folder(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.*"))  # no temporary folder left either


def _first_record(lines: list[str], **change) -> list[str]:
    first = json.loads(lines[0])
    for key, value in change.items():
        first["meta" if key == "meta" else key] = {**first["meta"], **value} if key == "meta" else value
    return [json.dumps(first), *lines[1:]]


BAD = {  # what is done to code/filtered.jsonl's lines, and the error's start
    "missing": (None, "filtered.jsonl does not exist"),
    "bad-json": (lambda lines: [*lines, "{not json"], "filtered.jsonl:{last}: not valid JSON"),
    "no-code": (lambda lines: [*lines, '{"desc": "d", "func_name": "f", "source": "FIM"}'],
                "filtered.jsonl:{last}: code: Field required"),
    "bad-source": (lambda lines: _first_record(lines, source="R2L"), "filtered.jsonl:1: source: Input should be"),
    "meta-fixed": (lambda lines: _first_record(lines, meta={"sample_index": "0"}),
                   'filtered.jsonl:1: meta.sample_index: "0" does not fit its column (int64)'),
    "meta-params": (lambda lines: _first_record(lines, meta={"params": {"temperature": 0.2, "top_k": 5}}),
                    "filtered.jsonl:1: meta.params: "),
    "meta-types": (lambda lines: [*lines, *(_first_record(lines, meta={"x": x})[0] for x in ("a", 1))],
                   "filtered.jsonl:{last}: meta.x: an int where earlier records hold a string"),
    "meta-shapes": (lambda lines: [*lines, *(_first_record(lines, meta={"x": x})[0] for x in ({"a": [1]}, {"a": 2}))],
                    "filtered.jsonl:{last}: meta.x: an int where earlier records hold a list"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_input_names_file_and_line_and_writes_nothing(done, outputs, tmp_path, case):
    change, message = BAD[case]
    path = outputs / "code/filtered.jsonl"
    if change is None:
        path.unlink()
    else:
        lines = change(path.read_text().splitlines())
        path.write_text("".join(line + "\n" for line in lines))
        message = message.format(last=len(lines))
    cfg = run_config(done)
    with pytest.raises(DatasetError, match=re.escape(message)):
        export(cfg, ExportInputs.of(Layout.under(outputs, cfg)), tmp_path / "ds")
    _no_folder(tmp_path / "ds")


def test_no_records_make_an_empty_dataset_whose_card_says_why(done, outputs, tmp_path):
    (outputs / "code/filtered.jsonl").write_text("")
    cfg = run_config(done)
    assert export(cfg, ExportInputs.of(Layout.under(outputs, cfg)), tmp_path / "ds") == 0
    (data,) = (tmp_path / "ds/data").iterdir()
    table = pq.read_table(data)
    assert table.num_rows == 0 and "tests" in table.schema.names  # the columns of a full run's dataset
    card = (tmp_path / "ds/README.md").read_text()
    assert "**This dataset is empty**: all " in card and "generated functions were dropped" in card


def test_records_of_another_model_need_the_runs_config(done, outputs, tmp_path):
    cfg = run_config(done, api={"model": "other-model"})
    with pytest.raises(DatasetError, match="made with Qwen2.5-Coder-32B, but the config says other-model"):
        export(cfg, ExportInputs.of(Layout.under(outputs, cfg)), tmp_path / "ds")
    _no_folder(tmp_path / "ds")


def test_a_failure_while_writing_leaves_no_folder_and_keeps_the_old_one(done, outputs, tmp_path, monkeypatch):
    cfg = run_config(done)
    out = tmp_path / "ds"
    export(cfg, ExportInputs.of(Layout.under(outputs, cfg)), out)
    before = files(out)

    def broken(run):
        raise RuntimeError("disk full")

    monkeypatch.setattr(dataset.dataset_card, "render", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export(cfg, ExportInputs.of(Layout.under(outputs, cfg)), out)
    assert files(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_killed_exports_leftovers_go_and_only_its_own(done, outputs, tmp_path):
    out = tmp_path / "ds[1]"  # glob characters in the name
    stale, other = tmp_path / ".ds[1].abc.tmp", tmp_path / ".ds1.abc.tmp"  # the other: an export to ds1, running
    stale.mkdir()
    other.mkdir()
    cfg = run_config(done)
    export(cfg, ExportInputs.of(Layout.under(outputs, cfg)), out)
    assert (out / "README.md").is_file()
    assert not stale.exists() and other.exists()


def test_an_existing_folder_that_is_not_a_dataset_is_left_alone(done, outputs, tmp_path):
    cfg = run_config(done)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="is not a dataset folder evoselfcode wrote"):
        export(cfg, ExportInputs.of(Layout.under(outputs, cfg)), tmp_path / "mine")
    assert (tmp_path / "mine/notes.txt").read_text() == "keep me"


def test_the_export_command_without_a_config_needs_the_workflows_default(tmp_path, monkeypatch, caplog):
    from evoselfcode.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["export", "data/generated", "--out", "ds"]) == 1
    assert "no --config given and no configs/datagen.yaml here" in caplog.text
    assert not (tmp_path / "ds").exists()


def test_the_export_command_reads_the_run_its_config_names(done, outputs, tmp_path, monkeypatch, capsys):
    from evoselfcode.cli import main

    run = shutil.copytree(outputs, tmp_path / "exp")  # io.out_*_dir moved the run; another sits in data/generated
    decoy = outputs / "code/filtered.jsonl"
    decoy.write_text(decoy.read_text().splitlines(keepends=True)[0])
    shutil.copytree(outputs, tmp_path / "data/generated")
    (tmp_path / "exp.yaml").write_text(f"io: {{out_code_dir: {run}/code, out_names_dir: {run}/names}}\n")
    (resolved,) = (done / ".evoselfcode").glob("config-*.json")
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--out", "ds", "--config", str(resolved), "--config", "exp.yaml"]) == 0
    assert f"ds: {len(records(run / 'code/filtered.jsonl'))} rows" in capsys.readouterr().out


@pytest.mark.parametrize(
    "column",
    [pa.string(), pa.list_(pa.string()), pa.list_(pa.struct([("a", pa.int64())])), pa.list_(pa.list_(pa.float64())),
     pa.struct([("l", pa.list_(pa.bool_())), ("s", pa.struct([("x", pa.string())]))])],
    ids=str,
)  # fmt: skip
def test_card_features_are_spelled_as_datasets_spells_them(column):
    schema = pa.schema([("x", column)])
    expected = datasets.Features.from_arrow_schema(schema)._to_yaml_list()
    assert [dataset_card._feature(f.name, f.type) for f in schema] == expected


def test_an_examples_description_cannot_break_the_cards_layout():
    from markdown_it import MarkdownIt

    desc = "Parse a config.\n\n```\nparse('a=1') == {'a': 1}\n```\n# Not a heading\n~~~"
    code = "def parse(text):\n    return dict(line.split('=') for line in text.splitlines())\n"
    record = {"func_name": "parse", "source": "FIM", "desc": desc, "code": code, "tests": ["assert parse('') == {}"]}
    tokens = MarkdownIt("commonmark").parse("\n".join(dataset_card._examples([record, record])))
    assert [t.tag for t in tokens if t.type == "heading_open"] == ["h2"]  # "Examples" only
    fences = [(t.info, t.content) for t in tokens if t.type == "fence"]
    assert [info for info, _ in fences] == ["text", "python", "python"] * 2
    assert fences[0][1].replace("\u200b", "").rstrip("\n") == desc and fences[1][1] == code
