"""Which settings each rule's output depends on: a digest of them is the rule's `params.spec`.

Snakemake reruns a job when its params change, so each rule lists, by name, exactly the settings its
step reads (tests/test_rule_settings.py runs every step and watches what it reads). A setting that
changes no output is in AFFECTS_NO_OUTPUT with the reason. Every setting is in one of the two: a new
key must be placed here, or a test fails. Keys are `section.key`; a nested setting (`filters.dedup`)
counts as a whole.
"""

from __future__ import annotations

from evoselfcode.config import Config

RULE_SETTINGS: dict[str, tuple[str, ...]] = {
    "split_descriptions": ("io.max_desc_chars", "decontamination.desc_threshold"),
    "quarantine_descriptions": ("io.max_desc_chars",),
    "generate_names": (
        "meta.seed",
        "api.model",
        "namegen.modes",
        "namegen.temperature",
        "namegen.top_p",
        "namegen.max_new_tokens",
        "namegen.n",
        "namegen.stop",
        "namegen.logprobs",
        "namegen.fim_preset",
        "namegen.fim",
        "namegen.templates",
    ),
    "filter_names": (
        "namegen.weaklist",
        "filters.name_regex",
        "filters.name_min_len",
        "filters.name_max_len",
        "filters.min_relevance",
    ),
    "generate_code": (
        "meta.seed",
        "api.model",
        "namegen.select",
        "codegen.temperature",
        "codegen.top_p",
        "codegen.max_new_tokens",
        "codegen.n",
        "codegen.stop",
        "codegen.template",
    ),
    "filter_code": (
        "api.model",  # the final records carry the model and the sampling parameters in `meta`
        "codegen.temperature",
        "codegen.top_p",
        "codegen.max_new_tokens",
        "filters.min_code_len",
        "filters.max_code_len",
        "filters.enable_ast",
        "filters.enable_ruff",
        "filters.ruff_rules",
        "filters.dedup",
        "decontamination.enabled",
        "decontamination.code_threshold",
        "decontamination.desc_threshold",  # a function's docstrings and comments are checked as a description is
    ),
    "generate_tests": (
        "meta.seed",
        "api.model",
        "codegen.template",  # the test prompt begins with the code prompt
        "tests.temperature",
        "tests.top_p",
        "tests.max_new_tokens",
        "tests.n",
        "tests.stop",
        "tests.template",
    ),
    "execute_tests": (
        "tests.max_asserts",
        "tests.selection",
        "execution.sandbox",
        "execution.timeout_s",
        "execution.cpu_s",
        "execution.memory_mb",
        "execution.max_processes",
        "execution.max_file_mb",
        "execution.tmp_mb",
        "execution.min_passed",
        "execution.min_pass_rate",
    ),
    "merge_code": ("filters.dedup",),
    "score_code": ("api.model", "codegen.template", "scoring.method", "scoring.max_ppl"),
    # the card quotes more of the data's settings, but the records it is made of change with those anyway
    "export_dataset": (
        "api.model",
        "dataset.license",
        "dataset.language",
        "dataset.shard_rows",
        # the card's intro names the checks the run applied, which may leave the records as they were
        "filters.enable_ast",
        "filters.enable_ruff",
        "filters.dedup",
        "decontamination.enabled",
        "tests.selection",  # the card says what "kept" means
    ),
}

_CONNECTION = "how the job reaches the server, not what it asks"
_INDEX = "the benchmark index's name (benchmark_index.INDEX_SETTINGS), an input of split and filter_code, follows it"
_EMBEDDED = "how the local server runs; the model is api.model, sent and recorded"

AFFECTS_NO_OUTPUT: dict[str, str] = {
    "api.base_url": "where the requests go; the model is api.model",
    "api.mode": _CONNECTION,
    "api.route": _CONNECTION,
    "api.headers": _CONNECTION,
    "api.field_map": _CONNECTION,
    "api.timeout": _CONNECTION,
    "api.max_retries": _CONNECTION,
    "api.backoff": _CONNECTION,
    "api.rate_limit": _CONNECTION,
    "api.circuit_breaker": _CONNECTION,
    "embedded.n_ctx": _EMBEDDED,
    "embedded.n_threads": _EMBEDDED,
    "embedded.parallel": _EMBEDDED,
    "embedded.cache_dir": _EMBEDDED,
    "embedded.startup_timeout": _EMBEDDED,
    "store.enabled": "whether answers are read back instead of asked: the same answers either way",
    "store.dir": "where answers are kept, not what they are",
    "embedded.model": "the server's model, which must equal api.model (config.py): api.model is listed",
    # with api.base_url: embedded it also picks llama-cpp-python's server (prompt log-probs) for the whole run,
    # whose answers differ from the native server's: set it before a run starts, not half way
    "scoring.enabled": "which files the default target asks for, not what any of them holds",
    "tests.enabled": "which rules the DAG chains (merge_code's inputs follow it), not what a step writes",
    "decontamination.benchmarks": _INDEX,
    "decontamination.ngram": _INDEX,
    "decontamination.min_words": _INDEX,
    "io.input_desc_path": "the split rules' input file: Snakemake follows it (and each shard's lines digest)",
    "io.out_names_dir": "where the outputs go, not what they hold",
    "io.out_code_dir": "where the outputs go, not what they hold",
    "io.shards_dir": "where the outputs go, not what they hold",
    "io.logs_dir": "where the job logs go, not what any output holds",
    "io.shard_size": "each shard's lines digest (split_descriptions' params.lines) follows it",
    "io.on_bad_line": "decided when the DAG is built; the bad lines' digest (quarantine's params.lines) follows them",
    "io.concurrency": "how many requests are in flight, not what they ask",
    "io.max_failure_rate": "whether a job fails, not what it writes",
}


def rule_digest(cfg: Config, rule: str) -> str:
    """Changes exactly when one of the rule's settings changes."""
    if rule not in RULE_SETTINGS:
        raise KeyError(f"spec({rule!r}): no rule {rule!r} in RULE_SETTINGS of {__name__}; list its settings there")
    return cfg.settings_digest(RULE_SETTINGS[rule])
