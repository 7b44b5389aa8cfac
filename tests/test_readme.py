"""The README as a new user reads it: every command of its ```bash blocks works as written, every ```yaml config
block validates, and every message its troubleshooting table quotes still occurs.

Commands are read from the README, so a new one is covered without touching this file. Snakemake runs as a
process in a copy of the workflow whose default server is the fake one: `snakemake` commands run as a dry run
(`-n`, the same arguments), except `--unlock` and `--report`, which run; `make` commands as `make -n`, whose
Snakemake lines are then dry-run the same way; `evoselfcode` commands are parsed by the CLI's own parser, and
the read-only tools, `probe` and `export` run on the outputs of one real run of the default target.
"""

import json
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, make_workdir
from fakeserver import FakeServer, Options

from evoselfcode.cli import TOOLS, _parser
from evoselfcode.clients import make_client, make_scorer
from evoselfcode.clients.errors import error_for_status
from evoselfcode.config import PROD_URL, Api, Config, load_config
from evoselfcode.datagen.pipeline.runner import check_failure_budget
from evoselfcode.datagen.schemas import Failure
from evoselfcode.workflow import (
    dry_run_without_storage,
    image_problem,
    not_ready,
    profile_placeholders,
    storage_problems,
    unresolved_default_server,
)

pytestmark = pytest.mark.workflow

README = (ROOT / "README.md").read_text(encoding="utf-8")
VENV = Path(sys.executable).parent.parent
# Commands that change the user's machine or shell, not the pipeline: nothing of ours to check.
SKIP = {"export": "sets a variable in the user's shell", "pip": "installs packages", "cd": "changes directory"}
DESCRIPTIONS = [{"id": f"r{i}", "desc": f"Return the {w} of a list of numbers."} for i, w in
                enumerate(["sum", "mean", "median"])]  # fmt: skip


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, re.M | re.S)


def readme_commands() -> list[str]:
    """Each command of the ```bash blocks: comments dropped, continuation lines joined, `a && b` as two."""
    commands = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            line = shlex.join(words)
            commands += [part.strip() for part in line.split(" '&&' ")] if words else []
    return commands


def test_the_readme_has_the_commands_a_new_user_needs():
    commands = readme_commands()
    for needed in ("make run", "make run DESCS=my.txt", "make run DESCS=my.txt CONFIG=my.yaml", "make report",
                   "make test", "snakemake --profile profiles/local --configfile configs/local.yaml my.yaml",
                   "snakemake --profile profiles/slurm -n data/generated/code/filtered.jsonl --configfile my.yaml",
                   "snakemake --profile profiles/kubernetes -n data/generated/code/filtered.jsonl --configfile my.yaml",
                   ):  # fmt: skip
        assert needed in commands


@pytest.fixture(scope="module")
def server():
    with FakeServer(Options(seed=5)) as srv:
        yield srv


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, server):
    """The workflow with the fake server as its default, my.yaml and my.txt as the README names them, and the
    default target built once, for production and for the quick start."""
    root = make_workdir(tmp_path_factory.mktemp("readme"), DESCRIPTIONS)
    defaults = root / "configs/datagen.yaml"
    defaults.write_text(defaults.read_text().replace(PROD_URL, server.url))
    (root / "my.yaml").write_text(f"api: {{base_url: '{server.url}'}}\n")
    (root / "my.txt").write_text("Add two numbers.\nReverse a string.\n")
    proc = run_in(root, [sys.executable, "-m", "snakemake", "-j", "2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    # and the quick start's, in its own folder (data/quickstart), for `make report`: on the fake server
    quick = [sys.executable, "-m", "snakemake", "--profile", "profiles/local", "--configfile", "configs/local.yaml",
             "my.yaml"]  # fmt: skip
    proc = run_in(root, quick)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def run_in(root: Path, argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=timeout)


def check_snakemake(root: Path, args: list[str]) -> None:
    real = "--unlock" in args or "--report" in args  # --report ignores -n; both only read what is there
    proc = run_in(root, [sys.executable, "-m", "snakemake", *args, *([] if real else ["-n"])])
    assert proc.returncode == 0, f"snakemake {shlex.join(args)}:\n{proc.stderr[-3000:]}"
    if not real:
        said = proc.stdout + proc.stderr
        assert "This was a dry-run" in said or "Nothing to be done" in said


def check_make(root: Path, args: list[str]) -> None:
    proc = run_in(ROOT, ["make", "-n", *args, f"VENV={VENV}"])
    assert proc.returncode == 0, f"make {shlex.join(args)}: {proc.stderr}"
    for line in proc.stdout.splitlines():
        if line.split(" ", 1)[0].endswith("/snakemake"):
            check_snakemake(root, shlex.split(line)[1:])


def check_evoselfcode(root: Path, args: list[str]) -> None:
    parsed = _parser().parse_args(args)  # exits (SystemExit 2) on a wrong form
    if parsed.command in (*TOOLS, "probe", "export"):  # no server but the fake one, nothing outside the copy
        proc = run_in(root, [sys.executable, "-m", "evoselfcode", *args])
        assert proc.returncode == 0, f"evoselfcode {shlex.join(args)}:\n{proc.stderr[-3000:]}"


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_works_as_written(workdir, command):
    words = shlex.split(command)
    if words[0] in SKIP:
        pytest.skip(SKIP[words[0]])
    if words[:3] == ["python", "-m", "evoselfcode"]:
        words = words[2:]
    match words[0]:
        case "make":
            check_make(workdir, words[1:])
        case "snakemake":
            check_snakemake(workdir, words[1:])
        case "evoselfcode":
            check_evoselfcode(workdir, words[1:])
        case _:
            pytest.fail(f"README command {command!r}: tests/test_readme.py does not know how to check it; add a case")


@pytest.mark.parametrize("block", [b for b in blocks("yaml") if set(yaml.safe_load(b)) <= set(Config.model_fields)])
def test_every_readme_config_block_validates(tmp_path, block):
    (tmp_path / "my.yaml").write_text(block)
    load_config(tmp_path / "my.yaml")


# ---- troubleshooting: each quoted message, made to happen -----------------------------------------------------

NAME_ARGS = dict(max_tokens=8, temperature=0.0, top_p=1.0, n=1, stop=["("])


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once the socket is closed


def _error(call) -> str:
    try:
        call()
    except Exception as exc:  # the message is what the user reads
        return str(exc)
    raise AssertionError("no error")


def _server_down() -> list[str]:
    api = Api.model_validate({"max_retries": 3, "backoff": {"base": 0.01, "max": 0.01},
                              "circuit_breaker": {"failure_threshold": 1, "reset_timeout": 30}})  # fmt: skip
    client = make_client(api, base_url=_closed_port_url(), concurrency=1)
    return [_error(lambda: client.complete("def ", seed=1, **NAME_ARGS))]


def _wrong_key() -> list[str]:
    with FakeServer(Options(required_headers={"Authorization": "Bearer right"})) as srv:
        client = make_client(Api.model_validate({"max_retries": 0}), base_url=srv.url, concurrency=1)
        return [_error(lambda: client.complete("def ", seed=1, **NAME_ARGS))]


def _unset_variable(monkeypatch) -> list[str]:
    monkeypatch.delenv("MY_API_KEY", raising=False)
    api = Api.model_validate({"headers": {"Authorization": "Bearer ${MY_API_KEY}"}})
    return [_error(api.resolved_headers)]


def _context_too_long() -> list[str]:
    """llama-cpp-python's server's own answer to a prompt longer than its context, as our client reports it."""
    from types import SimpleNamespace

    from llama_cpp.server.errors import ErrorResponseFormatters

    raw = re.search(r"(\d+)\D+(\d+)", "Requested tokens (2100) exceed context window of 2048")
    status, body = ErrorResponseFormatters.context_length_exceeded(SimpleNamespace(max_tokens=384), raw)
    said = str(error_for_status(status, url="http://127.0.0.1:1/v1/completions", body=json.dumps({"error": body})))
    failure = Failure(stage="code", desc_id="d", error="BadRequest", message=said)
    budget = _error(lambda: check_failure_budget(load_config("configs/datagen.yaml"), [failure], 1, "code"))
    return [said, budget]


def _no_echo() -> list[str]:
    said = []
    for logprobs in ("missing", "error"):
        with FakeServer(Options(logprobs=logprobs)) as srv:
            scorer = make_scorer(Api.model_validate({"max_retries": 0}), base_url=srv.url, concurrency=1)
            said.append(_error(lambda s=scorer: s.token_logprobs("return 1\n", prompt="def f():\n    ")))
    return said


def _misspelled_key(tmp_path) -> list[str]:
    (tmp_path / "my.yaml").write_text("io:\n  shard_sise: 3\n")
    return [_error(lambda: load_config(tmp_path / "my.yaml"))]


def _default_server() -> list[str]:
    return [unresolved_default_server(Api())]


def _slurm_placeholders() -> list[str]:
    from snakemake.resources import Resources
    from snakemake.settings.types import ResourceSettings

    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    resources = Resources.parse(profile["default-resources"], allow_expressions=True)
    return [profile_placeholders(ResourceSettings(default_resources=resources))]


def _kubernetes_placeholders() -> list[str]:
    profile = yaml.safe_load((ROOT / "profiles/kubernetes/config.yaml").read_text())
    missing = storage_problems(profile["default-storage-provider"], profile["default-storage-prefix"], lambda: False)
    return [not_ready(image_problem(profile["container-image"]) + missing), dry_run_without_storage(missing)]


def _left_lock() -> list[str]:
    from snakemake.exceptions import LockException

    return [str(LockException())]


@pytest.fixture
def real_messages(tmp_path, monkeypatch) -> str:
    said = [*_server_down(), *_wrong_key(), *_unset_variable(monkeypatch), *_context_too_long(), *_no_echo(),
            *_misspelled_key(tmp_path), *_default_server(), *_slurm_placeholders(), *_kubernetes_placeholders(),
            *_left_lock()]  # fmt: skip
    return "\n\n".join(said)


def quoted_messages() -> list[str]:
    table = README.split("## Troubleshooting", 1)[1].split("\n\n", 2)[1]
    rows = [row for row in table.splitlines()[2:] if row.startswith("|")]
    quotes = [quote for row in rows for quote in re.findall(r"`([^`]+)`", row.split(" | ")[0])]
    return [quote for quote in quotes if not re.fullmatch(r"[\w./{},-]+\.(jsonl|json|yaml)", quote)]  # not file names


def test_the_troubleshooting_table_quotes_what_users_see(real_messages):
    quotes = quoted_messages()
    assert len(quotes) >= 10
    for quote in quotes:
        pattern = ".*?".join(re.escape(part.strip()) for part in quote.split("..."))
        assert re.search(pattern, real_messages, re.S), (
            f"the README's troubleshooting table quotes {quote!r}, which no real message says; quote the message as "
            "it is now, or make it happen in tests/test_readme.py (real_messages)"
        )
