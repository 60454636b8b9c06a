"""The evaluation's summary.json "official" block: each prediction file re-scored as the
benchmark's official script scores it, with the sections it lacks named."""

from __future__ import annotations

import json

import pytest

from lm_guided_cot.data.records import HOTPOTQA, TWOWIKI, QARecord
from lm_guided_cot.data.schema import record_to_row
from lm_guided_cot.evaluation.results import ExampleResult, SettingResult, write_setting_files
from lm_guided_cot.evaluation.runner import official_scores
from tests.helpers import qa_record


def _wiki_record(rid: str, answer: str) -> QARecord:
    raw = {
        "_id": rid,
        "type": "compositional",
        "question": "Where was A's father educated?",
        "answer": answer,
        "context": [["A", ["A's father was B."]], ["B", ["B studied at C."]]],
        "supporting_facts": [["A", 0], ["B", 0]],
        "evidences": [["A", "father", "B"], ["B", "educated at", "C"]],
    }
    return QARecord.from_row(record_to_row(raw, TWOWIKI, "mem", 0))


def _predictions(tmp_path, records, answers):
    examples = [ExampleResult.scored(r, a) for r, a in zip(records, answers)]
    return write_setting_files(tmp_path, SettingResult("row", examples, 0.0))["predictions"]


def test_2wiki_summary_scores_answers_and_says_facts_and_evidence_are_absent(tmp_path):
    records = [_wiki_record("w1", "C"), _wiki_record("w2", "D")]
    path = _predictions(tmp_path, records, ["C", "nothing"])
    gold = [r.gold_example() for r in records]
    assert gold[0].evidences == [[["A", "father", "B"]], [["B", "educated at", "C"]]]
    block = official_scores(path, gold, TWOWIKI)
    assert block == {
        **{"em": 0.5, "f1": 0.5, "prec": 0.5, "recall": 0.5},
        "absent": ["sp", "evidence"],
    }
    json.dumps(block)  # it goes into summary.json as it is


def test_hotpotqa_summary_keeps_its_numbers(tmp_path):
    records = [qa_record("q1"), qa_record("q2")]  # gold answer "yes"
    path = _predictions(tmp_path, records, ["yes", "no"])
    block = official_scores(path, [r.gold_example() for r in records], HOTPOTQA)
    assert block == {"em": 0.5, "f1": 0.5, "prec": 0.5, "recall": 0.5, "absent": ["sp"]}


def test_summary_block_with_facts_and_evidence_has_the_official_joint(tmp_path):
    record = _wiki_record("w1", "C")
    path = tmp_path / "pred.json"
    path.write_text(
        json.dumps(
            {
                "answer": {"w1": "C"},
                "sp": {"w1": [["a", 0], ["b", 0]]},
                "evidence": {"w1": [["a", "father", "b"]]},
            }
        )
    )
    block = official_scores(path, [record.gold_example()], TWOWIKI)
    # evidence: 1 of 2 gold triples -> P 1, R 0.5; joint EM 1 * 1 * 0
    assert (block["evi_prec"], block["evi_recall"], block["joint_em"]) == (1.0, 0.5, 0.0)
    assert block["joint_f1"] == pytest.approx(2 / 3)
    assert "absent" not in block
