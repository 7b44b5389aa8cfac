import hashlib
import json

import pytest

from evoselfcode.config import Config
from evoselfcode.datagen.inputs import (
    InputError,
    _loads,
    cached_index,
    index_descriptions,
    index_input,
    quarantine_counts,
    read_descriptions,
    read_shard,
)


def jsonl(tmp_path, lines, name="in.jsonl", raw=False):
    path = tmp_path / name
    data = b"".join(line if raw else (line + "\n").encode() for line in lines)
    path.write_bytes(data)
    return path


def desc_line(i, text=None):
    return json.dumps({"id": f"t{i}", "desc": text or f"task number {i}"})


def shards(index, max_chars=100):
    return [[d.id for d in read_shard(index, s, max_chars=max_chars)] for s in index.shard_ids]


def split(path, size, max_chars=100):
    index = index_descriptions(path, shard_size=size, max_chars=max_chars)
    if index.bad:
        raise index.error()
    return index


def test_shards_follow_non_blank_line_positions(tmp_path):
    path = jsonl(tmp_path, [desc_line(i) for i in range(5)] + ["", "  "] + [desc_line(i) for i in range(5, 7)])
    index = split(path, 3)
    assert index.count == 7 and index.shard_ids == ["00000", "00001", "00002"]
    assert shards(index) == [["t0", "t1", "t2"], ["t3", "t4", "t5"], ["t6"]]


def test_appending_changes_only_the_last_shard_and_adds_new_ones(tmp_path):
    path = jsonl(tmp_path, [desc_line(i) for i in range(7)])
    before = split(path, 3)
    with open(path, "a") as fh:
        fh.write("\n" + "\n".join(desc_line(i) for i in range(7, 10)) + "\n")
    after = split(path, 3)
    assert [s.digest for s in after.spans[:2]] == [s.digest for s in before.spans[:2]]
    assert after.spans[2].digest != before.spans[2].digest
    assert shards(after) == [["t0", "t1", "t2"], ["t3", "t4", "t5"], ["t6", "t7", "t8"], ["t9"]]


def test_the_index_is_cached_until_the_file_changes(tmp_path):
    path = jsonl(tmp_path, [desc_line(i) for i in range(4)])
    first = cached_index(path, shard_size=2, max_chars=100, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert cached_index(path, shard_size=2, max_chars=100, cache_dir=tmp_path / "cache") == first
    with open(path, "a") as fh:
        fh.write(desc_line(4) + "\n")
    assert cached_index(path, shard_size=2, max_chars=100, cache_dir=tmp_path / "cache").count == 5


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b'["a list"]', "not_an_object"),
        (b'{"id": "x"}', "missing_desc"),
        (b'{"desc": 3}', "desc_not_string"),
        (b'{"desc": "   "}', "empty_desc"),
        (b'{"desc": "ok", "id": true}', "bad_id"),
        (b'{"desc": "caf\xe9"}', "invalid_utf8"),
        (b'{"desc": "sort \\ud800 a list"}', "lone_surrogate"),  # valid JSON, but no character: cannot be sent
        (b'{"desc": "sort a list", "id": "x\\udfff"}', "lone_surrogate"),
        (b'{"desc": "sort\\u0000 a list"}', "nul_character"),
        (('{"desc": "' + "x" * 200 + '"}').encode(), "desc_too_long"),
    ],
)
def test_bad_lines_name_the_file_line_and_reason(tmp_path, line, reason):
    path = jsonl(tmp_path, [(desc_line(0) + "\n").encode(), line + b"\n"], raw=True)
    with pytest.raises(InputError) as err:
        split(path, 10)
    assert f"{path}:2: {reason}" in str(err.value)
    assert "io.on_bad_line: skip" in str(err.value)


def test_skip_quarantines_bad_lines_and_keeps_shard_positions(tmp_path):
    path = jsonl(tmp_path, [desc_line(0), "{oops", desc_line(2), desc_line(0, "again")])
    index = index_descriptions(path, shard_size=2, max_chars=100)
    assert shards(index) == [["t0"], ["t2"]]
    assert [(b.line, b.reason) for b in index.quarantine()] == [(2, "invalid_json"), (4, "duplicate_id")]


def test_index_input_stops_at_a_bad_line_unless_told_to_skip(tmp_path):
    path = jsonl(tmp_path, [desc_line(0), "{oops", desc_line(2)])
    cfg = Config.model_validate({"io": {"input_desc_path": str(path), "shard_size": 2}})
    with pytest.raises(InputError, match=f"{path}:2: invalid_json"):
        index_input(cfg, cache_dir=tmp_path / "cache")
    skip = cfg.model_copy(update={"io": cfg.io.model_copy(update={"on_bad_line": "skip"})})
    index = index_input(skip, cache_dir=tmp_path / "cache")
    assert shards(index) == [["t0"], ["t2"]] and [b.line for b in index.quarantine()] == [2]


def test_duplicate_descriptions_are_flagged(tmp_path):
    path = jsonl(tmp_path, [desc_line(0, "same"), desc_line(1, "same")])
    good, bad = read_descriptions(path, max_chars=100)
    assert [d.id for _, d in good] == ["t0"]
    assert bad[0].reason == "duplicate_desc" and "line 1" in bad[0].detail


@pytest.mark.parametrize("name", ["in.txt", "in.jsonl"])
def test_a_repeated_description_without_an_id_is_set_aside_not_an_error(tmp_path, name):
    lines = ["sort a list", "reverse a string", "sort a list", "sort a list"]
    if name.endswith(".jsonl"):
        lines = [json.dumps({"desc": text}) for text in lines]
    cfg = Config.model_validate({"io": {"input_desc_path": str(jsonl(tmp_path, lines, name)), "shard_size": 2}})
    index = index_input(cfg, cache_dir=tmp_path / "cache")  # on_bad_line: error, and no error
    assert not index.bad and [len(ids) for ids in shards(index)] == [2, 0]
    records = [q.model_dump() for q in index.quarantine()]
    assert [(r["line"], r["reason"]) for r in records] == [(3, "repeated_desc"), (4, "repeated_desc")]
    assert "same description as line 1" in records[0]["detail"]
    assert quarantine_counts(records) == {"quarantined_input_lines": 0, "repeated_descriptions": 2}
    cached = index_input(cfg, cache_dir=tmp_path / "cache")
    assert cached.repeats == index.repeats and cached.bad_digest() == index.bad_digest()


def test_ids_the_user_wrote_must_still_be_unique(tmp_path):
    path = jsonl(tmp_path, [desc_line(0, "sort a list"), desc_line(0, "reverse a string"), '{"desc": "sort a list"}'])
    index = index_descriptions(path, shard_size=10, max_chars=100)
    assert [(b.line, b.reason) for b in index.bad] == [(2, "duplicate_id")]
    assert [(b.line, b.reason) for b in index.repeats] == [(3, "repeated_desc")]


def test_bom_crlf_and_txt_input(tmp_path):
    path = jsonl(
        tmp_path, [b"\xef\xbb\xbf" + desc_line(0).encode() + b"\r\n", desc_line(1).encode() + b"\r\n"], raw=True
    )
    good, bad = read_descriptions(path, max_chars=100)
    assert [d.desc for _, d in good] == ["task number 0", "task number 1"] and not bad
    txt = tmp_path / "in.txt"
    txt.write_text("Sort a list.\r\n\r\nReverse a string.\n")
    good, _ = read_descriptions(txt, max_chars=100)
    assert [d.desc for _, d in good] == ["Sort a list.", "Reverse a string."]
    assert all(d.id.startswith("d") for _, d in good)


def test_a_bom_inside_a_concatenated_file_is_not_part_of_a_description(tmp_path):
    # `cat a.txt b.txt` where b.txt was saved with a BOM: an invisible U+FEFF would lead the description
    txt = tmp_path / "in.txt"
    txt.write_bytes(b"\xef\xbb\xbfSort a list.\r\n\xef\xbb\xbfReverse a string.\r\n")
    good, bad = read_descriptions(txt, max_chars=100)
    assert [d.desc for _, d in good] == ["Sort a list.", "Reverse a string."] and not bad
    path = jsonl(tmp_path, [desc_line(0).encode() + b"\n", b"\xef\xbb\xbf" + desc_line(1).encode() + b"\n"], raw=True)
    index = split(path, 1)
    assert shards(index) == [["t0"], ["t1"]]


def test_a_utf16_txt_file_is_an_error_not_descriptions_full_of_nul(tmp_path):
    # Windows tools write UTF-16; without a BOM every line is valid UTF-8, with a NUL after each character
    txt = tmp_path / "in.txt"
    for text in ("Sort a list.\nReverse a string.\n", "Sort a list.\r\nReverse a string.\r\n"):  # Windows: CRLF
        txt.write_bytes(text.encode("utf-16-le"))
        good, bad = read_descriptions(txt, max_chars=100)
        assert not good and {b.reason for b in bad} == {"nul_character"}
        assert "UTF-16" in bad[0].detail
    jsonl_utf16 = tmp_path / "in.jsonl"
    jsonl_utf16.write_bytes('{"desc": "Sort a list."}\n'.encode("utf-16-le"))
    with pytest.raises(InputError, match="nul_character") as err:
        split(jsonl_utf16, 10)
    assert ".txt" not in str(err.value)  # naming it .txt would not help


def test_a_txt_file_with_cr_line_ends_is_not_one_description(tmp_path):
    # old Mac line ends (Excel's "CSV (Macintosh)"): no LF, so the whole file would be one line
    txt = tmp_path / "in.txt"
    txt.write_bytes(b"Sort a list.\rReverse a string.\rCount the words.\r")
    good, bad = read_descriptions(txt, max_chars=100)
    assert not good and [(b.line, b.reason) for b in bad] == [(1, "cr_line_ends")]
    cr_jsonl = jsonl(tmp_path, [b'{"desc": "Sort a list."}\r{"desc": "Reverse a string."}\r'], raw=True)
    with pytest.raises(InputError, match="cr_line_ends") as err:
        split(cr_jsonl, 10)
    assert ".txt" not in str(err.value)
    spaced = jsonl(tmp_path, [b'{"desc": "Sort a list.",\r "id": "a"}\n'], raw=True)  # a CR between tokens is JSON
    assert [d.id for _, d in read_descriptions(spaced, max_chars=100)[0]] == ["a"]


def test_empty_and_missing_files(tmp_path):
    empty = jsonl(tmp_path, ["", "   "])
    with pytest.raises(InputError, match="no descriptions"):
        read_descriptions(empty, max_chars=100)
    with pytest.raises(InputError, match="does not exist"):
        cached_index(tmp_path / "missing.jsonl", shard_size=2, max_chars=100, cache_dir=tmp_path)


def test_sample_descriptions_are_valid_and_varied():
    good, bad = read_descriptions("data/descriptions/sample.jsonl", max_chars=4000)
    assert not bad and len(good) >= 40
    prefixes = {d.id.split("-")[0] for _, d in good}
    assert {"sort", "graph", "str", "dp", "math", "ds"} <= prefixes


@pytest.mark.parametrize(
    "text",
    ['{"desc": "a"}', '  {"desc": "a"}', '{"desc": "a"}  ', '{"desc": "a"} {"desc": "b"}', '{"desc": "a"', "",
     '{"desc": NaN}', '"just a string"', '{"desc": "\\ud800"}', "\t[1, 2]"],
)  # fmt: skip
def test_line_parsing_matches_json_loads_in_value_and_error(text):
    def outcome(parse):
        try:
            return "ok", parse(text)
        except json.JSONDecodeError as exc:
            return "error", exc.msg, exc.colno

    assert outcome(_loads) == outcome(json.loads)


def test_an_unknown_shard_is_a_clear_error(tmp_path):
    index = index_descriptions(jsonl(tmp_path, [desc_line(i) for i in range(5)]), shard_size=2, max_chars=100)
    assert index.span("00002").start_line == 5
    with pytest.raises(InputError, match=r"has no shard '00003'.*00000\.\.00002"):
        index.span("00003")


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        (b'{"desc": "unclosed', "Unterminated string starting at column 10;"),
        (b'{"desc": "a" "b"}', "Expecting ',' delimiter at column 14;"),
    ],
)
def test_a_broken_json_line_says_where_once(tmp_path, line, detail):
    path = jsonl(tmp_path, [line + b"\n"], raw=True)
    with pytest.raises(InputError) as err:
        split(path, 10)
    assert detail in str(err.value) and " at at " not in str(err.value)


def test_a_shard_whose_good_lines_change_gets_a_new_digest(tmp_path):
    # line 3 (shard 1) repeats line 1's id and is quarantined; renaming line 1's id frees it: shard 1 must be
    # split again, or line 3 is in neither its shard nor the quarantine
    path = jsonl(tmp_path, [desc_line(0, "sort a list"), desc_line(1), desc_line(0, "reverse a string")])
    before = index_descriptions(path, shard_size=2, max_chars=100)
    jsonl(tmp_path, [desc_line(9, "sort a list"), desc_line(1), desc_line(0, "reverse a string")])
    after = index_descriptions(path, shard_size=2, max_chars=100)
    assert shards(before)[1] == [] and shards(after)[1] == ["t0"] and not after.bad
    assert after.spans[1].digest != before.spans[1].digest


def test_a_repeat_within_its_own_shard_does_not_change_the_digest(tmp_path):
    # freeing it means editing the shard's own lines, which the digest holds: no need to split it again on upgrade
    lines = [desc_line(0, "sort a list"), desc_line(0, "reverse a string")]
    one = index_descriptions(jsonl(tmp_path, lines), shard_size=2, max_chars=100)
    assert [b.reason for b in one.bad] == ["duplicate_id"]
    plain = hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()[:16]
    assert one.spans[0].digest == plain  # the digest as it was before repeats were marked


def test_a_line_newly_bad_changes_its_shards_digest(tmp_path):
    # a NUL line was a good description before nul_character: its shard must be split again, or the description
    # would stay in the shard's outputs and also be quarantined
    lines = [desc_line(0, "sort a list"), '{"desc": "reverse\\u0000 a string", "id": "t1"}']
    index = index_descriptions(jsonl(tmp_path, lines), shard_size=2, max_chars=100)
    assert [b.reason for b in index.bad] == ["nul_character"]
    assert index.spans[0].digest != hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()[:16]


def test_plain_text_in_a_file_not_named_txt_is_told_to_be(tmp_path):
    path = tmp_path / "tasks.text"
    path.write_text("Sort a list.\nReverse a string.\n")
    with pytest.raises(InputError, match=r"tasks\.text:1: invalid_json(.|\n)*name the file \.txt"):
        split(path, 10)


def test_a_compressed_file_is_named_as_such(tmp_path):
    import gzip

    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress((desc_line(0) + "\n").encode()))
    with pytest.raises(InputError, match=r"in\.jsonl\.gz is gzip-compressed: decompress it"):
        cached_index(path, shard_size=2, max_chars=100, cache_dir=tmp_path / "cache")
