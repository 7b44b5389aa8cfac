"""Optional stage-B scoring: each kept function's perplexity under the model, given the prompt that produced it.

The server returns the log-prob of every token of `prompt + text` (echo + logprobs); only the tokens of the
text count. The prompt ends in `def name(` and the function starts with it, so the text is the code after
that head, as kept: formatted by merge-code (`ruff format`), so quoting and spacing the model did not write
count too.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from evoselfcode.clients.base import Choice, ScoringClient
from evoselfcode.clients.errors import CircuitOpen, ScoringUnsupported
from evoselfcode.config import CodeGen, Config
from evoselfcode.datagen.pipeline.driver import ModelStage, drop_private_store, open_store, run_stage, write_stage
from evoselfcode.datagen.pipeline.runner import Request
from evoselfcode.datagen.prompts import code_head, code_prompt
from evoselfcode.datagen.readers import read_models
from evoselfcode.datagen.schemas import CodeRecord, Score, ScoredRecord, ScoreReject
from evoselfcode.datagen.writers import write_jsonl

__all__ = ["SCORE", "ScoringUnsupported", "Scored", "score_step", "scored_span", "split_by_ppl"]

log = logging.getLogger("evoselfcode.scoring")

HIGH_PERPLEXITY = "high_perplexity"


@dataclass
class Scored:
    kept: list[ScoredRecord] = field(default_factory=list)
    rejects: list[ScoreReject] = field(default_factory=list)


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


def score_requests(records: Sequence[CodeRecord], cfg: Config) -> list[Request]:
    requests = []
    for r in records:
        prompt, text = scored_span(r, cfg.codegen)
        # what the client sends besides the text (clients/openai.py), so that all of it is in the store's key
        params = {"text": text, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0.0}
        key = (r.meta.desc_id, r.func_name, r.meta.sample_index)
        requests.append(Request(key=key, prompt=prompt, params=params, route="score", item=r))
    return requests


def _ask(client: ScoringClient, request: Request, retry_wait) -> list[Choice]:
    started = time.monotonic()
    logprobs = client.token_logprobs(request.params["text"], prompt=request.prompt, retry_wait=retry_wait)
    if not logprobs:
        raise ValueError("the server returned no log-probs for the function's tokens")
    # token_logprobs returns no latency: timed here (retries included), else score_timing.jsonl says 0 s
    return [Choice(text="", token_logprobs=tuple(logprobs), latency=time.monotonic() - started)]


def _about(request: Request) -> dict:
    r: CodeRecord = request.item
    return {"desc_id": r.meta.desc_id, "mode": r.source, "func_name": r.func_name, "sample_index": request.key[2]}


SCORE = ModelStage(
    name="score",
    requests=score_requests,
    records=lambda r, choices: [ScoredRecord(**r.item.model_dump(), score=make_score(choices[0].token_logprobs))],
    about=_about,
    ask=_ask,
    # a server that cannot score says so once for all, instead of one failure per record
    fatal=(ScoringUnsupported, CircuitOpen),
)


def split_by_ppl(scored: Sequence[ScoredRecord], max_ppl: float | None) -> Scored:
    out = Scored()
    for record in scored:
        if max_ppl is not None and record.score.ppl > max_ppl:
            out.rejects.append(ScoreReject(**record.model_dump(), reason=HIGH_PERPLEXITY, max_ppl=max_ppl))
        else:
            out.kept.append(record)
    return out


def score_step(
    cfg: Config, client: ScoringClient, *, records: str, out: str, rejects: str, failures: str, timing: str
) -> None:
    """Read code/filtered.jsonl; write the scored records, the high-perplexity rejects and the failures."""
    kept = read_models(records, CodeRecord)
    result = run_stage(SCORE, kept, cfg, client, open_store(cfg, out))
    write_stage(cfg, SCORE, result, {"failures": failures, "timing": timing})
    scored = split_by_ppl(result.records, cfg.scoring.max_ppl)
    write_jsonl(out, scored.kept)
    write_jsonl(rejects, scored.rejects)
    drop_private_store(out)  # this job is its stage's last: no later step could resume it
    ppls = sorted(r.score.ppl for r in result.records)
    median = f"{ppls[len(ppls) // 2]:.3g}" if ppls else "n/a"
    log.info(
        "scored %d of %d functions (median ppl %s); %d above scoring.max_ppl=%s, %d failed",
        len(result.records),
        len(kept),
        median,
        len(scored.rejects),
        cfg.scoring.max_ppl,
        len(result.failures),
    )
