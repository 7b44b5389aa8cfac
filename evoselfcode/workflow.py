"""What the Snakefile needs from the package at DAG-build time, kept here where it is tested."""

from __future__ import annotations

import os
from pathlib import Path

from evoselfcode.config import Config, read_yaml
from evoselfcode.datagen.inputs import STATE_DIR

DEFAULT_CONFIG = "configs/datagen.yaml"


def _shown(path: str | Path) -> str:
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def config_sources(workflow) -> list[tuple[str, dict]]:
    """Where each config key may come from, in override order, for errors that name the file."""
    settings = workflow.config_settings
    sources = [(DEFAULT_CONFIG, read_yaml(DEFAULT_CONFIG))] if Path(DEFAULT_CONFIG).exists() else []
    sources += [(_shown(f), read_yaml(f)) for f in settings.configfiles]
    if settings.config:
        sources.append(("--config", dict(settings.config)))
    return sources


def write_resolved_config(cfg: Config, directory: Path = STATE_DIR) -> str:
    """Write the validated config once under a name made of its digest, and return the path."""
    path = directory / f"config-{cfg.digest()}.json"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(cfg.model_dump_json(indent=2))
        tmp.replace(path)
    return str(path)
