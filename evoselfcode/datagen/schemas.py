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
    """A final record's meta: how it was asked for, and which sample it is; further keys pass through as extras."""

    model_config = ConfigDict(extra="allow")

    params: dict[str, Any]
    seed: int
    desc_id: str
    sample_index: int = 0  # with desc_id and func_name, which sample this is; records without it are sample 0


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


class DescTests(Record):
    """The model's tests of one description, written from the description and a signature only (no candidate's
    body): every candidate of the description runs them (`pipeline/selection.py`)."""

    desc_id: str
    desc: str
    func_name: str  # the name the tests call; candidates named otherwise are bound to it
    signature: str  # the `def` line the prompt showed (`prompts.signature_for`)
    answers: list[str] = []  # each sample's whole text: `prompts.head_of_tests` + the continuation
    tokens: int = 0  # completion tokens of the request
    error: str | None = None  # the request failed after its retries


class SelectionReject(Record):
    """A candidate that was not chosen: `code/tests/rejects/{shard}.jsonl` with `tests.selection` set."""

    desc_id: str
    desc: str
    func_name: str
    source: Mode
    sample_index: int
    code: str
    tests: list[str]  # the description's assertions, as they call the tests' function name
    outcomes: list[str]  # per assertion: pass, fail, error:<Type>, timeout
    values: list[str | None]  # per assertion: digest of the values its calls returned (sandbox.Run)
    group_size: int = 0  # candidates (duplicates included) that behaved as this one; 0: not run
    reason: str


class DescSelection(Record):
    """How one description's candidates were chosen: `code/tests/selection/{shard}.jsonl`."""

    desc_id: str
    selection: Literal["agreement", "per_function"]
    candidates: int  # that ran, duplicates included (each a vote in `agreement`)
    duplicates: int
    asserts: int  # usable assertions parsed from the answers (assertions.py)
    tokens: int = 0  # completion tokens of the description's test request
    dropped: dict[str, int] = {}  # assertions of the answers left out, per reason
    wrong: int = 0  # assertions no candidate passed: not counted
    non_discriminating: int = 0  # passed by every candidate and by the trivial ones: not counted
    groups: int = 0  # distinct behaviours among the candidates
    winner_size: int = 0
    winner_score: float = 0.0  # passed x sqrt(size)
    winner_passed: int = 0
    evidence: str | None = None  # why the winner could win: asserts, values, single (one candidate, judged alone)
    kept: int = 0
    reason: str | None = None  # why nothing was kept (tests_request_failed, no_tests, no_evidence, ...)


class SelectionStats(Record):
    """A shard's selection in numbers, for metrics, report and card (`pipeline.selection.shard_stats`)."""

    selection: Literal["agreement", "per_function"]
    descriptions: int
    candidates: int
    kept: int
    candidates_per_description: dict[str, int]  # {"2": 5}: five descriptions had two candidates
    winner_sizes: dict[str, int]  # {"3": 4}: four winning groups had three members
    mean_winner_score: float  # over descriptions with a winner
    asserts: int
    wrong: int
    non_discriminating: int
    evidence: dict[str, int]  # winners per evidence
    reasons: dict[str, int]  # descriptions without a kept function, per reason


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
    mode: Mode | None = None  # for code requests, the mode that produced the name; tests' serve both: None
    func_name: str | None = None
    choices: int
    latency: float  # seconds until the request's last choice arrived
    resumed: bool = False  # answered before, read from the answer store
    key: str | None = None  # the answer's key in the store (what `evoselfcode store --prune` keeps)


class Failure(Record):
    """A request that failed after its retries: `{names,code}/failures.jsonl`."""

    stage: Literal["names", "code", "tests", "score"]
    desc_id: str
    mode: Mode | None = None
    func_name: str | None = None
    sample_index: int | None = None
    error: str
    message: str
