"""What the Snakefile needs from the package at DAG-build time, kept here where it is tested."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from evoselfcode.config import DEFAULT_CONFIG, PROD_URL, Api, Config, read_yaml
from evoselfcode.layout import STATE_DIR

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


S3_CREDENTIALS = (
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or SNAKEMAKE_STORAGE_S3_ACCESS_KEY and "
    "SNAKEMAKE_STORAGE_S3_SECRET_KEY, or an AWS profile)"
)


def s3_credentials(settings) -> bool:
    """Whether the S3 storage plugin will have credentials: its own settings' keys, or boto3's usual chain
    (AWS_* variables, ~/.aws files, instance roles)."""
    if settings is not None and getattr(settings, "access_key", None) and getattr(settings, "secret_key", None):
        return True
    import boto3

    return boto3.Session().get_credentials() is not None


def storage_problems(provider: str | None, prefix: str | None, credentials) -> list[str]:
    """What a default storage provider still lacks: a prefix other than the shipped placeholder, and for S3
    credentials (`credentials` is called only then: boto3's lookup may ask the network)."""
    if provider is None:
        return []
    problems = []
    if prefix is None or PLACEHOLDER in prefix:
        problems.append(
            f"default-storage-prefix (still {prefix}: your bucket and folder, e.g. s3://my-bucket/evoselfcode)"
        )
    if provider == "s3" and not credentials():
        problems.append(f"S3 credentials: {S3_CREDENTIALS} in this shell")
    return problems


def image_problem(image: str | None) -> list[str]:
    """The container image, when it is still the shipped placeholder (profiles/kubernetes)."""
    return (
        [f"container-image (still {image}: an image with evoselfcode installed)"]
        if image and PLACEHOLDER in image
        else []
    )


def profile_image(argv: list[str], environ=os.environ) -> str | None:
    """The container image this command gives Snakemake (`--container-image`, else its profile's), which the
    workflow is not told until after it is parsed; None if neither names one."""

    def value(flag: str) -> str | None:
        for i, arg in enumerate(argv):
            if arg == flag and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
        return None

    if image := value("--container-image"):
        return image
    profile = value("--profile") or environ.get("SNAKEMAKE_PROFILE")
    path = Path(profile or "", "config.yaml")
    if not profile or not path.is_file():
        return None
    return (read_yaml(path) or {}).get("container-image")


def not_ready(problems: list[str]) -> str:
    """The one line that stops a cluster run before any job, naming each key to set."""
    return (
        f"the profile is not ready for a real run: set {'; '.join(problems)}. See the README's Clusters section; "
        "a dry run (-n) works as it is"
    )


def dry_run_without_storage(problems: list[str]) -> str:
    """What a dry run says when it plans without the default storage, which it could not ask."""
    return (
        f"dry run without the default storage, which lacks {'; '.join(problems)}: the jobs below are planned from "
        "the files in this folder, not from what the bucket holds"
    )


def plan_without_storage(workflow) -> None:
    """Let a dry run plan from local files: no path (a rule's, an input function's, a target) goes to the default
    storage, while the setting stays for Snakemake's check that a no-shared-FS executor has one."""
    workflow.modifier.path_modifier.apply_default_storage = lambda path: path


def cluster_profile_problem(workflow, argv: list[str]) -> str | None:
    """Why a run with a cluster profile must not start (placeholders, storage credentials), checked while the
    Snakefile is parsed: before the rules' paths are given to the default storage and before the DAG asks it what
    exists. A dry run instead says what it lacks and plans from local files; a job on the cluster is not checked."""
    if workflow.remote_exec:  # a job in a pod or on a node: the run that submitted it has checked
        return None
    settings = workflow.storage_settings
    provider = workflow.storage_registry.default_storage_provider
    problems = storage_problems(settings.default_storage_provider, settings.default_storage_prefix,
                                lambda: s3_credentials(getattr(provider, "settings", None)))  # fmt: skip
    if not problems:
        return None
    if workflow.output_settings.dryrun:
        print(dry_run_without_storage(problems), file=sys.stderr)
        plan_without_storage(workflow)
        return None
    return not_ready(image_problem(profile_image(argv)) + problems)


def builds_final_records(dag, kept: str) -> bool:
    """Whether this run was asked for the default target or the kept functions (`kept`): the moment for a summary."""
    targets = {str(f) for f in dag.targetfiles}
    return any(rule.name == "all" for rule in dag.targetrules) or kept in targets


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
