"""What the Snakefile needs from the package at DAG-build time, kept here where it is tested."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from evoselfcode.config import DEFAULT_CONFIG, PROD_URL, Api, Config, read_yaml
from evoselfcode.datagen.inputs import STATE_DIR

RESUME_HINT = (
    "To resume, run the same command again (after fixing the error above, if any): finished steps and answered "
    "requests are kept"
)
PLACEHOLDER = "CHANGE_ME"  # what the shipped profiles hold where a site's own value must go


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


def profile_placeholders(resource_settings) -> str | None:
    """Why a run must not start while the profile's resources still hold CHANGE_ME (sbatch would fail or bill
    the wrong account), naming the keys to set; None when there are none."""
    args = list(resource_settings.default_resources.args) if resource_settings.default_resources else []
    for rule, resources in resource_settings.overwrite_resources.items():
        args += [f"{rule}:{arg}" for arg in resources.args]
    found = [arg for arg in args if PLACEHOLDER in arg]
    if not found:
        return None
    keys = " and ".join(arg.split("=")[0] for arg in found)
    return (
        f"the profile still has {', '.join(found)}: set {keys} in its resources before a real run "
        "(profiles/slurm/config.yaml: `sacctmgr show assoc user=$USER` lists your accounts, `sinfo -s` the "
        "partitions; drop slurm_account if your site has none); a dry run (-n) works as it is"
    )


def builds_final_records(dag, code_dir: str) -> bool:
    """Whether this run was asked for the default target or the final records: the moment for a summary."""
    targets = {str(f) for f in dag.targetfiles}
    return any(rule.name == "all" for rule in dag.targetrules) or f"{code_dir}/filtered.jsonl" in targets


def needs_echo(cfg: Config, dag) -> bool:
    """Whether this run asks the server for prompt log-probs (echo): scoring, enabled or its output asked for
    by name. Names ranked by log-prob need only the answer's, which every embedded server gives."""
    scores = any(job.rule.name == "score_code" for job in dag.needrun_jobs())
    return cfg.scoring.enabled or scores


def unresolved_default_server(api: Api) -> str | None:
    """Why the run cannot start when api.base_url is still the production default and its host does not
    resolve here (the obvious own-descriptions command without configs/local.yaml lands here); else None."""
    if api.base_url != PROD_URL:
        return None
    try:
        socket.getaddrinfo(urlsplit(PROD_URL).hostname, None)
    except socket.gaierror as exc:
        return (
            f"api.base_url is still the production default {PROD_URL}, whose host does not resolve here "
            f"({exc.strerror}). Either set api.base_url to your server in a --configfile, or run on the local "
            "model: `make run DESCS=your.txt`, or name configs/local.yaml before your own config file: "
            "`snakemake --profile profiles/local --configfile configs/local.yaml my.yaml` (a --configfile "
            "replaces the profile's)"
        )
    return None
