"""`python -m evoselfcode STEP ...`: every pipeline step as a plain command with explicit paths."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from evoselfcode import __version__
from evoselfcode.clients.errors import LLMError
from evoselfcode.config import Config, ConfigError, load_config

log = logging.getLogger("evoselfcode")


def _setup_logging(log_file: str | None) -> None:
    """Everything to the job's log file when there is one; the terminal then gets warnings and errors."""
    console = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [console]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
        console.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers)


def _redact_url(url: str) -> str:
    return re.sub(r"//[^/@]+@", "//***@", url)


def _client(cfg: Config):
    from evoselfcode.clients import make_client
    from evoselfcode.embedded import resolve_base_url

    url = resolve_base_url(cfg.api)
    log.info("server %s (%s mode, model %s)", _redact_url(url), cfg.api.mode, cfg.api.model)
    return make_client(cfg.api, base_url=url, concurrency=cfg.io.concurrency)


def _scorer(cfg: Config):
    from evoselfcode.clients import make_scorer
    from evoselfcode.embedded import resolve_base_url

    url = resolve_base_url(cfg.api)
    log.info("scoring with %s (model %s)", _redact_url(url), cfg.api.model)
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

    s = step("split", "write one shard of the checked description file")
    s.add_argument("source", help="the description file (io.input_desc_path)")
    s.add_argument("--shard", required=True)
    s.add_argument("--out", required=True)

    s = step("quarantine", "list the description file's bad lines, with io.on_bad_line: skip")
    s.add_argument("source", help="the description file (io.input_desc_path)")
    s.add_argument("--out", required=True)

    s = step("generate-names", "sample function names for a shard in both modes")
    s.add_argument("shard")
    s.add_argument("--out", required=True)
    s.add_argument("--failures", required=True)

    s = step("filter-names", "keep compliant, fitting names; one reason per rejected sample")
    s.add_argument("raw")
    s.add_argument("--out", required=True)
    s.add_argument("--rejects", required=True)

    s = step("names-metrics", "A/B metrics of FIM vs L2R names")
    for flag in ("--raw", "--kept", "--rejects", "--failures", "--out"):
        s.add_argument(flag, required=True)
    s.add_argument("--shards", nargs="+", required=True)
    s.add_argument("--quarantine", required=True)

    s = step("generate-code", "continue the selected names of a shard into functions")
    s.add_argument("names")
    s.add_argument("--out", required=True)
    s.add_argument("--failures", required=True)

    s = step("filter-code", "AST, length, ruff and exact-dedup checks of a shard's functions")
    s.add_argument("raw")
    s.add_argument("--out", required=True)
    s.add_argument("--rejects", required=True)

    s = step("merge-code", "merge kept functions of all shards with global dedup; write the code metrics")
    s.add_argument("--kept", nargs="+", required=True)
    s.add_argument("--shard-rejects", nargs="+", required=True)
    for flag in ("--raw", "--failures", "--names-metrics", "--out", "--rejects", "--metrics"):
        s.add_argument(flag, required=True)

    s = step("score", "score kept functions with the model's own log-probs (perplexity given their prompt)")
    s.add_argument("records")
    for flag in ("--out", "--rejects", "--failures"):
        s.add_argument(flag, required=True)

    s = sub.add_parser("merge", help="concatenate JSONL files in order", description="concatenate JSONL files")
    s.add_argument("sources", nargs="+")
    s.add_argument("--out", required=True)
    s.add_argument("--log")

    s = step("server", "start or stop the embedded llama.cpp server")
    s.add_argument("action", choices=["start", "stop"])

    s = step("probe", "ask the configured server what it supports")
    return p


def run(args: argparse.Namespace) -> None:
    from evoselfcode.datagen.pipeline import orchestrator as steps

    if args.command == "merge":
        steps.merge_jsonl(args.sources, args.out)
        return
    cfg = load_config(*args.config)
    log.info("evoselfcode %s, config %s, step %s", __version__, cfg.digest(), args.command)
    match args.command:
        case "split":
            steps.split(cfg, args.source, args.shard, args.out)
        case "quarantine":
            steps.quarantine(cfg, args.source, args.out)
        case "generate-names":
            steps.generate_names(cfg, _client(cfg), args.shard, args.out, args.failures)
        case "filter-names":
            steps.filter_names_step(cfg, args.raw, args.out, args.rejects)
        case "names-metrics":
            steps.names_metrics(
                cfg, args.raw, args.kept, args.rejects, args.failures, args.shards, args.quarantine, args.out
            )
        case "generate-code":
            steps.generate_code(cfg, _client(cfg), args.names, args.out, args.failures)
        case "filter-code":
            steps.filter_code_step(cfg, args.raw, args.out, args.rejects)
        case "merge-code":
            out = {"kept": args.out, "rejects": args.rejects, "metrics": args.metrics}
            steps.merge_code(cfg, args.kept, args.shard_rejects, args.raw, args.failures, args.names_metrics, out)
        case "score":
            from evoselfcode.datagen.pipeline.scoring import score_step

            scorer = _scorer(cfg)
            try:
                score_step(cfg, scorer, args.records, {"kept": args.out, "rejects": args.rejects,
                                                       "failures": args.failures})  # fmt: skip
            finally:
                scorer.close()
        case "server":
            from evoselfcode import embedded

            if args.action == "start":
                print(embedded.start(cfg.embedded))
            else:
                embedded.stop()
        case "probe":
            from evoselfcode.clients.probe import format_table, probe
            from evoselfcode.embedded import resolve_base_url

            print(format_table(probe(cfg.api, resolve_base_url(cfg.api))))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(getattr(args, "log", None))
    try:
        run(args)
    except (ConfigError, LLMError, ValueError, RuntimeError, OSError) as exc:
        log.error("%s: %s", args.command, exc)
        return 1
    return 0
