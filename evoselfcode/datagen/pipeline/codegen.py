"""Stage B, generation: continue each selected name left-to-right into a whole function."""

from __future__ import annotations

from collections.abc import Sequence

from evoselfcode.clients.base import Choice
from evoselfcode.config import Config
from evoselfcode.datagen.pipeline.driver import ModelStage
from evoselfcode.datagen.pipeline.runner import Request, request_seed, sampling_params
from evoselfcode.datagen.prompts import code_head, code_prompt
from evoselfcode.datagen.schemas import CodeSample, NameCandidate
from evoselfcode.datagen.utils.ast_tools import extract_function


def code_requests(names: Sequence[NameCandidate], cfg: Config) -> list[Request]:
    cg = cfg.codegen
    return [
        Request(
            key=(c.desc_id, c.func_name),
            prompt=code_prompt(c.desc, c.func_name, cg),
            params=sampling_params(cg, request_seed(cfg.meta.seed, c.desc_id, "code", c.func_name)),
            item=c,
        )
        for c in names
    ]


def _samples(request: Request, choices: list[Choice]) -> list[CodeSample]:
    name: NameCandidate = request.item
    samples = []
    for i, choice in enumerate(choices):
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
                seed=request.params["seed"],
                completion=choice.text,
                code=code,
                trimmed=trimmed,
                finish_reason=choice.finish_reason,
                tokens=choice.completion_tokens,
            )
        )
    return samples


CODE = ModelStage(
    name="code",
    requests=code_requests,
    records=_samples,
    about=lambda r: {"desc_id": r.item.desc_id, "mode": r.item.source, "func_name": r.item.func_name},
)
