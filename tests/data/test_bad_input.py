"""Bad input: every error names the file, the record and the field; skip_invalid counts and reports."""

from __future__ import annotations

import json
import re

import pytest

from lm_guided_cot.data.errors import DataFormatError
from lm_guided_cot.data.readers import read_split
from lm_guided_cot.data.records import HOTPOTQA, TWOWIKI
from tests.helpers import hotpot_record, write_json, write_jsonl


def _without(record: dict, key: str) -> dict:
    return {k: v for k, v in record.items() if k != key}


def _hf_record_cases():
    good = hotpot_record("bad")
    return [
        ("missing question", _without(good, "question"), "question", "missing"),
        ("missing answer", _without(good, "answer"), "answer", "missing"),
        ("missing id", _without(good, "id"), "id", "missing"),
        ("missing context", _without(good, "context"), "context", "missing"),
        ("answer is a number", {**good, "answer": 42}, "answer", "expected a string, found int"),
        ("question is null", {**good, "question": None}, "question", "found null"),
        (
            "sentence is a number",
            {**good, "context": {"title": ["Title 0"], "sentences": [["ok", 7]]}},
            "context.sentences[0][1]",
            "expected a string",
        ),
        (
            "titles and sentence lists differ in length",
            {**good, "context": {"title": ["A", "B"], "sentences": [["x"]]}},
            "context",
            "2 titles but 1 sentence lists",
        ),
        (
            "sent_id is a string",
            {**good, "supporting_facts": {"title": ["Title 0"], "sent_id": ["0"]}},
            "supporting_facts[0].sent_id",
            "expected an integer, found str",
        ),
        (
            "sent_id past int32",  # the Arrow column is int32; the streaming scorer checks it too
            {**good, "supporting_facts": {"title": ["Title 0"], "sent_id": [2**31]}},
            "supporting_facts[0].sent_id",
            "expected an integer up to 2147483647, found 2147483648",
        ),
        (
            "supporting fact names a missing paragraph",
            {**good, "supporting_facts": {"title": ["Title 0", "No Such Page"], "sent_id": [0, 1]}},
            "supporting_facts[1]",
            "'No Such Page' is not among the record's paragraph titles",
        ),
    ]


@pytest.mark.parametrize(
    ("record", "field", "problem"),
    [case[1:] for case in _hf_record_cases()],
    ids=[case[0] for case in _hf_record_cases()],
)
def test_bad_record_in_jsonl_names_file_record_line_and_field(
    tmp_path, datasets_cache, record, field, problem
):
    path = write_jsonl(
        tmp_path / "train.jsonl", [hotpot_record("ok0"), hotpot_record("ok1"), record]
    )
    with pytest.raises(DataFormatError) as caught:
        read_split(path, HOTPOTQA, cache_dir=datasets_cache)
    err = caught.value
    message = str(err)
    assert str(path) in message
    assert "record 2 (line 3)" in message
    assert f"field '{field}'" in message
    assert problem in message
    assert (err.record, err.line, err.field) == (2, 3, field)


def test_malformed_json_line_names_file_record_and_line(tmp_path, datasets_cache):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(hotpot_record("a")) + "\n\n" + '{"id": "b", "question": \n')
    with pytest.raises(DataFormatError, match=r"train\.jsonl: record 1 \(line 3\): not valid JSON"):
        read_split(path, HOTPOTQA, cache_dir=datasets_cache)


def test_malformed_json_list_names_file_and_record(tmp_path, datasets_cache):
    path = tmp_path / "dev.json"
    good = {"_id": "x", "question": "q?", "answer": "a", "context": [["T", ["s"]]]}
    other = json.dumps({**good, "_id": "y"})
    path.write_text(f'[\n{json.dumps(good)},\n{other},\n{{"_id": "broken" "question": 1}}\n]')
    with pytest.raises(DataFormatError, match=r"dev\.json: record 2 \(line 4\): not valid JSON"):
        read_split(path, TWOWIKI, cache_dir=datasets_cache)


def test_official_list_layout_bad_pair_names_field(tmp_path, datasets_cache):
    records = [
        {
            "_id": "x",
            "question": "q?",
            "answer": "a",
            "context": [["T", ["s"]]],
            "supporting_facts": [["T", 0]],
        },
        {"_id": "y", "question": "q?", "answer": "a", "context": [["T", "not a list"]]},
    ]
    path = write_json(tmp_path / "dev.json", records)
    with pytest.raises(DataFormatError) as caught:
        read_split(path, TWOWIKI, cache_dir=datasets_cache)
    assert str(path) in str(caught.value)
    assert "record 1" in str(caught.value)
    assert "field 'context[0][1]'" in str(caught.value)
    assert "expected a list, found str" in str(caught.value)


def test_record_that_is_not_an_object(tmp_path, datasets_cache):
    path = write_json(tmp_path / "dev.json", [["just", "a", "list"]])
    with pytest.raises(
        DataFormatError, match=r"dev\.json: record 0 \(line 2\): expected a JSON object, found list"
    ):
        read_split(path, TWOWIKI, cache_dir=datasets_cache)


def test_bad_record_in_hub_folder_names_dataset_split_record_and_field(tmp_path, datasets_cache):
    folder = tmp_path / "hub_like"
    folder.mkdir()
    bad = hotpot_record("b", supporting_facts={"title": ["Elsewhere"], "sent_id": [0]})
    write_jsonl(folder / "train.jsonl", [hotpot_record("a"), bad])
    with pytest.raises(DataFormatError) as caught:
        read_split(folder, HOTPOTQA, split="train", cache_dir=datasets_cache)
    message = str(caught.value)
    assert f"{folder}[train]" in message
    assert "record 1" in message
    assert "field 'supporting_facts[0]'" in message


def test_skip_invalid_counts_and_reports_and_keeps_the_rest(tmp_path, datasets_cache, caplog):
    records = [
        hotpot_record("a"),
        _without(hotpot_record("b"), "answer"),
        hotpot_record("c"),
        hotpot_record("d", supporting_facts={"title": ["Nowhere"], "sent_id": [0]}),
    ]
    path = write_jsonl(tmp_path / "train.jsonl", records)
    with caplog.at_level("WARNING"):
        result = read_split(path, HOTPOTQA, skip_invalid=True, cache_dir=datasets_cache)
    assert result.dataset["id"] == ["a", "c"]
    assert len(result.skipped) == 2
    assert "record 1 (line 2): field 'answer': missing" in result.skipped[0]
    assert "record 3 (line 4): field 'supporting_facts[0]'" in result.skipped[1]
    assert "skipped 2 invalid record(s) of 4" in caplog.text
    # the report survives the Arrow cache: a second read skips the same, reports the same
    again = read_split(path, HOTPOTQA, skip_invalid=True, cache_dir=datasets_cache)
    assert again.skipped == result.skipped
    assert "_error" not in again.dataset.column_names


# ---- bad files: each names the file (and the line or byte where there is one) ----------------


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("train.jsonl", "", "no records: the file is empty"),
        ("train.jsonl", "  \n\n\t \n", "no records: the file holds only white space"),
        ("dev.json", " \n", "no records: the file holds only white space"),
        ("dev.json", "[\n]\n", "no records: the file is an empty JSON list"),
    ],
    ids=["empty", "blank-lines", "blank-json", "empty-list"],
)
def test_file_without_records_names_the_file(tmp_path, datasets_cache, name, text, problem):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataFormatError) as caught:
        read_split(path, TWOWIKI, cache_dir=datasets_cache)
    assert str(caught.value) == f"{path}: {problem}"


def test_empty_gold_split_is_not_called_train(tmp_path, datasets_cache):
    path = tmp_path / "validation.jsonl"
    path.write_text("")
    with pytest.raises(DataFormatError, match=r"validation\.jsonl: no records") as caught:
        read_split(path, HOTPOTQA, split="validation", cache_dir=datasets_cache)
    assert "train" not in str(caught.value)


def test_bytes_that_are_not_utf8_give_line_and_byte_offset(tmp_path, datasets_cache):
    path = tmp_path / "train.jsonl"
    first = json.dumps(hotpot_record("a")) + "\n"
    second = json.dumps(hotpot_record("caf\u00e9")) + "\n"  # é: two valid UTF-8 bytes
    prefix = (first + second).encode("utf-8") + b'{"id": "'
    path.write_bytes(prefix + b'\xe9t\xe9"}\n')  # Latin-1 é
    with pytest.raises(DataFormatError) as caught:
        read_split(path, HOTPOTQA, cache_dir=datasets_cache)
    message = str(caught.value)
    assert message.startswith(f"{path}: line 3: not UTF-8 text: byte 0xe9")
    assert f"at byte offset {len(prefix)}" in message
    assert caught.value.line == 3


def test_bytes_that_are_not_utf8_deep_in_a_json_list(tmp_path, monkeypatch, datasets_cache):
    from lm_guided_cot.data import json_stream

    monkeypatch.setattr(json_stream, "_CHUNK", 64)  # the bad byte lies chunks away from the start
    records = [{"_id": f"x{i}", "question": "q?", "answer": "a", "context": []} for i in range(9)]
    text = json.dumps(records, indent=1).encode("utf-8")
    offset = text.index(b'"x7"') + 1
    path = tmp_path / "dev.json"
    path.write_bytes(text[:offset] + b"\xff" + text[offset + 1 :])
    with pytest.raises(DataFormatError) as caught:
        read_split(path, TWOWIKI, cache_dir=datasets_cache)
    line = text[:offset].count(b"\n") + 1
    assert str(caught.value).startswith(
        f"{path}: line {line}: not UTF-8 text: byte 0xff (invalid start byte) at byte offset {offset}"
    )


def test_utf8_character_cut_at_the_end(tmp_path, datasets_cache):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"id": "\xc3')
    with pytest.raises(DataFormatError) as caught:
        read_split(path, HOTPOTQA, cache_dir=datasets_cache)
    assert str(caught.value).startswith(f"{path}: line 1: not UTF-8 text: a character cut off")
    assert "byte offset 8" in str(caught.value)


def test_a_leading_byte_order_mark_is_accepted(tmp_path, datasets_cache):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(hotpot_record("a")).encode() + b"\n")
    assert read_split(path, HOTPOTQA, cache_dir=datasets_cache).dataset["id"] == ["a"]


def test_json_list_cut_off_mid_record(tmp_path, datasets_cache):
    records = [{"_id": f"x{i}", "question": "q?", "answer": "a", "context": []} for i in range(3)]
    text = json.dumps(records, indent=1)
    path = tmp_path / "dev.json"
    path.write_text(text[: text.index('"x2"') + 10])
    with pytest.raises(DataFormatError) as caught:
        read_split(path, TWOWIKI, cache_dir=datasets_cache)
    message = str(caught.value)
    assert message.startswith(f"{path}: record 2 (line ")
    assert "the file ends inside this record: is it cut off?" in message


def test_json_list_cut_off_between_records(tmp_path, datasets_cache):
    good = json.dumps({"_id": "x", "question": "q?", "answer": "a", "context": [["T", ["s"]]]})
    path = tmp_path / "dev.json"
    path.write_text(f"[\n{good},\n")
    with pytest.raises(DataFormatError, match=r"dev\.json: record 1 \(line 3\): .*never closes"):
        read_split(path, TWOWIKI, cache_dir=datasets_cache)


def test_jsonl_whose_last_line_is_cut(tmp_path, datasets_cache):
    path = tmp_path / "train.jsonl"
    lines = [json.dumps(hotpot_record(rid)) for rid in ("a", "b")]
    path.write_text(lines[0] + "\n" + lines[1][:80])
    with pytest.raises(DataFormatError) as caught:
        read_split(path, HOTPOTQA, cache_dir=datasets_cache)
    message = str(caught.value)
    assert message.startswith(f"{path}: record 1 (line 2): not valid JSON")
    assert "the file ends inside this record: is it cut off?" in message


@pytest.mark.parametrize("name", ["train.jsonl", "no_such_folder", "a/b/c"])
def test_missing_path_names_it(tmp_path, datasets_cache, name):
    path = tmp_path / name
    with pytest.raises(DataFormatError) as caught:
        read_split(path, HOTPOTQA, cache_dir=datasets_cache)
    assert str(caught.value) == f"{path}: no such file or folder"


def test_missing_relative_file_is_not_looked_up_on_the_hub(tmp_path, datasets_cache, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataFormatError, match=r"^data/train\.jsonl: no such file or folder$"):
        read_split("data/train.jsonl", HOTPOTQA, cache_dir=datasets_cache)


def test_folder_without_data_files_names_it(tmp_path, datasets_cache):
    folder = tmp_path / "not_data"
    folder.mkdir()
    (folder / "notes.md").write_text("nothing to read\n")
    with pytest.raises(DataFormatError) as caught:
        read_split(folder, HOTPOTQA, split="train", cache_dir=datasets_cache)
    message = str(caught.value)
    assert message.startswith(f"{folder}[train]: cannot be read as a dataset folder")
    assert "name a .json or .jsonl file" in message


def test_dataset_folder_without_the_split_names_folder_and_split(tmp_path, datasets_cache):
    folder = tmp_path / "hub_like"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [hotpot_record("a")])
    with pytest.raises(DataFormatError) as caught:
        read_split(folder, HOTPOTQA, split="validation", cache_dir=datasets_cache)
    message = str(caught.value)
    assert message.startswith(f"{folder}[validation]: cannot be read as a dataset folder")
    assert "validation" in message and "train" in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "no records: the file is empty"),
        (b'{"id": "a"}\n\xff\n', "line 2: not UTF-8 text: byte 0xff"),
    ],
    ids=["empty", "not-utf8"],
)
def test_bad_file_in_dataset_folder_names_the_file(tmp_path, datasets_cache, content, problem):
    folder = tmp_path / "hub_like"
    folder.mkdir()
    (folder / "train.jsonl").write_bytes(content)
    with pytest.raises(DataFormatError) as caught:
        read_split(folder, HOTPOTQA, split="train", cache_dir=datasets_cache)
    assert str(caught.value).startswith(f"{folder / 'train.jsonl'}: {problem}")


def test_missing_or_folder_alias_file_names_it(tmp_path, datasets_cache):
    path = write_json(
        tmp_path / "dev.json", [{"_id": "x", "question": "q?", "answer": "a", "context": []}]
    )
    with pytest.raises(DataFormatError, match=r"id_aliases\.json: no such file$"):
        read_split(path, TWOWIKI, aliases_path=tmp_path / "id_aliases.json")
    with pytest.raises(
        DataFormatError, match=f"^{re.escape(str(tmp_path))}: a folder, not a file$"
    ):
        read_split(path, TWOWIKI, aliases_path=tmp_path)


def test_name_neither_here_nor_on_the_hub(tmp_path, datasets_cache, monkeypatch):
    monkeypatch.chdir(tmp_path)  # HF_DATASETS_OFFLINE (conftest): the hub answers at once
    with pytest.raises(DataFormatError) as caught:
        read_split("someone/no_such_dataset", HOTPOTQA, cache_dir=datasets_cache)
    assert str(caught.value).startswith(
        "someone/no_such_dataset: no such file or folder, and no hub dataset of that name"
    )


def test_skip_invalid_with_every_record_invalid_stops(tmp_path, datasets_cache):
    records = [_without(hotpot_record("a"), "answer"), _without(hotpot_record("b"), "question")]
    path = write_jsonl(tmp_path / "train.jsonl", records)
    with pytest.raises(DataFormatError) as caught:
        read_split(path, HOTPOTQA, skip_invalid=True, cache_dir=datasets_cache)
    message = str(caught.value)
    assert message.startswith(f"{path}: all 2 records are invalid, none is left to use; first: ")
    assert "record 0 (line 1): field 'answer': missing" in message


def test_pretty_printed_record_in_json_lines_says_one_record_a_line(tmp_path, datasets_cache):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(hotpot_record("a"), indent=1) + "\n")
    with pytest.raises(DataFormatError) as caught:
        read_split(path, HOTPOTQA, cache_dir=datasets_cache)
    message = str(caught.value)
    assert message.startswith(f"{path}: record 0 (line 1): not valid JSON")
    assert "the line ends inside the record (JSON lines: one whole record a line)" in message


def test_a_repeated_id_names_both_records_and_lines(tmp_path, datasets_cache):
    records = [hotpot_record("q1"), hotpot_record("q2"), hotpot_record("q1")]
    path = write_jsonl(tmp_path / "train.jsonl", records)
    with pytest.raises(DataFormatError) as caught:
        read_split(path, HOTPOTQA, cache_dir=datasets_cache)
    assert str(caught.value) == (
        f"{path}: record 2 (line 3): field 'id': duplicate id 'q1': record 0 (line 1) has it "
        "too; ids must be unique within a split"
    )
    kept = read_split(path, HOTPOTQA, cache_dir=datasets_cache, skip_invalid=True)
    assert kept.dataset["id"] == ["q1", "q2"] and "duplicate id 'q1'" in kept.skipped[0]


def test_a_repeated_id_in_a_dataset_folder_is_named_too(tmp_path, datasets_cache):
    folder = tmp_path / "my_hotpot"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [hotpot_record("t0"), hotpot_record("t0")])
    with pytest.raises(DataFormatError, match=r"record 1: field 'id': duplicate id 't0': record 0"):
        read_split(folder, HOTPOTQA, split="train", cache_dir=datasets_cache)
    kept = read_split(folder, HOTPOTQA, split="train", cache_dir=datasets_cache, skip_invalid=True)
    assert kept.dataset["id"] == ["t0"] and len(kept.skipped) == 1
