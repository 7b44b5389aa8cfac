"""Stage B, tests: the model writes assert tests of each description from the description and a signature only.

One request per description (`tests.n` samples, their assertions pooled), never showing a candidate's body,
so the tests are evidence that does not come from the code they judge; `pipeline/selection.py` runs every
candidate of the description against them. The signature is chosen from the description's raw candidates
(`prompts.signature_for`), so no change to a code filter changes a test request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import groupby

from evoselfcode.clients.base import Choice
from evoselfcode.config import Config
from evoselfcode.datagen.pipeline.driver import ModelStage, open_store, run_stage, write_stage
from evoselfcode.datagen.pipeline.runner import Request, request_seed, sampling_params
from evoselfcode.datagen.prompts import head_of_tests, prompt_for_desc_tests, signature_for
from evoselfcode.datagen.readers import read_models
from evoselfcode.datagen.schemas import CodeSample, DescTests

log = logging.getLogger("evoselfcode")


def descriptions_to_test(samples: Sequence[CodeSample]) -> list[DescTests]:
    """One tests record to fill per description that has a candidate, in the order of the descriptions' ids."""
    ordered = sorted(samples, key=lambda s: s.desc_id)  # stable: each description's samples keep their order
    out = []
    for desc_id, group in groupby(ordered, key=lambda s: s.desc_id):
        candidates = list(group)
        func_name, signature = signature_for(candidates)
        out.append(DescTests(desc_id=desc_id, desc=candidates[0].desc, func_name=func_name, signature=signature))
    return out


def requests_for_tests(todo: Sequence[DescTests], cfg: Config) -> list[Request]:
    t = cfg.tests
    return [
        Request(
            key=(d.desc_id,),
            prompt=prompt_for_desc_tests(d.desc, d.func_name, d.signature, cfg.codegen, t),
            params=sampling_params(t, request_seed(cfg.meta.seed, d.desc_id, "tests")),
            item=d,
        )
        for d in todo
    ]


def _tests(request: Request, choices: list[Choice]) -> list[DescTests]:
    d: DescTests = request.item
    head = head_of_tests(d.func_name, d.signature)
    tokens = sum(c.completion_tokens or 0 for c in choices)
    return [d.model_copy(update={"answers": [head + c.text for c in choices], "tokens": tokens})]


TESTS = ModelStage(
    name="tests",
    requests=requests_for_tests,
    records=_tests,
    about=lambda r: {"desc_id": r.item.desc_id, "mode": None, "func_name": r.item.func_name},
    failed_records=lambda r, exc: [r.item.model_copy(update={"error": type(exc).__name__})],  # selection rejects
)


def generate_tests_step(cfg: Config, client, *, raw: str, out: str, failures: str, timing: str) -> None:
    """generate-tests: the raw code of a shard (its descriptions and their signatures) -> the tests' raw records."""
    todo = descriptions_to_test(read_models(raw, CodeSample))
    result = run_stage(TESTS, todo, cfg, client, open_store(cfg, out))
    write_stage(cfg, TESTS, result, {"raw": out, "failures": failures, "timing": timing})
    log.info("tests for %d descriptions, %d failed requests", len(todo), len(result.failures))
