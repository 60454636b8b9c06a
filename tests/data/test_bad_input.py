"""Bad input: every error names the file, the record and the field; skip_invalid counts and reports."""

from __future__ import annotations

import json

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
    good = json.dumps({"_id": "x", "question": "q?", "answer": "a", "context": [["T", ["s"]]]})
    path.write_text(f'[\n{good},\n{good},\n{{"_id": "broken" "question": 1}}\n]')
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
