"""`python -m evoselfcode STEP ...`: every pipeline step as a plain command with explicit paths."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import get_args

from evoselfcode import __version__
from evoselfcode.clients.errors import LLMError
from evoselfcode.config import DEFAULT_CONFIG, Config, ConfigError, Embedded, load_config, redact_url

log = logging.getLogger("evoselfcode")
# run without a config: their arguments name what they read, and what they write (model: the cache, config-docs --write)
TOOLS = ("stats", "sample", "validate", "summary", "config-docs", "model")
EXPORT = "write a run's final records as a Parquet dataset with a dataset card (README.md), loadable with `datasets`"


HEARTBEAT_EVERY = 30.0  # seconds between progress lines on a console that is not a terminal (no tqdm bar there)


class _Every(logging.Filter):
    """Lets a record through at most once every `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.last = seconds, float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.created - self.last < self.seconds:
            return False
        self.last = record.created
        return True


def _setup_logging(log_file: str | None) -> None:
    """Everything to the job's log file when there is one; the terminal then gets warnings and errors.

    Off a terminal (a pipe, nohup, a batch system) the console also gets a progress line every
    HEARTBEAT_EVERY seconds, naming the job's log, so a long run shows life beyond the job logs.
    """
    console = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [console]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
        console.setLevel(logging.WARNING)
        if not sys.stderr.isatty():
            heartbeat = logging.StreamHandler(sys.stderr)
            heartbeat.setFormatter(logging.Formatter(f"%(asctime)s {log_file}: %(message)s", "%H:%M:%S"))
            heartbeat.addFilter(logging.Filter("evoselfcode.runner.progress"))
            heartbeat.addFilter(_Every(HEARTBEAT_EVERY))
            handlers.append(heartbeat)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers)


def _reasons(rule: str) -> str:
    """The reason ids of a rule's checks, in the order they run (`datagen.checks.STAGE_B`)."""
    from evoselfcode.datagen.checks import STAGE_B

    reasons = (r + "*" if r.endswith(":") else r for cls in STAGE_B if cls.rule == rule for r in cls.reasons)
    return ", ".join(dict.fromkeys(reasons))


def _client(cfg: Config):
    from evoselfcode.clients import make_client
    from evoselfcode.embedded import resolve_base_url

    url = resolve_base_url(cfg.api)
    log.info("server %s (%s mode, model %s)", redact_url(url), cfg.api.mode, cfg.api.model)
    return make_client(cfg.api, base_url=url, concurrency=cfg.io.concurrency)


def _scorer(cfg: Config):
    from evoselfcode.clients import make_scorer
    from evoselfcode.embedded import resolve_base_url

    url = resolve_base_url(cfg.api)
    log.info("scoring with %s (model %s)", redact_url(url), cfg.api.model)
    return make_scorer(cfg.api, base_url=url, concurrency=cfg.io.concurrency)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evoselfcode", description=__doc__)
    p.add_argument("--version", action="version", version=f"evoselfcode {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def step(name: str, help: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help, description=help)
        s.add_argument("--config", action="append", required=True, help="config file(s), later ones override")
        s.add_argument("--log", help="also write the log to this file")
        return s

    s = step("split", "write one shard of the checked description file, without those that match a benchmark")
    s.add_argument("source", help="the description file (io.input_desc_path)")
    s.add_argument("--shard", required=True)
    s.add_argument("--index", required=True, help="the benchmark index (data/shards/benchmarks/index-*.json)")
    s.add_argument("--out", required=True)
    s.add_argument("--contaminated", required=True, help="where the descriptions that match a benchmark go")

    s = step("quarantine", "list the description file's bad lines, with io.on_bad_line: skip")
    s.add_argument("source", help="the description file (io.input_desc_path)")
    s.add_argument("--out", required=True)

    s = step("generate-names", "sample function names for a shard in both modes")
    s.add_argument("shard")
    s.add_argument("--out", required=True)
    s.add_argument("--failures", required=True)
    s.add_argument("--timing", required=True, help="per-request wall-clock (JSONL), kept apart from the data")

    s = step("filter-names", "keep compliant, fitting names; one reason per rejected sample")
    s.add_argument("raw")
    s.add_argument("--out", required=True)
    s.add_argument("--rejects", required=True)

    s = step("names-metrics", "A/B metrics of FIM vs L2R names")
    for flag in ("--raw", "--kept", "--rejects", "--failures", "--out"):
        s.add_argument(flag, required=True)
    s.add_argument("--shards", nargs="+", required=True)
    s.add_argument("--quarantine", required=True)
    s.add_argument("--contaminated", nargs="+", required=True, help="the shards' descriptions set aside")

    s = step("timing", "wall-clock per mode from the shards' request timings")
    s.add_argument("--shards", nargs="+", required=True, help="{names,code}/timing/{shard}.jsonl")
    s.add_argument("--test-shards", nargs="*", help="code/tests/timing/{shard}.jsonl (none: the tests stage is off)")
    s.add_argument("--kept", required=True, help="the stage's merged kept records, to count them per mode")
    s.add_argument("--out", required=True)

    s = step("generate-code", "continue the selected names of a shard into functions")
    s.add_argument("names")
    s.add_argument("--out", required=True)
    s.add_argument("--failures", required=True)
    s.add_argument("--timing", required=True, help="per-request wall-clock (JSONL), kept apart from the data")

    s = step("filter-code", f"check a shard's functions; a dropped one gets the first of: {_reasons('filter_code')}")
    s.add_argument("raw")
    s.add_argument("--index", required=True, help="the benchmark index (data/shards/benchmarks/index-*.json)")
    s.add_argument("--out", required=True)
    s.add_argument("--rejects", required=True)

    s = step("generate-tests", "ask the model for assert tests of each description of a shard (not of a function)")
    s.add_argument("raw", help="code/raw/{shard}.jsonl: the descriptions with candidates, and their signatures")
    s.add_argument("--out", required=True)
    s.add_argument("--failures", required=True)
    s.add_argument("--timing", required=True, help="per-request wall-clock (JSONL), kept apart from the data")

    s = step(
        "execute-tests",
        "run every candidate of each description against its tests in the sandbox and keep the ones chosen "
        f"(tests.selection); the others get one of: {_reasons('execute_tests')}",
    )
    s.add_argument("kept", help="code/filtered/{shard}.jsonl")
    s.add_argument("--static-rejects", required=True, help="code/rejects/{shard}.jsonl (its duplicates are votes)")
    s.add_argument("--tests", required=True, help="code/tests/raw/{shard}.jsonl")
    s.add_argument("--out", required=True)
    s.add_argument("--rejects", required=True)
    s.add_argument("--selection", required=True, help="how each description's candidates were chosen (JSONL)")
    s.add_argument("--workers", type=int, default=1, help="sandboxes at once (the rule's threads)")

    s = step("merge-code", "merge kept functions of all shards with global dedup; write the code metrics")
    s.add_argument("--kept", nargs="+", required=True)
    s.add_argument("--shard-rejects", nargs="+", required=True)
    s.add_argument("--failures", nargs="+", required=True, help="failed code requests, then the tests' (if on)")
    for flag in ("--raw", "--names-metrics", "--out", "--rejects", "--metrics"):
        s.add_argument(flag, required=True)
    s.add_argument("--selection", nargs="*", default=[], help="code/tests/selection/{shard}.jsonl (tests on)")

    s = step("score", "score kept functions with the model's own log-probs (perplexity given their prompt)")
    s.add_argument("records")
    for flag in ("--out", "--rejects", "--failures", "--timing"):
        s.add_argument(flag, required=True)

    s = step("store", "the answer store (store.dir): its size, this run's answers from it and asked; --prune")
    s.add_argument("--prune", action="store_true",
                   help="remove the answers that no output of this run (or of --keep folders) used")  # fmt: skip
    s.add_argument("--keep", nargs="*", default=[], metavar="DIR",
                   help="other runs' output folders whose answers stay (they share the store)")  # fmt: skip

    s = sub.add_parser("merge", help="concatenate JSONL files in order", description="concatenate JSONL files")
    s.add_argument("sources", nargs="+")
    s.add_argument("--out", required=True)
    s.add_argument("--log")
    s.add_argument("--config", action="append", help="config file(s): only named in the log, as every job's are")

    s = step("server", "start or stop the embedded llama.cpp server")
    s.add_argument("action", choices=["start", "stop"])

    s = step("probe", "ask the configured server what it supports")

    s = step("plot", "draw the report's plots from the metrics and records (rules/report.smk)")
    for flag in ("--names-metrics", "--code-metrics", "--records"):
        s.add_argument(flag, required=True)
    for flag in ("--ab", "--name-rejects", "--funnel", "--lengths"):
        s.add_argument(flag, required=True, help="the plot to write (.svg or .png)")
    s.add_argument("--scored", help="code/scored.jsonl (with scoring on): also plot the perplexities")
    s.add_argument("--perplexity", help="the perplexity plot to write, with --scored")

    s = sub.add_parser("export", help=EXPORT, description=EXPORT + " (no server, no Snakemake)")
    s.add_argument("outputs", nargs="?", help="a run's output folder (default: the config's io.out_code_dir and "
                   "io.out_names_dir, data/generated/{code,names} unless set)")  # fmt: skip
    s.add_argument("--out", required=True, help="the folder to write (an earlier export there is replaced)")
    s.add_argument("--config", action="append", help=f"the run's config file(s), later ones override ({DEFAULT_CONFIG} "
                   "when none is given, as for Snakemake)")  # fmt: skip
    s.add_argument("--records", help="default: OUTPUTS/code/filtered.jsonl (scored.jsonl with scoring.enabled)")
    s.add_argument("--code-metrics", help="default: OUTPUTS/code/metrics.json")
    s.add_argument("--names-metrics", help="default: OUTPUTS/names/metrics.json")
    s.add_argument("--log", help="also write the log to this file")
    _add_tools(sub)
    return p


def _add_tools(sub) -> None:
    """Commands for looking at outputs: no --config, no server."""
    what = "a JSONL file the pipeline wrote"

    def tool(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help)

    s = tool("stats", "counts, sources, reasons, lengths and score quantiles of an output JSONL")
    s.add_argument("file", help=what)
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s = tool("sample", "pretty-print a few records of an output JSONL, code highlighted")
    s.add_argument("file", help=what)
    s.add_argument("-n", type=int, default=5, help="how many records (default 5)")
    s.add_argument("--seed", type=int, help="pick at random with this seed (default: the first ones)")
    s = tool("validate", "check every line of an output JSONL against its record schema")
    s.add_argument("file", help=what)
    s.add_argument("--schema", help="default: from the file's path, e.g. names/raw.jsonl, code/filtered/00000.jsonl")
    s = tool("summary", "what a finished run kept per stage, its A/B verdict, where its files are, what next")
    s.add_argument("--names", default="data/generated/names", help="io.out_names_dir (default %(default)s)")
    s.add_argument("--code", default="data/generated/code", help="io.out_code_dir (default %(default)s)")
    s = tool("config-docs", "print the config reference (every key, default, meaning) for README.md")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--write", metavar="README", help="replace the reference block in this file")
    g.add_argument("--check", metavar="README", help="exit 1 if this file's reference block is out of date")
    s = tool("model", "assemble and check an embedded model preset in the cache (its parts are downloaded if missing)")
    presets = get_args(Embedded.model_fields["model"].annotation)
    s.add_argument("preset", nargs="?", default=Embedded().model, choices=presets, help="default: %(default)s")
    s.add_argument("--cache-dir", default=Embedded().cache_dir, help="embedded.cache_dir (default: %(default)s)")


def _run_tool(args: argparse.Namespace) -> int:
    from evoselfcode import config_docs, tools

    match args.command:
        case "stats":
            result = tools.stats(args.file)
            print(json.dumps(result, indent=2) if args.json else tools.format_stats(result))
        case "sample":
            tools.show(args.file, args.n, args.seed)
        case "validate":
            schema = args.schema or tools.detect_schema(args.file)
            if schema not in tools.SCHEMAS:
                raise ValueError(f"unknown schema {schema!r}; one of: {', '.join(tools.SCHEMAS)}")
            count, problems = tools.validate(args.file, schema)
            for line in problems[:20]:
                print(line, file=sys.stderr)
            if problems:
                more = " (first 20 shown)" if len(problems) > 20 else ""
                print(f"{args.file}: {len(problems)} of {count} records invalid{more}", file=sys.stderr)
                return 1
            print(f"{args.file}: {count} records valid ({schema})")
        case "model":
            from evoselfcode.embedded import model_path

            print(model_path(Embedded(model=args.preset, cache_dir=args.cache_dir)))
        case "summary":
            from evoselfcode.summary import summary

            print(summary(args.names, args.code))
        case "config-docs":
            path = args.write or args.check
            if path is None:
                print(config_docs.table(), end="")
                return 0
            text = Path(path).read_text(encoding="utf-8")
            if args.write:
                Path(path).write_text(config_docs.replace(text), encoding="utf-8")
            elif config_docs.current(text) != config_docs.block():
                print(f"{path}: the config reference is out of date: python -m evoselfcode config-docs --write {path}")
                return 1
    return 0


def run(args: argparse.Namespace) -> int | None:
    from evoselfcode.datagen.pipeline import steps

    if args.command in TOOLS:
        return _run_tool(args)
    if args.command == "merge" and not args.config:
        steps.merge_jsonl(args.sources, args.out)
        return None
    if args.command == "export" and not args.config:
        if not Path(DEFAULT_CONFIG).exists():
            raise ConfigError(f"no --config given and no {DEFAULT_CONFIG} here: pass the run's config with --config")
        args.config = [DEFAULT_CONFIG]
    cfg = load_config(*args.config)
    # every job log starts with this line: which code, which settings, which server (credentials cut)
    log.info(
        "evoselfcode %s, config %s, server %s, step %s",
        __version__, cfg.digest(), redact_url(cfg.api.base_url), args.command,
    )  # fmt: skip
    match args.command:
        case "split":
            steps.split(cfg, args.source, args.shard, args.index, args.out, args.contaminated)
        case "quarantine":
            steps.quarantine(cfg, args.source, args.out)
        case "generate-names":
            steps.generate_names(cfg, _client(cfg), args.shard, args.out, args.failures, args.timing)
        case "filter-names":
            steps.filter_names_step(cfg, args.raw, args.out, args.rejects)
        case "names-metrics":
            steps.names_metrics(cfg, args.raw, args.kept, args.rejects, args.failures, args.shards, args.quarantine,
                                args.contaminated, args.out)  # fmt: skip
        case "generate-code":
            steps.generate_code(cfg, _client(cfg), args.names, args.out, args.failures, args.timing)
        case "timing":
            steps.timing(args.shards, args.kept, args.out, args.test_shards or None)
        case "filter-code":
            steps.filter_code_step(cfg, args.raw, args.index, args.out, args.rejects)
        case "generate-tests":
            from evoselfcode.datagen.pipeline.testgen import generate_tests_step

            generate_tests_step(cfg, _client(cfg), args.raw, args.out, args.failures, args.timing)
        case "execute-tests":
            from evoselfcode.datagen.pipeline.selection import execute_tests_step

            execute_tests_step(cfg, args.kept, args.static_rejects, args.tests, args.out, args.rejects,
                               args.selection, args.workers)  # fmt: skip
        case "merge-code":
            from evoselfcode.datagen.pipeline.merge import merge_code

            out = {"kept": args.out, "rejects": args.rejects, "metrics": args.metrics}
            merge_code(cfg, args.kept, args.shard_rejects, args.raw, args.failures, args.names_metrics, out,
                       args.selection)  # fmt: skip
        case "score":
            from evoselfcode.datagen.pipeline.scoring import score_step

            scorer = _scorer(cfg)
            try:
                score_step(cfg, scorer, args.records, {"kept": args.out, "rejects": args.rejects,
                                                       "failures": args.failures, "timing": args.timing})  # fmt: skip
            finally:
                scorer.close()
        case "server":
            from evoselfcode import embedded

            if args.action == "start":
                print(embedded.start(cfg.embedded, echo=cfg.scoring.enabled))
            else:
                embedded.stop()
        case "merge":
            steps.merge_jsonl(args.sources, args.out)
            log.info("merged %d files", len(args.sources))
        case "store":
            from evoselfcode.store_command import show_store

            print(show_store(cfg, prune=args.prune, keep=args.keep))
        case "plot":
            _plot(args)
        case "export":
            _export(cfg, args)
        case "probe":
            from evoselfcode.clients.probe import format_table, probe
            from evoselfcode.datagen.prompts import fim_format
            from evoselfcode.embedded import resolve_base_url

            fmt = fim_format(cfg.namegen)
            markers = None if fmt.emulated else (fmt.prefix, fmt.suffix, fmt.middle)
            rows = probe(cfg.api, resolve_base_url(cfg.api), fim_tokens=markers)
            print(format_table(rows))
            for capability, result, note in rows:
                if result == "warning":
                    log.warning("probe: %s: %s", capability, note)


def _plot(args: argparse.Namespace) -> None:
    from evoselfcode import report
    from evoselfcode.datagen.readers import read_jsonl

    names = json.loads(Path(args.names_metrics).read_text(encoding="utf-8"))
    code = json.loads(Path(args.code_metrics).read_text(encoding="utf-8"))
    report.plot_ab(names, args.ab)
    report.plot_name_rejects(names, args.name_rejects)
    report.plot_funnel(code, args.funnel)
    report.plot_code_lengths(read_jsonl(args.records), args.lengths)
    if args.scored and args.perplexity:
        report.plot_perplexity(read_jsonl(args.scored), args.perplexity)
    log.info("plots written")


def _export(cfg: Config, args: argparse.Namespace) -> None:
    from evoselfcode import dataset
    from evoselfcode.layout import Layout

    found = dataset.Inputs.of(Layout.under(args.outputs, cfg) if args.outputs else Layout.of(cfg))
    inputs = dataset.Inputs(
        records=Path(args.records or found.records),
        code_metrics=Path(args.code_metrics or found.code_metrics),
        names_metrics=Path(args.names_metrics or found.names_metrics),
    )
    rows = dataset.export(cfg, inputs, args.out)
    log.info("dataset of %d rows written to %s", rows, args.out)
    print(f"{args.out}: {rows} rows (Parquet in {args.out}/data, the dataset card in {args.out}/README.md)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(getattr(args, "log", None))
    try:
        status = run(args)
    except (ConfigError, LLMError, ValueError, RuntimeError, OSError) as exc:
        log.error("%s: %s", args.command, exc)
        return 1
    except KeyboardInterrupt:  # Ctrl-C reaches every job of the process group: one line each, no traceback
        sys.stderr.write(f"{args.command}: interrupted\n")  # one write: print's two interleave with other jobs
        return 130
    return status or 0
