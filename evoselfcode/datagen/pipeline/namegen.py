"""Stage A, generation: sample function names for each description in both modes (FIM and L2R)."""

from __future__ import annotations

from collections.abc import Sequence

from evoselfcode.clients.base import Choice
from evoselfcode.config import Config
from evoselfcode.datagen.name_filters import normalise_name
from evoselfcode.datagen.pipeline.driver import ModelStage
from evoselfcode.datagen.pipeline.runner import Request, request_seed, sampling_params
from evoselfcode.datagen.prompts import name_prompt, name_stop
from evoselfcode.datagen.schemas import Description, NameSample


def name_requests(descs: Sequence[Description], cfg: Config) -> list[Request]:
    ng = cfg.namegen
    return [
        Request(
            key=(d.id, mode),
            prompt=name_prompt(mode, d.desc, ng),
            params={
                **sampling_params(ng, request_seed(cfg.meta.seed, d.id, mode, 0), stop=name_stop(mode, ng)),
                "logprobs": 1 if ng.logprobs else None,
            },
            item=d,
        )
        for d in descs
        for mode in ng.modes
    ]


def _samples(request: Request, choices: list[Choice]) -> list[NameSample]:
    d, (_, mode) = request.item, request.key
    samples = []
    for i, choice in enumerate(choices):
        lps = [lp for lp in choice.token_logprobs if lp is not None]
        samples.append(
            NameSample(
                desc_id=d.id,
                desc=d.desc,
                mode=mode,
                sample_index=i,
                seed=request.params["seed"],
                text=choice.text,
                func_name=normalise_name(choice.text),
                finish_reason=choice.finish_reason,
                logprob=sum(lps) if lps else None,
                tokens=choice.completion_tokens,
            )
        )
    return samples


NAMES = ModelStage(
    name="names",
    requests=name_requests,
    records=_samples,
    about=lambda r: {"desc_id": r.item.id, "mode": r.key[1]},
)
