"""The production default name prompts and stops on the real model (Qwen2.5-Coder-0.5B): a fair A/B."""

from __future__ import annotations

import pytest

from evoselfcode.clients import make_client
from evoselfcode.config import load_config
from evoselfcode.datagen.inputs import read_descriptions
from evoselfcode.datagen.name_filters import filter_names
from evoselfcode.datagen.pipeline.abtest import name_metrics
from evoselfcode.datagen.pipeline.driver import run_stage
from evoselfcode.datagen.pipeline.namegen import NAMES
from evoselfcode.datagen.pipeline.store import AnswerStore

pytestmark = pytest.mark.embedded


def test_both_arms_of_the_default_config_are_mostly_compliant(embedded_url, tmp_path):
    # configs/datagen.yaml as shipped (templates, stops, FIM preset, n, temperature); only the server differs
    over = {"api": {"base_url": embedded_url, "model": "qwen2.5-coder-0.5b"}, "namegen": {"logprobs": False},
            "io": {"concurrency": 2}}  # fmt: skip
    cfg = load_config("configs/datagen.yaml", overrides=over)
    good, bad = read_descriptions(cfg.io.input_desc_path, max_chars=cfg.io.max_desc_chars)
    assert bad == []
    descs = [d for _, d in good[::6]]  # 8 of the 48, across the topics
    client = make_client(cfg.api, base_url=embedded_url, concurrency=2)
    try:
        result = run_stage(NAMES, descs, cfg, client, AnswerStore(tmp_path))  # a fresh store: every name is asked
        samples, failures = result.records, result.failures
    finally:
        client.close()
    assert failures == []
    kept, rejects = filter_names(samples, cfg.namegen, cfg.filters)
    metrics = name_metrics(samples, kept, rejects, len(descs))
    for mode in ("FIM", "L2R"):
        arm = metrics["modes"][mode]
        assert arm["sampled"] == len(descs) * cfg.namegen.n == 32
        assert arm["compliance"]["value"] >= 0.5, (mode, arm["reasons"], [s.text for s in samples if s.mode == mode])
    assert metrics["warnings"] == []
