# Config validation, the shard list and the few helpers the rules share (logic is in the package).
import sys

from snakemake.exceptions import WorkflowError

from evoselfcode import embedded
from evoselfcode.config import ConfigError, read_yaml, validate_config
from evoselfcode.datagen.inputs import InputError, shard_ids
from evoselfcode.workflow import config_sources, write_resolved_config

try:
    CFG = validate_config(config, config_sources(workflow))
    SHARDS = shard_ids(CFG.io.input_desc_path, CFG.io.shard_size)
except (ConfigError, InputError) as exc:
    raise WorkflowError(str(exc)) from None

# Jobs read the validated config from this content-addressed file; rules' params hold only what
# their outputs depend on, so e.g. a new timeout or concurrency reruns nothing.
CONFIG_FILE = write_resolved_config(CFG)
EVO = f"{sys.executable} -m evoselfcode"
SHARD_DIR = CFG.io.shards_dir
NAMES = CFG.io.out_names_dir
CODE = CFG.io.out_code_dir


wildcard_constraints:
    shard=r"\d+",


def spec(*patterns):
    """A rule's params: a digest of the settings its output depends on (`section`, `section.key`, `!` excludes)."""
    return CFG.settings_digest(*(p if "." in p else f"{p}.*" for p in patterns))


def start_embedded_server():
    if CFG.api.base_url == "embedded":
        print(f"starting the embedded server: {embedded.start(CFG.embedded)}", file=sys.stderr)


def stop_embedded_server():
    if CFG.api.base_url == "embedded":
        embedded.stop()
