"""The dataset card (README.md) of the dataset folder: YAML front matter the Hub reads, then the run in Markdown.

Everything on it comes from the run: the config, the metrics files and the records; nothing from the clock.
Sections other stages add to the metrics (`decontamination`, `execution`) are shown when they are there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import yaml

from evoselfcode import __version__
from evoselfcode.config import Config, redact_url
from evoselfcode.layout import FAILURES, Code, Names
from evoselfcode.summary import why_empty

MARK = "<!-- written by evoselfcode export -->"  # an existing folder is replaced only when its card holds this
SPLIT = "train"
DATA_FILES = f"data/{SPLIT}-*"
SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]  # fmt: skip
COLUMNS = {
    "desc": "the task description the function was generated for",
    "func_name": "the function's name, sampled in stage A",
    "source": "the stage-A mode that produced the name: `FIM` (fill-in-the-middle) or `L2R` (left to right)",
    "code": "the function, as it passed the checks named above",
    "meta": "description id, sampling parameters, request seed, model, finish reason, and what later stages add",
    "score": "the model's own perplexity of the function given its prompt (`ppl`, `mean_logprob`, `tokens`)",
    "tests": "the assertions the function passed in the sandbox (written from the description; those that "
    "every candidate or none passed are left out)",
}
# the settings a reader of the card needs to judge the data; the whole config is in "Reproduce"
SETTINGS = ("meta.seed", "namegen.modes", "namegen.fim_preset", "namegen.temperature", "namegen.top_p", "namegen.n",
            "namegen.select", "codegen.temperature", "codegen.top_p", "codegen.max_new_tokens", "codegen.n",
            "filters.min_code_len", "filters.max_code_len", "filters.enable_ast", "filters.enable_ruff",
            "filters.ruff_rules", "filters.dedup", "scoring.enabled", "scoring.max_ppl")  # fmt: skip
# what "kept" means with the tests stage on, per tests.selection
CHOSEN = {
    "agreement": "chosen by agreement: tests the model wrote from each description (never from a candidate's "
    "code) run on every candidate in a sandbox, and the largest group of candidates that behave alike and pass "
    "tests a trivial function fails is kept",
    "per_function": "model-written tests (written from each description) run in a sandbox on each function alone",
}
SECTIONS = ("tests", "execution", "decontamination")  # later stages' sections, shown whole where the config has them
AB_METRICS = {
    "compliance": "names passing the name rules / sampled",
    "weak_rate": "weak names / sampled",
    "coverage": "descriptions with a kept name",
    "distinct_per_desc": "distinct kept names per description",
    "relevance": "share of the name's words in the description",
    "logprob": "mean log-prob of a kept name",
}


@dataclass(frozen=True)
class Run:
    """What the card tells: the config, the metrics files' contents, and the written data."""

    cfg: Config
    names_metrics: dict
    code_metrics: dict
    schema: pa.Schema
    rows: int
    arrow_bytes: int  # the data in memory: the split's num_bytes
    parquet_bytes: int  # the files: download_size
    examples: list[dict]


def size_category(rows: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if rows < limit), "100M<n<1B")


def _feature(name: str, t: pa.DataType) -> dict:
    """A column as the Hub's `dataset_info.features` spells it (as `datasets.Features` writes it)."""
    return {"name": name, **_dtype(t)}


def _dtype(t: pa.DataType) -> dict:
    if pa.types.is_struct(t):
        return {"struct": [_feature(f.name, f.type) for f in t]}
    if pa.types.is_list(t):
        inner = _dtype(t.value_type)  # a list of a plain type names the type; of objects, lists their fields
        return {"list": inner.get("dtype", inner.get("struct", inner))}
    return {"dtype": {pa.bool_(): "bool", pa.int64(): "int64", pa.float64(): "float64", pa.string(): "string"}[t]}


def front_matter(run: Run) -> dict:
    cfg = run.cfg
    return {
        "license": cfg.dataset.license or "other",
        "language": [*dict.fromkeys([*cfg.dataset.language, "code"])],
        "size_categories": [size_category(run.rows)],
        "task_categories": ["text-generation"],
        "tags": ["code", "python", "synthetic", "evoselfcode"],
        "pretty_name": f"EvoSelfCode functions ({cfg.api.model})",
        "configs": [{"config_name": "default", "data_files": [{"split": SPLIT, "path": DATA_FILES}]}],
        "dataset_info": {
            "features": [_feature(f.name, f.type) for f in run.schema],
            "splits": [{"name": SPLIT, "num_bytes": run.arrow_bytes, "num_examples": run.rows}],
            "download_size": run.parquet_bytes,
            "dataset_size": run.arrow_bytes,
        },
    }


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.3g}"


def _ci(metric: dict | None) -> str:
    if not metric or metric.get("value") is None:
        return "–"
    ci = metric.get("ci95")
    return f"{_num(metric['value'])} [{_num(ci[0])}, {_num(ci[1])}]" if ci else _num(metric["value"])


def _table(header: list[str], rows: Iterable[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(c if isinstance(c, str) else _num(c) for c in row) + " |" for row in rows]


def _server(cfg: Config) -> str:
    if cfg.api.base_url == "embedded":
        return "the embedded llama.cpp server, started by the workflow on the machine that ran it"
    return f"`{redact_url(cfg.api.base_url)}` ({cfg.api.mode} mode, route `{cfg.api.route}`)"


def changed_settings(cfg: Config) -> dict:
    """The config as a file of only the keys that differ from the defaults, with credentials cut."""

    def diff(value: dict, default: dict) -> dict:
        out = {}
        for key, v in value.items():
            d = default.get(key)
            if isinstance(v, dict) and isinstance(d, dict) and d:
                if sub := diff(v, d):
                    out[key] = sub
            elif v != d:
                out[key] = v
        return out

    changed = diff(cfg.model_dump(mode="json"), Config.model_construct().model_dump(mode="json"))  # defaults
    if "headers" in changed.get("api", {}):
        changed["api"]["headers"] = cfg.api.shown_headers()
    if "base_url" in changed.get("api", {}):
        changed["api"]["base_url"] = redact_url(cfg.api.base_url)
    return changed


def _flat(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _flat(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list) and not all(isinstance(v, int | float | str) for v in data):
        for i, value in enumerate(data):
            yield from _flat(value, f"{prefix}[{i}]")
    else:
        yield prefix, ", ".join(map(str, data)) if isinstance(data, list) else data


def _summary(title: str, sections: dict[str, Any]) -> list[str]:
    """A section another stage wrote into a metrics file (decontamination, execution), as a table of figures."""
    rows = [[f"`{where}: {key}`", value] for where, data in sections.items() for key, value in _flat(data)]
    return ["", f"## {title}", "", *_table(["figure", "value"], rows)] if rows else []


def _funnel(run: Run) -> list[str]:
    names, code = run.names_metrics, run.code_metrics
    stages = [["descriptions", names.get("descriptions")]]
    if names.get("quarantined_input_lines"):
        stages.append(["input lines quarantined (bad lines)", names["quarantined_input_lines"]])
    if names.get("repeated_descriptions"):
        stages.append(["repeated descriptions set aside (lines without an id)", names["repeated_descriptions"]])
    if set_aside := sum(names.get("contaminated_descriptions", {}).values()):
        stages.append(["descriptions set aside (they match a benchmark)", set_aside])
    for mode, m in names.get("modes", {}).items():
        stages += [[f"names sampled, {mode}", m.get("sampled")], [f"names kept, {mode}", m.get("kept")]]
    stages += [[f"functions: {stage}", count] for stage, count in code.get("funnel", {}).items()]  # in stage order
    if run.cfg.scoring.enabled:
        stages.append(["functions scored and kept", run.rows])
    stages.append(["**rows in this dataset**", f"**{run.rows:,}**"])
    lines = ["", "## How many made it", "", *_table(["stage", "count"], stages)]
    if reasons := code.get("reasons"):
        lines += ["", "Why functions were dropped: " + ", ".join(f"`{r}` {n:,}" for r, n in reasons.items()) + "."]
    if failed := (names.get("failed_requests") or 0) + (code.get("failed_requests") or 0):
        stage_a, stage_b = Names(Names.NAME), Code(Code.NAME)  # as the output folder holds them
        tests = [stage_b.tests.folder(FAILURES) + "/"] if run.cfg.tests.enabled else []
        files = [stage_a.failures(), stage_b.failures(), *tests]
        lines += ["", f"Requests that failed after retries: {failed:,} ({', '.join(f'`{f}`' for f in files)})."]
    return lines


def _ab(names: dict) -> list[str]:
    modes, comparison = names.get("modes", {}), names.get("comparison", {})
    rows = []
    for metric, meaning in AB_METRICS.items():
        c = comparison.get(metric, {})
        diff = _num(c.get("diff_fim_minus_l2r"))
        if c.get("ci95"):
            diff += f" [{_num(c['ci95'][0])}, {_num(c['ci95'][1])}]"
        fim, l2r = _ci(modes.get("FIM", {}).get(metric)), _ci(modes.get("L2R", {}).get(metric))
        rows.append([f"{metric} ({meaning})", fim, l2r, diff, c.get("p_value"), c.get("better") or "–"])
    return [
        "",
        "## A/B test: FIM vs L2R names",
        "",
        f"Verdict: **{names.get('verdict', 'not recorded')}** (alpha {names.get('alpha', '–')}).",
        "",
        *_table(["metric", "FIM [95% CI]", "L2R [95% CI]", "FIM - L2R", "p", "better"], rows),
        "",
        *(f"- {kind}: {text}" for kind, text in names.get("tests", {}).items()),
    ]


def _fenced(text: str) -> str:
    return text.rstrip("\n").replace("```", "`\u200b``")  # a fence inside the text must not end the block


def _examples(records: list[dict]) -> list[str]:
    lines = ["", "## Examples"]
    for r in records:
        lines += ["", f"**{r['func_name']}** ({r['source']}) for the description:", "", "```text", _fenced(r["desc"]),
                  "```", "", "```python", _fenced(r["code"]), "```"]  # fmt: skip
        if r.get("tests"):
            lines += ["", "The tests it passed:", "", "```python", *map(_fenced, r["tests"]), "```"]
    return lines


def _empty(run: Run) -> list[str]:
    """For a dataset without rows, why: a run that keeps nothing still ends in a dataset, and its card says so."""
    if run.rows:
        return []
    why = why_empty(run.names_metrics, run.code_metrics)
    return ["", f"**This dataset is empty**: {why}. The table below shows where the functions stopped; the run's "
            "rejects files hold each one with its reason. It loads with `streaming=True` (`datasets` makes no "
            "in-memory split of zero rows) or with pyarrow, with the columns below."]  # fmt: skip


def _intro(run: Run) -> list[str]:
    cfg = run.cfg
    f = cfg.filters
    static = [name for name, on in (("AST", f.enable_ast), ("ruff", f.enable_ruff)) if on]
    checks = [" and ".join(static) + " checks"] if static else []
    dedup = [name for name, on in (("exact", f.dedup.exact), ("near", f.dedup.near)) if on]
    checks += [" and ".join(dedup) + " deduplication"] if dedup else []
    checks += ["decontamination against benchmark tasks"] if cfg.decontamination.enabled else []
    checks += [CHOSEN[cfg.tests.selection]] if cfg.tests.enabled else []
    checks += ["perplexity scoring under the model"] if cfg.scoring.enabled else []
    checks = ", ".join(checks) or "length checks only"
    if cfg.dataset.license:
        licence = f"`{cfg.dataset.license}` (`dataset.license` in the run's config)."
    else:
        licence = (
            "**No licence was chosen**, so the card says `other`. Set `dataset.license` in the config (the "
            "model's licence and your descriptions' may constrain it) and export again before sharing."
        )
    return [
        MARK,
        f"# EvoSelfCode functions ({cfg.api.model})",
        "",
        f"{run.rows:,} Python functions written by **{cfg.api.model}** for natural-language task descriptions with "
        f"EvoSelfCode {__version__}: function names sampled in two modes (FIM and L2R, compared as an A/B test), "
        f"continued into functions, then filtered ({checks}).",
        *_empty(run),
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'ds = load_dataset("path/to/this/folder", split="train")  # or the Hub repo id, once pushed',
        "```",
        "",
        "## Licence",
        "",
        licence,
        "",
        "## Columns",
        "",
        *_table(["column", "holds"], ([f"`{name}`", COLUMNS[name]] for name in run.schema.names)),
    ]


def _shown(cfg: Config) -> list[str]:
    later = [f"{s}.{k}" for s in SECTIONS if s in type(cfg).model_fields for k in getattr(cfg, s).model_dump()]
    return [*SETTINGS, *later]


def _made(run: Run) -> list[str]:
    cfg = run.cfg
    return [
        "",
        "## How it was made",
        "",
        f"- model: `{cfg.api.model}`, served by {_server(cfg)}",
        f"- evoselfcode {__version__}, config digest `{cfg.digest()}`",
        f"- descriptions: `{cfg.io.input_desc_path}` (not in this folder)",
        "",
        *_table(["setting", "value"], ([f"`{k}`", json.dumps(v)] for k, v in cfg.settings(_shown(cfg)).items())),
    ]


def _reproduce(cfg: Config) -> list[str]:
    changed = changed_settings(cfg)
    text = yaml.safe_dump(changed, sort_keys=False, allow_unicode=True).rstrip("\n") if changed else "# all defaults"
    return [
        "",
        "## Reproduce",
        "",
        "The same descriptions, this config (the keys that differ from `configs/datagen.yaml`) and a server that "
        "honours `seed` give the same records, byte for byte:",
        "",
        "```yaml",
        text,
        "```",
        "",
        "```bash",
        "snakemake -j 32 --configfile my.yaml   # my.yaml: the config above; writes data/generated/dataset/",
        "evoselfcode export data/generated --out DIR --config configs/datagen.yaml --config my.yaml   # no server",
        "```",
        "",
    ]


def render(run: Run) -> str:
    names, code = run.names_metrics, run.code_metrics
    removed = code.get("decontamination") or {}  # per benchmark: descriptions set aside, functions dropped
    decontamination = {
        "descriptions set aside": removed.get("descriptions") or {},
        "functions dropped": removed.get("functions") or {},
    }
    execution = {"code": code["execution"]} if isinstance(code.get("execution"), dict) else {}
    selection = {"code": code["selection"]} if isinstance(code.get("selection"), dict) else {}
    body = [
        *_intro(run),
        *_made(run),
        *_funnel(run),
        *_ab(names),
        *_summary("Decontamination", decontamination),
        *_summary("Execution", execution),
        *_summary("Selection", selection),
        *_examples(run.examples),
        *_reproduce(run.cfg),
    ]
    head = yaml.safe_dump(front_matter(run), sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{head}---\n\n" + "\n".join(body)
