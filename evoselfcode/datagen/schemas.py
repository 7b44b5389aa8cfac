"""Record shapes of every JSONL file the pipeline writes (docs/architecture.md, "Data flow")."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

Mode = Literal["FIM", "L2R"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Description(Record):
    """One input task: `data/shards/{shard}.jsonl`."""

    id: str = Field(min_length=1)
    desc: str = Field(min_length=1)


class Quarantined(Record):
    """`{shards_dir}/quarantine.jsonl`: an input line skipped with `io.on_bad_line: skip`, or a repeated description
    without an id (`repeated_desc`), set aside in any case."""

    file: str
    line: int
    reason: str
    detail: str | None = None


CONTAMINATED_PREFIX = "contaminated:"  # + the benchmark: the reason a description or function matches one


class Contaminated(Record):
    """`{shards_dir}/contaminated/{shard}.jsonl`: a description set aside, unsent, as it matches a benchmark task."""

    id: str
    desc: str
    reason: str  # contaminated:<benchmark>
    task_id: str
    match: Literal["exact", "overlap"]  # the text occurs in the task's word for word, or their n-grams overlap
    overlap: float


class NameSample(Record):
    """One sampled name, either mode: `names/raw/{shard}.jsonl`."""

    desc_id: str
    desc: str
    mode: Mode
    sample_index: int
    seed: int
    text: str
    func_name: str
    finish_reason: str | None = None
    logprob: float | None = None
    tokens: int | None = None


class NameCandidate(Record):
    """A kept name: `names/filtered/{shard}.jsonl`; `source` is the mode that produced it."""

    desc_id: str
    desc: str
    func_name: str
    source: Mode
    meta: dict[str, Any] = {}


class NameReject(NameSample):
    """A dropped name with one stable reason id: `names/rejects/{shard}.jsonl`."""

    reason: str


class CodeSample(Record):
    """One continuation: `code/raw/{shard}.jsonl`."""

    desc_id: str
    desc: str
    func_name: str
    source: Mode
    sample_index: int
    seed: int
    completion: str
    code: str
    trimmed: bool = False
    finish_reason: str | None = None
    tokens: int | None = None


class CodeMeta(BaseModel):
    model_config = ConfigDict(extra="allow")

    params: dict[str, Any]
    seed: int
    desc_id: str


class CodeRecord(Record):
    """The card's final record: `code/filtered.jsonl`; with tests on, the assertions it passed."""

    desc: str
    func_name: str
    source: Mode
    code: str
    meta: CodeMeta
    tests: list[str] | None = None

    @model_serializer(mode="wrap")
    def _no_null_tests(self, handler):
        data = handler(self)
        if data.get("tests", 0) is None:  # with tests off, records read exactly as before
            del data["tests"]
        return data


class CodeReject(CodeSample):
    """A function dropped by a shard's checks: `code/rejects/{shard}.jsonl`, then `code/rejects.jsonl`."""

    reason: str


class CodeTests(Record):
    """A function that passed the static checks, with the model's tests of it: `code/tests/raw/{shard}.jsonl`."""

    record: CodeRecord
    answers: list[str] = []  # each the whole test text: the prompt's `assert {func_name}(` + the continuation
    tokens: int = 0  # completion tokens of the test request
    error: str | None = None  # the request failed after its retries (also in code/tests/failures)

    # what the stage-B checks' driver reads of a sample
    @property
    def code(self) -> str:
        return self.record.code

    @property
    def func_name(self) -> str:
        return self.record.func_name

    @property
    def finish_reason(self) -> None:
        return None


class CodeTestsReject(Record):
    """A function that did not pass its tests: `code/tests/rejects/{shard}.jsonl`."""

    desc_id: str
    desc: str | None = None  # None only in files written before rejects carried it
    func_name: str
    source: Mode
    sample_index: int
    code: str
    tests: list[str]
    outcomes: list[str]  # per test: pass, fail, error:<Type>, timeout
    test_tokens: int
    reason: str


class GlobalReject(Record):
    """A function dropped by the merge's global dedup (in `code/rejects.jsonl`, beside the shard rejects)."""

    desc_id: str
    desc: str | None = None  # None only in files written before rejects carried it
    func_name: str
    source: Mode
    code: str
    reason: str
    scope: Literal["global"] = "global"


class Score(Record):
    ppl: float
    mean_logprob: float
    tokens: int


class ScoredRecord(CodeRecord):
    """`code/scored.jsonl`: a kept function with the model's own log-prob score."""

    # a token the model finds impossible (log-prob -inf) makes ppl inf: written as json.dumps would (Infinity),
    # which reads back, not as pydantic's default null, which fails this schema
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")

    score: Score


class ScoreReject(ScoredRecord):
    """`code/score_rejects.jsonl`: a scored function above `scoring.max_ppl`."""

    reason: str
    max_ppl: float


class RequestTiming(Record):
    """Wall-clock of one answered request: `{names,code}/timing/{shard}.jsonl`.

    Timings live apart from the data so that a rerun with the same seeds writes byte-identical data files.
    """

    desc_id: str
    mode: Mode  # for code requests, the mode that produced the name
    func_name: str | None = None
    choices: int
    latency: float  # seconds until the request's last choice arrived
    resumed: bool = False  # answered by an earlier run, read back from the journal


class Failure(Record):
    """A request that failed after its retries: `{names,code}/failures.jsonl`."""

    stage: Literal["names", "code", "tests", "score"]
    desc_id: str
    mode: Mode | None = None
    func_name: str | None = None
    sample_index: int | None = None
    error: str
    message: str
