"""Readers: the real samples, both layouts, streaming, hub folders, caching."""

from __future__ import annotations

import json

import pytest

from lm_guided_cot.data import json_stream
from lm_guided_cot.data.readers import read_split
from lm_guided_cot.data.records import FEATURES, HOTPOTQA, TWOWIKI, QARecord
from tests.helpers import hotpot_record, write_json, write_jsonl


def _raw(path):
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    ("relative", "source", "expected"),
    [
        ("hotpotqa/train.jsonl", HOTPOTQA, 300),
        ("hotpotqa/validation.jsonl", HOTPOTQA, 300),
        ("2wikimultihopqa/train.json", TWOWIKI, 200),
        ("2wikimultihopqa/dev.json", TWOWIKI, 100),
    ],
)
def test_shared_samples_read_completely_and_faithfully(
    shared_data, datasets_cache, relative, source, expected
):
    path = shared_data / relative
    result = read_split(path, source, cache_dir=datasets_cache)
    assert len(result) == expected
    assert result.skipped == []
    raw = _raw(path)
    for row, original in zip(result.dataset, raw, strict=True):
        record = QARecord.from_row(row)
        assert record.source == source
        assert record.id == original.get("id", original.get("_id"))
        assert record.question == original["question"]
        assert record.answer == original["answer"]
        assert record.type == original["type"]
        assert record.level == original.get("level", "")
        context = original["context"]
        if isinstance(context, dict):
            pairs = list(zip(context["title"], context["sentences"]))
            facts = list(
                zip(original["supporting_facts"]["title"], original["supporting_facts"]["sent_id"])
            )
        else:
            pairs = [(t, s) for t, s in context]
            facts = [(t, s) for t, s in original["supporting_facts"]]
        assert [(p.title, list(p.sentences)) for p in record.paragraphs] == pairs
        assert [(f.title, f.sent_id) for f in record.supporting_facts] == facts


def test_hotpot_official_list_layout_equals_hf_layout(tmp_path, datasets_cache):
    hf = [hotpot_record(f"q{i}", n_paragraphs=4) for i in range(3)]
    official = [
        {
            "_id": r["id"],
            "question": r["question"],
            "answer": r["answer"],
            "type": r["type"],
            "level": r["level"],
            "context": [[t, s] for t, s in zip(r["context"]["title"], r["context"]["sentences"])],
            "supporting_facts": [
                [t, s]
                for t, s in zip(r["supporting_facts"]["title"], r["supporting_facts"]["sent_id"])
            ],
        }
        for r in hf
    ]
    a = read_split(write_jsonl(tmp_path / "hf.jsonl", hf), HOTPOTQA, cache_dir=datasets_cache)
    b = read_split(
        write_json(tmp_path / "official.json", official), HOTPOTQA, cache_dir=datasets_cache
    )
    assert a.dataset.to_list() == b.dataset.to_list()
    assert a.dataset.features == FEATURES


def test_json_list_is_streamed_across_chunk_boundaries(tmp_path, monkeypatch, datasets_cache):
    monkeypatch.setattr(json_stream, "_CHUNK", 97)  # records straddle many chunk edges
    records = [hotpot_record(f"id-{i}", n_paragraphs=5) for i in range(40)]
    path = write_json(tmp_path / "big.json", records)
    seen = list(json_stream.iter_json_records(path))
    assert [value for _, _, value in seen] == records
    assert [index for index, _, _ in seen] == list(range(40))
    # the reported line is where each record opens (indent=1 puts "[" on line 1)
    lines = path.read_text().splitlines()
    for _, line, _ in seen:
        assert lines[line - 1].strip() == "{"
    assert len(read_split(path, HOTPOTQA, cache_dir=datasets_cache)) == 40


def test_2wiki_aliases_from_records_and_alias_file(tmp_path, datasets_cache):
    base = {
        "type": "compositional",
        "question": "Where was he born?",
        "context": [["A", ["A was born in USA."]]],
        "supporting_facts": [["A", 0]],
    }
    records = [
        {**base, "_id": "w1", "answer": "USA", "answer_aliases": ["United States"]},
        {**base, "_id": "w2", "answer": "USA", "answer_id": "Q30"},
    ]
    alias_file = tmp_path / "id_aliases.json"
    write_jsonl(
        alias_file, [{"Q_id": "Q30", "aliases": ["America", "USA"], "demonyms": ["American"]}]
    )
    result = read_split(
        write_json(tmp_path / "dev.json", records),
        TWOWIKI,
        aliases_path=alias_file,
        cache_dir=datasets_cache,
    )
    first, second = (QARecord.from_row(r) for r in result.dataset)
    assert first.gold_answers == ["USA", "United States"]
    assert second.gold_answers == ["USA", "America", "American"]


def test_local_dataset_folder_goes_through_load_dataset(tmp_path, datasets_cache):
    folder = tmp_path / "my_hotpot"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [hotpot_record(f"t{i}") for i in range(4)])
    write_jsonl(folder / "validation.jsonl", [hotpot_record(f"v{i}") for i in range(2)])
    train = read_split(folder, HOTPOTQA, split="train", cache_dir=datasets_cache)
    validation = read_split(folder, HOTPOTQA, split="validation", cache_dir=datasets_cache)
    assert [r["id"] for r in train.dataset] == ["t0", "t1", "t2", "t3"]
    assert [r["id"] for r in validation.dataset] == ["v0", "v1"]
    assert train.dataset.features == FEATURES
    assert QARecord.from_row(train.dataset[0]).supporting_facts[1].title == "Title 2"


def test_changed_file_is_read_again_not_served_from_cache(tmp_path, datasets_cache):
    path = write_jsonl(tmp_path / "d.jsonl", [hotpot_record("a")])
    assert read_split(path, HOTPOTQA, cache_dir=datasets_cache).dataset["id"] == ["a"]
    write_jsonl(path, [hotpot_record("a"), hotpot_record("b")])
    assert read_split(path, HOTPOTQA, cache_dir=datasets_cache).dataset["id"] == ["a", "b"]


def test_record_round_trips_through_row():
    from lm_guided_cot.data.schema import record_to_row

    row = record_to_row(hotpot_record("r"), HOTPOTQA, "mem", 0)
    assert QARecord.from_row(row).to_row() == row
