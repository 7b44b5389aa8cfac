"""Stage A, generation: sample function names for each description in both modes (FIM and L2R)."""

from __future__ import annotations

from evoselfcode.clients.base import CompletionClient
from evoselfcode.config import Config
from evoselfcode.datagen.filters.names import normalise_name
from evoselfcode.datagen.pipeline.journal import Journal
from evoselfcode.datagen.pipeline.runner import Request, request_seed, run_requests, sampling_params
from evoselfcode.datagen.prompts import name_prompt, name_stop
from evoselfcode.datagen.schemas import Description, Failure, NameSample, RequestTiming


def name_requests(descs: list[Description], cfg: Config) -> list[Request]:
    ng = cfg.namegen
    return [
        Request(
            key=(d.id, mode),
            prompt=name_prompt(mode, d.desc, ng),
            params={
                **sampling_params(ng, request_seed(cfg.meta.seed, d.id, mode, 0), stop=name_stop(mode, ng)),
                "logprobs": 1 if ng.logprobs else None,
            },
        )
        for d in descs
        for mode in ng.modes
    ]


def generate_names(
    descs: list[Description], cfg: Config, client: CompletionClient, journal: Journal | None = None
) -> tuple[list[NameSample], list[Failure], list[RequestTiming]]:
    by_id = {d.id: d for d in descs}
    samples, failures, timings = [], [], []
    requests = name_requests(descs, cfg)
    outcomes = run_requests(client, requests, concurrency=cfg.io.concurrency, journal=journal, model=cfg.api.model)
    for out in outcomes:
        desc_id, mode = out.request.key
        if out.error is not None:
            failures.append(
                Failure(
                    stage="names", desc_id=desc_id, mode=mode, error=type(out.error).__name__, message=str(out.error)
                )
            )
            continue
        for i, choice in enumerate(out.choices):
            lps = [lp for lp in choice.token_logprobs if lp is not None]
            samples.append(
                NameSample(
                    desc_id=desc_id,
                    desc=by_id[desc_id].desc,
                    mode=mode,
                    sample_index=i,
                    seed=out.request.params["seed"],
                    text=choice.text,
                    func_name=normalise_name(choice.text),
                    finish_reason=choice.finish_reason,
                    logprob=sum(lps) if lps else None,
                    tokens=len(choice.tokens) or choice.usage.get("completion_tokens"),
                )
            )
        timings.append(out.timing(desc_id, mode))
    return samples, failures, timings
