"""Optional stage-B scoring: each kept function's perplexity under the model, given the prompt that produced it.

The server returns the log-prob of every token of `prompt + text` (echo + logprobs); only the tokens of the
text count. The prompt ends in `def name(` and the function starts with it, so the text is the code after
that head: exactly what the model wrote.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from evoselfcode.clients.base import ScoringClient
from evoselfcode.clients.errors import CircuitOpen, ScoringUnsupported
from evoselfcode.config import CodeGen, Config
from evoselfcode.datagen.pipeline.runner import check_failure_budget
from evoselfcode.datagen.prompts import code_head, code_prompt
from evoselfcode.datagen.readers import read_models
from evoselfcode.datagen.schemas import CodeRecord, Failure, Score, ScoredRecord, ScoreReject
from evoselfcode.datagen.writers import write_jsonl

__all__ = ["ScoringUnsupported", "Scored", "score_records", "score_step", "scored_span"]

log = logging.getLogger("evoselfcode.scoring")

HIGH_PERPLEXITY = "high_perplexity"


@dataclass
class Scored:
    kept: list[ScoredRecord] = field(default_factory=list)
    rejects: list[ScoreReject] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def scored_span(record: CodeRecord, cg: CodeGen) -> tuple[str, str]:
    """(prompt, text) whose concatenation is the code prompt followed by the function."""
    prompt = code_prompt(record.desc, record.func_name, cg)
    head = code_head(record.func_name)
    if record.code.startswith(head):
        return prompt, record.code[len(head) :]
    # not rebuilt from the head (e.g. a decorator came first): score the whole function where the head would be
    return (prompt[: -len(head)] if prompt.endswith(head) else prompt), record.code


def make_score(logprobs: Sequence[float]) -> Score:
    mean = sum(logprobs) / len(logprobs)
    return Score(ppl=math.exp(-mean), mean_logprob=mean, tokens=len(logprobs))


def _score_one(client: ScoringClient, record: CodeRecord, cg: CodeGen) -> Score:
    prompt, text = scored_span(record, cg)
    logprobs = client.token_logprobs(text, prompt=prompt)
    if not logprobs:
        raise ValueError("the server returned no log-probs for the function's tokens")
    return make_score(logprobs)


def score_records(records: Sequence[CodeRecord], cfg: Config, client: ScoringClient) -> Scored:
    """Score every record concurrently; the result keeps the input order. A server that cannot score
    raises ScoringUnsupported (and a tripped breaker CircuitOpen) at once, instead of one failure per record."""
    scores: list[Score | Exception | None] = [None] * len(records)

    def call(i: int) -> None:
        try:
            scores[i] = _score_one(client, records[i], cfg.codegen)
        except (ScoringUnsupported, CircuitOpen):
            raise
        except Exception as exc:  # becomes a failure record with its cause, never lost
            scores[i] = exc

    workers = max(1, min(cfg.io.concurrency, len(records)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(call, i) for i in range(len(records))]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        fatal = next((f.exception() for f in done if f.exception() is not None), None)
        if fatal is not None:
            for f in futures:
                f.cancel()
            raise fatal

    out = Scored()
    max_ppl = cfg.scoring.max_ppl
    for record, score in zip(records, scores, strict=True):
        if isinstance(score, Exception):
            out.failures.append(
                Failure(
                    stage="score",
                    desc_id=record.meta.desc_id,
                    mode=record.source,
                    func_name=record.func_name,
                    sample_index=record.meta.model_extra.get("sample_index"),
                    error=type(score).__name__,
                    message=str(score),
                )
            )
            continue
        scored = ScoredRecord(**record.model_dump(), score=score)
        if max_ppl is not None and score.ppl > max_ppl:
            out.rejects.append(ScoreReject(**scored.model_dump(), reason=HIGH_PERPLEXITY, max_ppl=max_ppl))
        else:
            out.kept.append(scored)
    return out


def score_step(cfg: Config, client: ScoringClient, records_path: str, out: dict[str, str]) -> None:
    """Read code/filtered.jsonl; write the scored records, the high-perplexity rejects and the failures."""
    records = read_models(records_path, CodeRecord)
    result = score_records(records, cfg, client)
    write_jsonl(out["failures"], result.failures)
    check_failure_budget(cfg, result.failures, len(records), "scoring")
    write_jsonl(out["kept"], result.kept)
    write_jsonl(out["rejects"], result.rejects)
    ppls = sorted([r.score.ppl for r in result.kept] + [r.score.ppl for r in result.rejects])
    median = f"{ppls[len(ppls) // 2]:.3g}" if ppls else "n/a"
    log.info(
        "scored %d of %d functions (median ppl %s); %d above scoring.max_ppl=%s, %d failed",
        len(result.kept) + len(result.rejects),
        len(records),
        median,
        len(result.rejects),
        cfg.scoring.max_ppl,
        len(result.failures),
    )
