# Config validation, the shard list and the few helpers the rules share (logic is in the package).
import atexit
import os
import sys

from snakemake.exceptions import WorkflowError

from evoselfcode import embedded
from evoselfcode.config import ConfigError, validate_config
from evoselfcode.datagen.benchmark_index import BenchmarkError, benchmark_index
from evoselfcode.datagen.inputs import InputError, index_input
from evoselfcode.datagen.sandbox import sandbox_problem
from evoselfcode.datagen.utils.ruff import formatter_version
from evoselfcode.layout import Layout
from evoselfcode.rule_settings import rule_digest
from evoselfcode.summary import remember_report_command, report_command, summary
from evoselfcode.workflow import (
    RESUME_HINT,
    builds_final_records,
    cluster_profile_problem,
    config_sources,
    image_problem,
    needs_echo,
    not_ready,
    profile_placeholders,
    unresolved_default_server,
    write_resolved_config,
)


# A cluster profile's placeholders and storage credentials: before the rules and the DAG ask the storage anything.
if problem := cluster_profile_problem(workflow, sys.argv):
    raise WorkflowError(problem)

# Every input line is checked here, before any job runs, so a bad line stops the run before any request.
try:
    CFG = validate_config(config, config_sources(workflow))
    # Every path of the rules, and the optional stages' switches (RUN.stages) with what they change
    RUN = Layout.of(CFG)
    INDEX = index_input(CFG)
    # The benchmarks' index, named by what it is built from; built here, not by a job: a lost one reruns no check.
    # A bad benchmark stops the run here.
    BENCHMARK_INDEX = benchmark_index(CFG.decontamination, RUN.shards.benchmark_indexes)
    if CFG.api.base_url != "embedded":
        CFG.api.resolved_headers()  # an unset ${VAR} stops the run here, not in its first generation job
except (ConfigError, InputError, BenchmarkError, OSError) as exc:  # OSError: e.g. data/shards is not writable
    raise WorkflowError(str(exc)) from None
SHARDS = INDEX.shard_ids

# Jobs read the validated config from this content-addressed file; rules' params hold only what
# their outputs depend on, so e.g. a new timeout or concurrency reruns nothing.
CONFIG_FILE = write_resolved_config(CFG)
EVO = f"{sys.executable} -m evoselfcode"


wildcard_constraints:
    shard=r"\d+",


def spec(rule):
    """A rule's params: a digest of the settings its output depends on, as listed in evoselfcode/rule_settings.py."""
    return rule_digest(CFG, rule)


def start_embedded_server():
    if CFG.api.base_url == "embedded":
        # scoring's prompt log-probs need llama-cpp-python's server; otherwise the native one, which batches
        url = embedded.start(CFG.embedded, echo=needs_echo(CFG, workflow.dag), log_path=RUN.server_log)
        print(f"starting the embedded server: {url}", file=sys.stderr)


def stop_embedded_server():
    if CFG.api.base_url == "embedded":
        embedded.stop()


def check_before_start():
    """Problems a dry run need not know: profile placeholders; when jobs run here, no default server or sandbox."""
    image = image_problem(workflow.remote_execution_settings.container_image)  # known only now, not when parsed
    problem = profile_placeholders(workflow.resource_settings) or (image and not_ready(image))
    problem = problem or (workflow.local_exec and unresolved_default_server(CFG.api))
    problem = problem or (workflow.local_exec and RUN.stages.tests and sandbox_problem(CFG.execution))
    if problem:
        raise WorkflowError(problem)


def print_summary():
    # metrics.json is read here, so not on remote storage
    if builds_final_records(workflow.dag, RUN.code.filtered()) and os.path.exists(RUN.code.metrics_json):
        collect = report_command(sys.argv)  # the next command; `report` is a Snakemake keyword
        remember_report_command(RUN.code.root, collect)
        print(summary(RUN.names.root, RUN.code.root, collect), file=sys.stderr)


def say_how_to_resume():
    # atexit: after Snakemake's own closing lines, so this is the last one the user reads (Ctrl-C included)
    atexit.register(print, RESUME_HINT, file=sys.stderr)
