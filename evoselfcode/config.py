"""The pipeline's configuration: pydantic models, loading, and errors that name the key and the file.

Snakemake merges `--configfile`s and `--config` overrides into one dict; `validate_config` checks
that dict once and, on error, says which file (or override) the offending key came from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from fnmatch import fnmatch
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

EMBEDDED = "embedded"
PROD_URL = "http://qwen2code32-0.t-skyinfer-wzhang.svc.cluster.local"

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(gt=0, le=1)]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(ValueError):
    """A configuration problem, with the key path and where it came from."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(Strict):
    connect: PositiveFloat = 10.0
    read: PositiveFloat = 300.0


class Backoff(Strict):
    base: PositiveFloat = 0.5
    max: PositiveFloat = 60.0
    max_retry_after: NonNegFloat = 300.0  # cap on a server's Retry-After, so one header cannot park a job for hours


class RateLimit(Strict):
    requests_per_s: PositiveFloat | None = None
    tokens_per_s: PositiveFloat | None = None
    burst_s: PositiveFloat = 1.0  # seconds' worth of either rate that may be spent at once after idling


class CircuitBreaker(Strict):
    enabled: bool = True
    failure_threshold: PositiveInt = 8
    reset_timeout: PositiveFloat = 20.0


class Api(Strict):
    base_url: str = PROD_URL
    mode: Literal["openai", "endpoint"] = "openai"
    route: str = "/v1/completions"
    model: str = "Qwen2.5-Coder-32B"
    headers: dict[str, str] = {}
    field_map: str | dict[str, Any] | None = None
    timeout: Timeouts = Timeouts()
    max_retries: Annotated[int, Field(ge=0)] = 6
    backoff: Backoff = Backoff()
    rate_limit: RateLimit = RateLimit()
    circuit_breaker: CircuitBreaker = CircuitBreaker()

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

    n_ctx: PositiveInt = 2048
    n_threads: PositiveInt | None = None
    cache_dir: str = "~/.cache/evoselfcode"
    startup_timeout: PositiveFloat = 180.0


class Meta(Strict):
    seed: int = 42


class Select(Strict):
    """Which kept names go on to stage B."""

    per_desc: PositiveInt = 2
    sources: list[Literal["FIM", "L2R"]] = ["FIM", "L2R"]


class FimFormat(Strict):
    """Overrides of the `namegen.fim_preset` format (see `datagen/prompts.py`); unset fields keep the preset's."""

    prefix: str | None = None
    suffix: str | None = None
    middle: str | None = None
    order: Literal["psm", "spm"] | None = None
    stop: list[str] | None = None

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
    modes: list[Literal["FIM", "L2R"]] = ["FIM", "L2R"]
    temperature: NonNegFloat = 0.4
    top_p: Probability = 0.9
    max_new_tokens: PositiveInt = 16
    n: PositiveInt = 4
    stop: list[str] = ["(", " ", "\n"]
    logprobs: bool = True  # each name's log-prob; costly on llama.cpp, which computes it over the whole vocabulary
    fim_preset: Literal["qwen2.5-coder", "starcoder", "deepseek-coder", "emulated"] = "qwen2.5-coder"
    fim: FimFormat | None = None
    # full prompt texts replacing the defaults in datagen/prompts.py; `{desc}` marks the escaped description
    templates: dict[Literal["l2r", "fim_prefix", "fim_suffix", "emulated"], str] = {}
    weaklist: list[str] = [
        "func", "function", "foo", "bar", "baz", "solution", "solve", "helper", "main", "test",
        "f", "fn", "g", "process", "do_it", "doit", "my_function", "my_func", "run", "compute",
        "calculate", "algorithm", "algo", "example", "sample", "temp", "tmp", "name", "method",
    ]  # fmt: skip
    select: Select = Select()


class CodeGen(Strict):
    temperature: NonNegFloat = 0.2
    top_p: Probability = 0.95
    max_new_tokens: PositiveInt = 384
    n: PositiveInt = 1
    stop: list[str] = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\n\n\n"]
    # replaces the default code prompt; `{desc}` is the description as `# ` lines, `{func_name}` the name
    template: str | None = None

    @field_validator("template")
    @classmethod
    def _ends_with_head(cls, v: str | None) -> str | None:
        # stage B rebuilds the function as `def {func_name}(` + continuation, so the prompt must end there
        if v is not None and not v.endswith("def {func_name}("):
            raise ValueError("must end with 'def {func_name}(' (the function is rebuilt from that head)")
        return v


class Dedup(Strict):
    exact: bool = True
    near: bool = True
    threshold: Probability = 0.8
    num_perm: PositiveInt = 128
    ngram: PositiveInt = 5


class Filters(Strict):
    name_regex: str = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"
    name_min_len: PositiveInt = 3
    name_max_len: PositiveInt = 48
    min_relevance: Annotated[float, Field(ge=0, le=1)] = 0.0
    min_code_len: Annotated[int, Field(ge=0)] = 40
    max_code_len: PositiveInt = 8000
    enable_ast: bool = True
    enable_ruff: bool = True
    ruff_rules: list[str] = ["E9", "F63", "F7", "F82"]
    dedup: Dedup = Dedup()

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
    method: Literal["echo"] = "echo"
    max_ppl: PositiveFloat | None = None


class Io(Strict):
    input_desc_path: str = "data/descriptions/sample.jsonl"
    out_names_dir: str = "data/generated/names"
    out_code_dir: str = "data/generated/code"
    shards_dir: str = "data/shards"
    concurrency: PositiveInt = 32
    shard_size: PositiveInt = 1000
    on_bad_line: Literal["error", "skip"] = "error"
    max_failure_rate: Annotated[float, Field(ge=0, le=1)] = 0.05
    max_desc_chars: PositiveInt = 4000


class Config(Strict):
    meta: Meta = Meta()
    api: Api = Api()
    embedded: Embedded = Embedded()
    namegen: NameGen = NameGen()
    codegen: CodeGen = CodeGen()
    filters: Filters = Filters()
    scoring: Scoring = Scoring()
    io: Io = Io()

    @model_validator(mode="after")
    def _names_fit(self) -> Config:
        if self.filters.name_min_len > self.filters.name_max_len:
            raise ValueError("filters.name_min_len is larger than filters.name_max_len")
        return self

    def settings(self, *patterns: str) -> dict[str, Any]:
        """The `section.key` settings matching the patterns (fnmatch; a leading `!` excludes)."""
        flat = {f"{s}.{k}": v for s, section in self.model_dump(mode="json").items() for k, v in section.items()}
        keep = [p for p in patterns if not p.startswith("!")]
        drop = [p[1:] for p in patterns if p.startswith("!")]
        return {
            k: v
            for k, v in sorted(flat.items())
            if any(map(partial(fnmatch, k), keep)) and not any(map(partial(fnmatch, k), drop))
        }

    def settings_digest(self, *patterns: str) -> str:
        """Changes exactly when a matching setting changes: a rule's params, so Snakemake reruns it then."""
        return hashlib.sha256(json.dumps(self.settings(*patterns), sort_keys=True).encode()).hexdigest()[:16]

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
