"""Readers: the real samples, both layouts, streaming, hub folders, caching."""

from __future__ import annotations

import json
import re

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
        # 2Wiki's evidence triples are kept, for its official evidence and joint scores
        assert [[e.subject, e.relation, e.object] for e in record.evidences] == original.get(
            "evidences", []
        )


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


def test_2wiki_evidence_aliases_through_evidences_id(tmp_path, datasets_cache):
    base = {
        "type": "compositional",
        "question": "Where was his father born?",
        "context": [["A", ["A's father was B."]], ["B", ["B was born in USA."]]],
        "supporting_facts": [["A", 0], ["B", 0]],
        "answer": "USA",
        "evidences": [["A", "father", "B"], ["B", "place of birth", "USA"]],
    }
    records = [
        {
            **base,
            "_id": "w1",
            "evidences_id": [["Q1", "father", "Q2"], ["Q2", "place of birth", "Q30"]],
        },
        {**base, "_id": "w2", "evidences_id": []},  # as in the official file: no aliases
    ]
    alias_file = write_jsonl(
        tmp_path / "id_aliases.json",
        [
            {"Q_id": "Q2", "aliases": ["Bee"], "demonyms": []},
            {"Q_id": "Q30", "aliases": ["America"], "demonyms": ["American"]},
        ],
    )
    path = write_json(tmp_path / "dev.json", records)
    result = read_split(path, TWOWIKI, aliases_path=alias_file, cache_dir=datasets_cache)
    first, second = (QARecord.from_row(r) for r in result.dataset)
    assert first.evidences[0].subject_aliases == () and first.evidences[0].object_aliases == (
        "Bee",
    )
    assert first.evidences[1].subject_aliases == ("Bee",)
    assert first.evidences[1].object_aliases == ("America", "American")
    assert all(not e.subject_aliases and not e.object_aliases for e in second.evidences)
    # without an alias file, evidences_id is not read
    plain = read_split(path, TWOWIKI, cache_dir=datasets_cache)
    assert not QARecord.from_row(plain.dataset[0]).evidences[1].object_aliases


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"evidences": [["A", "father"]]}, "field 'evidences[0]': expected a [subject, relation"),
        ({"evidences": [["A", "father", 3]]}, "field 'evidences[0][2]': expected a string"),
        (
            {"evidences": [], "evidences_id": [["Q1", "father", "Q2"]]},
            "field 'evidences_id': 1 id triples for 0 evidences",
        ),
        ({"evidences_id": [["Q1", "mother", "Q2"]]}, "'mother' is not the evidence's 'father'"),
    ],
)
def test_bad_2wiki_evidence_is_named(tmp_path, datasets_cache, changes, message):
    from lm_guided_cot.data.errors import DataFormatError

    record = {
        "_id": "w1",
        "type": "compositional",
        "question": "Who?",
        "answer": "B",
        "context": [["A", ["A's father was B."]]],
        "supporting_facts": [["A", 0]],
        "evidences": [["A", "father", "B"]],
        **changes,
    }
    alias_file = write_jsonl(tmp_path / "id_aliases.json", [{"Q_id": "Q2", "aliases": ["Bee"]}])
    with pytest.raises(DataFormatError, match=re.escape(message)):
        read_split(
            write_json(tmp_path / "dev.json", [record]),
            TWOWIKI,
            aliases_path=alias_file,
            cache_dir=datasets_cache,
        )


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
