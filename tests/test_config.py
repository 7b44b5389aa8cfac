import pytest
import yaml
from pydantic import BaseModel

from evoselfcode.config import Config, ConfigError, load_config, read_yaml


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        out.add(prefix + name)
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out |= _keys(sub, f"{prefix}{name}.")
    return out


def _yaml_keys(data: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in data.items():
        out.add(prefix + key)
        if isinstance(value, dict) and prefix.count(".") < 2:
            out |= _yaml_keys(value, f"{prefix}{key}.")
    return out


def test_shipped_config_is_complete_and_matches_the_defaults():
    shipped = load_config("configs/datagen.yaml")
    assert shipped == Config()
    spelled_out = _yaml_keys(read_yaml("configs/datagen.yaml"))
    assert _keys(Config) - spelled_out == set(), "keys missing from configs/datagen.yaml"


def test_a_second_file_overrides_only_its_keys(tmp_path):
    override = write(tmp_path, "o.yaml", "io:\n  shard_size: 7\nnamegen:\n  n: 3\n")
    cfg = load_config("configs/datagen.yaml", override)
    assert (cfg.io.shard_size, cfg.namegen.n) == (7, 3)
    assert cfg.io.concurrency == Config().io.concurrency
    assert cfg.namegen.temperature == 0.4


def test_unknown_key_names_the_key_path_and_the_file(tmp_path):
    bad = write(tmp_path, "bad.yaml", "api:\n  base_ur: http://x\n")
    with pytest.raises(ConfigError) as err:
        load_config("configs/datagen.yaml", bad)
    assert "api.base_ur" in str(err.value)
    assert str(bad) in str(err.value)
    assert "unknown key" in str(err.value)


def test_wrong_type_and_bad_limits_are_reported_together(tmp_path):
    bad = write(tmp_path, "bad.yaml", "io:\n  shard_size: zero\n  concurrency: 0\nnamegen:\n  top_p: 1.5\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    text = str(err.value)
    for key in ("io.shard_size", "io.concurrency", "namegen.top_p"):
        assert key in text


def test_override_from_the_command_line_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"namegen\.n \(in --config\)"):
        load_config("configs/datagen.yaml", overrides={"namegen": {"n": 0}})


@pytest.mark.parametrize(
    ("namegen", "key"),
    [
        ("{modes: []}", r"namegen\.modes \(in .*o\.yaml\)"),
        ("{select: {sources: []}}", r"namegen\.select\.sources \(in .*o\.yaml\)"),
        ("{modes: [FIM], select: {sources: [L2R]}}", r"namegen \(in .*o\.yaml\): .*select\.sources"),
    ],
)
def test_settings_that_would_send_no_description_on_are_errors(tmp_path, namegen, key):
    # no mode, or no selected mode that is sampled: every description would end in no output and no record
    override = write(tmp_path, "o.yaml", f"namegen: {namegen}\n")
    with pytest.raises(ConfigError, match=key):
        load_config("configs/datagen.yaml", override)


def test_one_folder_for_both_stages_is_named(tmp_path):
    # both stages write raw/, failures/ and timing/ per shard: Snakemake would only say its rules are ambiguous
    override = write(tmp_path, "o.yaml", "io: {out_names_dir: data/gen, out_code_dir: data/gen/}\n")
    with pytest.raises(ConfigError, match=r"io \(in .*o\.yaml\): .*out_names_dir and out_code_dir"):
        load_config("configs/datagen.yaml", override)


@pytest.mark.parametrize(("key", "path"), [("input_desc_path", "data/my tasks.jsonl"), ("shards_dir", "data/$HOME"),
                                           ("out_code_dir", "out;rm"), ("out_names_dir", "it's")])  # fmt: skip
def test_paths_the_shell_would_split_are_named(tmp_path, key, path):
    # the rules pass io paths to shell commands unquoted: 'data/my tasks.jsonl' failed in the split job
    override = write(tmp_path, "o.yaml", yaml.safe_dump({"io": {key: path}}))
    with pytest.raises(ConfigError, match=rf"io\.{key} \(in .*o\.yaml\): .*rename the file or folder"):
        load_config("configs/datagen.yaml", override)
    assert load_config("configs/datagen.yaml", overrides={"io": {key: "données/run-1_x.y"}}).io


@pytest.mark.parametrize("url", ["qwen:8000", "ftp://host", "http://", "http://a b"])
def test_malformed_url_is_rejected(url):
    with pytest.raises(ConfigError, match="api.base_url"):
        load_config("configs/datagen.yaml", overrides={"api": {"base_url": url}})


def test_embedded_and_urls_are_accepted():
    embedded = {"base_url": "embedded", "model": "qwen2.5-coder-0.5b"}  # api.model names the embedded model
    assert load_config(overrides={"api": embedded}).api.base_url == "embedded"
    assert load_config(overrides={"api": {"base_url": "http://h:8000/"}}).api.base_url == "http://h:8000"


@pytest.mark.parametrize(
    ("api", "url"),
    [
        ({"base_url": "http://h:8000/v1"}, "http://h:8000/v1/completions"),  # as OpenAI's SDK writes it
        ({"base_url": "http://h:8000/v1/", "route": "/completions"}, "http://h:8000/v1/completions"),
        ({"base_url": "http://h/llm/v1"}, "http://h/llm/v1/completions"),  # a proxy's path prefix stays
        ({"base_url": "http://h:8000"}, "http://h:8000/v1/completions"),
        (
            {"base_url": "http://h/v1", "mode": "endpoint", "field_map": "tgi", "route": "/generate"},
            "http://h/v1/generate",
        ),
    ],
)
def test_a_base_url_ending_in_v1_asks_v1_once(api, url):
    got = load_config(overrides={"api": api}).api
    assert got.base_url + got.route == url
    assert got.mode == "endpoint" or not got.base_url.endswith("/v1")  # /v1/models and /tokenize at the root


def test_headers_read_the_environment_and_unset_variables_fail(monkeypatch):
    cfg = load_config(overrides={"api": {"headers": {"Authorization": "Bearer ${EVO_TEST_KEY}"}}})
    monkeypatch.delenv("EVO_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"api\.headers\.Authorization.*EVO_TEST_KEY"):
        cfg.api.resolved_headers()
    monkeypatch.setenv("EVO_TEST_KEY", "s3cret")
    assert cfg.api.resolved_headers() == {"Authorization": "Bearer s3cret"}


def test_missing_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "list.yaml", "- a\n- b\n"))
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"# caf\xe9\nio: {shard_size: 5}\n")
    with pytest.raises(ConfigError, match=f"{latin1} is not UTF-8"):
        load_config(latin1)


def test_settings_are_named_one_by_one_and_a_nested_one_counts_whole():
    cfg = load_config(overrides={"filters": {"dedup": {"threshold": 0.9}}})
    chosen = cfg.settings(["namegen.temperature", "filters.dedup", "api.model"])
    assert list(chosen) == ["api.model", "filters.dedup", "namegen.temperature"]
    assert chosen["filters.dedup"]["threshold"] == 0.9 and chosen["namegen.temperature"] == 0.4
    with pytest.raises(KeyError, match="namegen.\\* is not a setting"):
        cfg.settings(["namegen.*"])  # no patterns: a rule names each setting
