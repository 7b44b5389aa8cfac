"""Client for custom `/generate`-style servers, driven by `api.field_map`.

`api.field_map` is a preset name (`tgi`, `vllm-generate`) or a mapping of dotted paths, optionally starting
from a preset (`preset: tgi`). Request keys say where each argument goes, response keys where the answer is:

    prompt: inputs                        # request: prompt, max_tokens, temperature, top_p, stop, seed, n
    max_tokens: parameters.max_new_tokens
    text: generated_text                  # response: text, finish_reason, tokens, logprobs
    tokens: details.tokens[].text         # `x[]` maps the rest of the path over the list `x`
    constants: {parameters.details: true} # always sent
    echoes_prompt: false                  # the answer's text starts with the prompt: strip it
    stop_in_text: false                   # the answer's text ends with the stop string that ended it: strip it
    top_p_below_1: false                  # top_p >= 1 is rejected: omit it (it means "no nucleus cut" anyway)
    sample_flag: null                     # path set to temperature > 0; temperature 0 is then not sent

Without an `n` path, each choice is its own request (with derived seeds), like the OpenAI client's fan-out.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

import urllib3

from evoselfcode.clients.base import Choice, CompletionClient, collect_choices
from evoselfcode.clients.errors import ResponseFormatError, display_url
from evoselfcode.clients.limits import estimate_tokens
from evoselfcode.clients.retry import RetryWait
from evoselfcode.clients.transport import Transport
from evoselfcode.config import Api, ConfigError

REQUEST_KEYS = ("prompt", "max_tokens", "temperature", "top_p", "stop", "seed", "n")
RESPONSE_KEYS = ("text", "finish_reason", "tokens", "logprobs")
OPTION_KEYS = ("preset", "route", "constants", "echoes_prompt", "stop_in_text", "top_p_below_1", "sample_flag")

PRESETS: dict[str, dict[str, Any]] = {
    "tgi": {
        "route": "/generate",
        "prompt": "inputs",
        "max_tokens": "parameters.max_new_tokens",
        "temperature": "parameters.temperature",
        "top_p": "parameters.top_p",
        "stop": "parameters.stop",
        "seed": "parameters.seed",
        "text": "generated_text",
        "finish_reason": "details.finish_reason",
        "tokens": "details.tokens[].text",
        "logprobs": "details.tokens[].logprob",
        "constants": {"parameters.details": True, "parameters.decoder_input_details": False},
        "stop_in_text": True,
        "top_p_below_1": True,
        "sample_flag": "parameters.do_sample",
    },
    "vllm-generate": {
        "route": "/generate",
        "prompt": "prompt",
        "max_tokens": "max_tokens",
        "temperature": "temperature",
        "top_p": "top_p",
        "stop": "stop",
        "seed": "seed",
        "n": "n",
        "text": "text",
        "echoes_prompt": True,
    },
}
# Server-specific finish reasons, said the OpenAI way.
_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def resolve_field_map(field_map: str | dict[str, Any] | None) -> dict[str, Any]:
    """The complete field map: preset merged with overrides; unknown keys or presets are ConfigErrors."""
    if field_map is None:
        raise ConfigError(f"api.mode: endpoint needs api.field_map: a preset ({', '.join(PRESETS)}) or a mapping")
    spec = {"preset": field_map} if isinstance(field_map, str) else dict(field_map)
    unknown = sorted(set(spec) - set(REQUEST_KEYS + RESPONSE_KEYS + OPTION_KEYS))
    if unknown:
        known = ", ".join(REQUEST_KEYS + RESPONSE_KEYS + OPTION_KEYS)
        raise ConfigError(f"api.field_map.{unknown[0]}: unknown key; known keys: {known}")
    preset = spec.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"api.field_map: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    merged = {**PRESETS.get(preset, {}), **spec}
    for key in ("prompt", "text"):
        if not merged.get(key):
            raise ConfigError(f"api.field_map.{key} is required: where the {key} goes / comes back")
    return merged


def set_path(target: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


def get_path(data: Any, path: str) -> Any:
    """Follow a dotted path; a `name[]` segment maps the rest of the path over that list. Missing -> None."""
    parts = path.split(".")
    for i, part in enumerate(parts):
        over_list = part.endswith("[]")
        key = part[:-2] if over_list else part
        if isinstance(data, list) and key.isdigit():
            data = data[int(key)] if int(key) < len(data) else None
        elif isinstance(data, dict):
            data = data.get(key)
        else:
            return None
        if over_list:
            if not isinstance(data, list):
                return None
            rest = ".".join(parts[i + 1 :])
            return [get_path(item, rest) if rest else item for item in data]
    return data


class EndpointClient(CompletionClient):
    def __init__(
        self,
        api: Api,
        *,
        base_url: str,
        concurrency: int,
        pool: urllib3.PoolManager | None = None,
        transport: Transport | None = None,
    ):
        self.api = api
        self.fields = resolve_field_map(api.field_map)
        # the preset's route unless the config names one itself
        self.route = api.route if "route" in api.model_fields_set else self.fields.get("route", api.route)
        self.transport = transport or Transport(api, base_url, concurrency=concurrency, pool=pool)
        self.url = self.transport.base_url + self.route

    def close(self) -> None:
        self.transport.close()

    def stats(self) -> dict:
        return self.transport.stats.snapshot()

    def build_body(self, prompt: str, *, k: int, max_tokens: int, temperature: float, top_p: float, stop, seed) -> dict:
        f = self.fields
        body: dict[str, Any] = {}
        for path, value in (f.get("constants") or {}).items():
            set_path(body, path, value)
        values: dict[str, Any] = {"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature}
        if not (f.get("top_p_below_1") and top_p >= 1.0):
            values["top_p"] = top_p
        if f.get("sample_flag"):
            set_path(body, f["sample_flag"], temperature > 0)
            if temperature <= 0:
                del values["temperature"]
        if stop:
            values["stop"] = list(stop)
        if seed is not None:
            values["seed"] = seed
        if f.get("n"):
            values["n"] = k
        for key, value in values.items():
            if f.get(key):
                set_path(body, f[key], value)
        return body

    def parse(self, data: Any, *, prompt: str, stop: list[str] | None) -> list[Choice]:
        f = self.fields
        if isinstance(data, list) and len(data) == 1 and not f["text"].split(".")[0].isdigit():
            data = data[0]  # Hugging Face style: a one-element list around the answer
        texts = get_path(data, f["text"])
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ResponseFormatError(
                f"{display_url(self.url)} answered 200 without text at {f['text']!r}; "
                "check api.field_map.text (and api.route) against what the server returns",
                url=self.url,
            )
        finish = get_path(data, f["finish_reason"]) if f.get("finish_reason") else None
        finish = _FINISH.get(finish, finish) if isinstance(finish, str) else None
        tokens = get_path(data, f["tokens"]) if f.get("tokens") else None
        logprobs = get_path(data, f["logprobs"]) if f.get("logprobs") else None
        per_choice = len(texts) == 1 and isinstance(tokens, list)
        choices = []
        for text in texts:
            if f.get("echoes_prompt") and text.startswith(prompt):
                text = text[len(prompt) :]
            if f.get("stop_in_text") and stop and finish != "length":
                hit = next((s for s in stop if s and text.endswith(s)), None)
                text = text[: -len(hit)] if hit else text
            choices.append(
                Choice(
                    text,
                    finish,
                    tuple(str(t) for t in tokens) if per_choice else (),
                    tuple(float(v) if isinstance(v, int | float) else None for v in logprobs or ())
                    if per_choice
                    else (),
                )
            )
        return choices

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float,
        top_p: float,
        n: int = 1,
        stop: list[str] | None = None,
        logprobs: int | bool | None = None,
        seed: int | None = None,
        extra: dict | None = None,
        retry_wait: RetryWait = contextlib.nullcontext,
    ) -> list[Choice]:
        def ask(k: int, k_seed: int | None) -> list[Choice]:
            k = k if self.fields.get("n") else 1
            body = self.build_body(
                prompt, k=k, max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stop, seed=k_seed
            )
            for path, value in (extra or {}).items():
                set_path(body, path, value)
            choices, latency = self.transport.post(
                self.route,
                body,
                lambda data: self.parse(data, prompt=prompt, stop=stop),
                cost_tokens=estimate_tokens(prompt, max_tokens, k),
                retry_wait=retry_wait,
            )
            return [replace(c, latency=latency) for c in choices]

        return collect_choices(n, seed, ask)
