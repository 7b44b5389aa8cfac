"""`python -m evoselfcode STEP ...`: every pipeline step as a plain command with explicit paths."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import get_args

from evoselfcode import __version__, config_docs
from evoselfcode.clients import make_client, make_scorer
from evoselfcode.clients.errors import LLMError
from evoselfcode.config import DEFAULT_CONFIG, Config, ConfigError, Embedded, load_config, redact_url
from evoselfcode.datagen.prompts import fim_format
from evoselfcode.datagen.readers import read_jsonl
from evoselfcode.step_table import BY_COMMAND, STEPS, Arg, Step
from evoselfcode.store_command import show_store

# Imported where used, as each adds to every command's start-up (`--help` too; ms measured): the pipeline steps 20,
# embedded 40 (requests), tools 18 (rich), summary 8, clients.probe 28, report 490 (matplotlib), dataset 120 (pyarrow).

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


def _client(cfg: Config):
    from evoselfcode.embedded import resolve_base_url

    url = resolve_base_url(cfg.api)
    log.info("server %s (%s mode, model %s)", redact_url(url), cfg.api.mode, cfg.api.model)
    return make_client(cfg.api, base_url=url, concurrency=cfg.io.concurrency)


def _scorer(cfg: Config):
    from evoselfcode.embedded import resolve_base_url

    url = resolve_base_url(cfg.api)
    log.info("scoring with %s (model %s)", redact_url(url), cfg.api.model)
    return make_scorer(cfg.api, base_url=url, concurrency=cfg.io.concurrency)


def _add_argument(parser: argparse.ArgumentParser, arg: Arg) -> None:
    """A declared argument of a step (`step_table.Arg`) as argparse's."""
    options: dict = {"help": arg.help, "nargs": arg.nargs, "type": arg.type}
    if arg.positional:
        parser.add_argument(arg.name, **options)
    else:
        parser.add_argument(arg.flag, required=arg.required, default=arg.default, **options)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evoselfcode", description=__doc__)
    p.add_argument("--version", action="version", version=f"evoselfcode {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def step(name: str, help: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help, description=help)
        s.add_argument("--config", action="append", required=True, help="config file(s), later ones override")
        s.add_argument("--log", help="also write the log to this file")
        return s

    for declared in STEPS:  # the pipeline steps, from their declarations; the other commands below
        s = step(declared.command, declared.help)
        for arg in declared.args:
            _add_argument(s, arg)

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
    from evoselfcode import tools

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


def _run_step(declared: Step, cfg: Config, args: argparse.Namespace) -> None:
    """Calls the step's function with its declared arguments by name, after the config and its server client."""
    function, kwargs = declared.resolve(), declared.arguments(args)
    if not declared.config:
        function(**kwargs)
        return
    if declared.model is None:
        function(cfg, **kwargs)
        return
    client = _scorer(cfg) if declared.model == "scorer" else _client(cfg)
    try:
        function(cfg, client, **kwargs)
    finally:
        client.close()


def run(args: argparse.Namespace) -> int | None:
    if args.command in TOOLS:
        return _run_tool(args)
    if args.command == "merge" and not args.config:
        _merge(args)
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
    if (declared := BY_COMMAND.get(args.command)) is not None:
        _run_step(declared, cfg, args)
        return None
    match args.command:
        case "server":
            from evoselfcode import embedded

            if args.action == "start":
                print(embedded.start(cfg.embedded, echo=cfg.scoring.enabled))
            else:
                embedded.stop()
        case "merge":
            _merge(args)
            log.info("merged %d files", len(args.sources))
        case "store":
            print(show_store(cfg, prune=args.prune, keep=args.keep))
        case "plot":
            _plot(args)
        case "export":
            _export(cfg, args)
        case "probe":
            from evoselfcode.clients.probe import format_table, probe
            from evoselfcode.embedded import resolve_base_url

            fmt = fim_format(cfg.namegen)
            markers = None if fmt.emulated else (fmt.prefix, fmt.suffix, fmt.middle)
            rows = probe(cfg.api, resolve_base_url(cfg.api), fim_tokens=markers)
            print(format_table(rows))
            for capability, result, note in rows:
                if result == "warning":
                    log.warning("probe: %s: %s", capability, note)


def _merge(args: argparse.Namespace) -> None:
    from evoselfcode.datagen.pipeline.steps import merge_jsonl

    merge_jsonl(args.sources, args.out)


def _plot(args: argparse.Namespace) -> None:
    from evoselfcode import report

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

    found = dataset.ExportInputs.of(Layout.under(args.outputs, cfg) if args.outputs else Layout.of(cfg))
    inputs = dataset.ExportInputs(
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
