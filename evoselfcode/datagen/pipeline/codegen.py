"""Stage B, generation: continue each selected name left-to-right into a whole function."""

from __future__ import annotations

from evoselfcode.clients.base import CompletionClient
from evoselfcode.config import Config
from evoselfcode.datagen.pipeline.journal import Journal
from evoselfcode.datagen.pipeline.runner import Request, request_seed, run_requests, sampling_params
from evoselfcode.datagen.prompts import code_head, code_prompt
from evoselfcode.datagen.schemas import CodeSample, Failure, NameCandidate, RequestTiming
from evoselfcode.datagen.utils.ast_tools import extract_function


def code_requests(names: list[NameCandidate], cfg: Config) -> list[Request]:
    cg = cfg.codegen
    return [
        Request(
            key=(c.desc_id, c.func_name),
            prompt=code_prompt(c.desc, c.func_name, cg),
            params=sampling_params(cg, request_seed(cfg.meta.seed, c.desc_id, "code", c.func_name)),
        )
        for c in names
    ]


def generate_code(
    names: list[NameCandidate], cfg: Config, client: CompletionClient, journal: Journal | None = None
) -> tuple[list[CodeSample], list[Failure], list[RequestTiming]]:
    by_key = {(c.desc_id, c.func_name): c for c in names}
    samples, failures, timings = [], [], []
    requests = code_requests(names, cfg)
    outcomes = run_requests(client, requests, concurrency=cfg.io.concurrency, journal=journal, model=cfg.api.model)
    for out in outcomes:
        name = by_key[out.request.key]
        if out.error is not None:
            failures.append(
                Failure(
                    stage="code",
                    desc_id=name.desc_id,
                    func_name=name.func_name,
                    error=type(out.error).__name__,
                    message=str(out.error),
                )
            )
            continue
        for i, choice in enumerate(out.choices):
            source = code_head(name.func_name) + choice.text
            extracted = extract_function(source, name.func_name)
            code, trimmed = extracted if extracted else (source, False)
            samples.append(
                CodeSample(
                    desc_id=name.desc_id,
                    desc=name.desc,
                    func_name=name.func_name,
                    source=name.source,
                    sample_index=i,
                    seed=out.request.params["seed"],
                    completion=choice.text,
                    code=code,
                    trimmed=trimmed,
                    finish_reason=choice.finish_reason,
                    tokens=len(choice.tokens) or choice.usage.get("completion_tokens"),
                )
            )
        timings.append(out.timing(name.desc_id, name.source, name.func_name))
    return samples, failures, timings
