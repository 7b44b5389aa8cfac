"""Messy description files and bad configs through the whole workflow: a clear error naming the file and line
(or key) before any request is sent, or, with io.on_bad_line: skip, a quarantine file listing what was skipped."""

import json

import pytest
from conftest import make_workdir, snakemake
from fakeserver import ServerProcess
from reliability import TARGET, config, read_jsonl

pytestmark = pytest.mark.workflow

INPUT = "data/descriptions/messy.jsonl"
GOOD = [{"id": "a", "desc": "Sum a list of numbers."}, {"id": "h", "desc": "Reverse a string."}]
MESSY = [  # (line bytes, reason it is bad or None)
    (json.dumps(GOOD[0]).encode(), None),
    (b"{not json", "invalid_json"),
    (b'{"id": "b"}', "missing_desc"),
    (b'{"id": "c", "desc": 3}', "desc_not_string"),
    (b'{"id": "d", "desc": "   "}', "empty_desc"),
    (json.dumps({"id": "e", "desc": "x" * 1_000_000}).encode(), "desc_too_long"),
    (b'{"id": "f", "desc": "caf\xe9"}', "invalid_utf8"),
    (b'{"id": "a", "desc": "Another task."}', "duplicate_id"),
    (b'{"id": "g", "desc": "Sum a list of numbers."}', "duplicate_desc"),
    (b"", None),
    (json.dumps(GOOD[1]).encode(), None),
]
BAD_LINES = {n: reason for n, (_, reason) in enumerate(MESSY, 1) if reason}


@pytest.fixture(scope="module")
def server():
    with ServerProcess() as srv:
        yield srv
        assert srv.stats()["requests"] == 0


@pytest.fixture(autouse=True)
def _no_request_is_sent(server):
    yield
    assert server.stats()["requests"] == 0


def run(tmp_path, server, data: bytes | None, *targets, name=INPUT, skip=False, bad_config="{}"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    root = make_workdir(tmp_path, None, config(server.url))
    if data is not None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    io = f"io: {{input_desc_path: {name}, shard_size: 4, on_bad_line: {'skip' if skip else 'error'}}}"
    (root / "configs/input.yaml").write_text(io)
    (root / "configs/bad.yaml").write_text(bad_config)
    configs = ("configs/test.yaml", "configs/input.yaml", "configs/bad.yaml")
    proc = snakemake(root, *(targets or [TARGET]), configs=configs)
    return root, proc, proc.stdout + proc.stderr


def test_every_bad_line_is_named_with_file_line_and_reason(tmp_path, server):
    root, proc, out = run(tmp_path, server, b"\n".join(line for line, _ in MESSY) + b"\n")
    assert proc.returncode != 0
    for number, reason in BAD_LINES.items():
        assert f"{INPUT}:{number}: {reason}" in out
    assert "io.on_bad_line: skip" in out
    assert len(out) < 50_000  # the 1 MB description is described, not echoed
    assert not (root / "data/generated").exists()


def test_skip_quarantines_bad_lines_and_keeps_the_good_ones(tmp_path, server):
    shards = [f"data/shards/{k:05d}.jsonl" for k in range(3)]  # 10 non-blank lines in shards of 4
    root, proc, out = run(tmp_path, server, b"\r\n".join(line for line, _ in MESSY), *shards,
                          "data/shards/quarantine.jsonl", skip=True)  # fmt: skip
    assert proc.returncode == 0, out[-3000:]
    quarantined = read_jsonl(root / "data/shards/quarantine.jsonl")
    assert {q["line"]: q["reason"] for q in quarantined} == BAD_LINES
    assert all(q["file"] == INPUT for q in quarantined)
    assert [d for s in shards for d in read_jsonl(root / s)] == GOOD


def test_bom_crlf_and_blank_lines_shard_like_a_plain_file(tmp_path, server):
    lines = [json.dumps(d) for d in GOOD * 1] + [json.dumps({"id": f"x{i}", "desc": f"Task {i}."}) for i in range(4)]
    shards = [f"data/shards/{k:05d}.jsonl" for k in range(2)]
    plain, proc, out = run(tmp_path / "plain", server, "\n".join(lines).encode() + b"\n", *shards)
    assert proc.returncode == 0, out[-3000:]
    messy = b"\xef\xbb\xbf" + b"\r\n\r\n".join(x.encode() for x in lines) + b"\r\n  \r\n"
    root, proc, out = run(tmp_path / "messy", server, messy, *shards)
    assert proc.returncode == 0, out[-3000:]
    assert [(root / s).read_bytes() for s in shards] == [(plain / s).read_bytes() for s in shards]


def test_freeing_a_quarantined_duplicate_splits_its_shard_again(tmp_path, server):
    # line 5 (shard 1) repeats line 1's id; the user renames line 1's id instead: line 5 must reach its shard
    tasks = [{"id": i, "desc": f"Task {n}."} for n, i in enumerate("abcdaf")]
    targets = ("data/shards/00001.jsonl", "data/shards/quarantine.jsonl")
    data = b"".join(json.dumps(t).encode() + b"\n" for t in tasks)
    root, proc, out = run(tmp_path, server, data, *targets, skip=True)
    assert proc.returncode == 0, out[-3000:]
    assert [q["line"] for q in read_jsonl(root / targets[1])] == [5]
    (root / INPUT).write_bytes(data.replace(b'"id": "a", "desc": "Task 0."', b'"id": "z", "desc": "Task 0."'))
    proc = snakemake(root, *targets, configs=("configs/test.yaml", "configs/input.yaml", "configs/bad.yaml"))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert read_jsonl(root / targets[1]) == []
    assert [d["id"] for d in read_jsonl(root / targets[0])] == ["a", "f"]


def test_txt_input_takes_one_description_a_line(tmp_path, server):
    name = "data/descriptions/tasks.txt"
    root, proc, out = run(tmp_path, server, b"Sum a list.\r\n\r\nReverse a string.\n", "data/shards/00000.jsonl",
                          name=name)  # fmt: skip
    assert proc.returncode == 0, out[-3000:]
    shard = read_jsonl(root / "data/shards/00000.jsonl")
    assert [d["desc"] for d in shard] == ["Sum a list.", "Reverse a string."]
    assert all(d["id"].startswith("d") for d in shard)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "holds no descriptions"), (b"\n  \r\n", "holds no descriptions"), (None, "does not exist")],
    ids=["empty", "blank", "missing"],
)
def test_an_unusable_file_is_named(tmp_path, server, data, message):
    _, proc, out = run(tmp_path, server, data)
    assert proc.returncode != 0
    assert f"{INPUT} {message}" in out


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("namegen: {tempreature: 0.3}", "namegen.tempreature (in configs/bad.yaml): unknown key"),
        ("io: {shard_size: many}", "io.shard_size (in configs/bad.yaml)"),
        ("io: {concurrency: 0}", "io.concurrency (in configs/bad.yaml)"),
        ("api: {max_retries: -1}", "api.max_retries (in configs/bad.yaml)"),
        ("api: {timeout: {read: 0}}", "api.timeout.read (in configs/bad.yaml)"),
        ("api: {base_url: 'htp//nowhere'}", "api.base_url (in configs/bad.yaml)"),
        ("namegen: {fim_preset: qwen9}", "namegen.fim_preset (in configs/bad.yaml)"),
        ("api: {headers: {Authorization: 'Bearer ${EVO_SURELY_UNSET}'}}", "${EVO_SURELY_UNSET}, which is not set"),
        (
            "decontamination: {benchmarks: [humaneval, {name: mine, path: data/mine.jsonl, prompt_field: text}]}",
            "decontamination.benchmarks[1].path: benchmark file data/mine.jsonl does not exist",
        ),
        (
            f"decontamination: {{benchmarks: [{{name: mine, path: {INPUT}, solution_field: code}}]}}",
            f"decontamination.benchmarks[0].solution_field: {INPUT}:1 has no field 'code'",
        ),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "zero",
        "negative",
        "zero-timeout",
        "url",
        "fim-preset",
        "unset-env",
        "benchmark-file",
        "benchmark-field",
    ],
)
def test_a_bad_config_is_named_before_any_request(tmp_path, server, bad, message):
    good = json.dumps(GOOD[0]).encode() + b"\n"
    _, proc, out = run(tmp_path, server, good, bad_config=bad)
    assert proc.returncode != 0
    assert message in out
