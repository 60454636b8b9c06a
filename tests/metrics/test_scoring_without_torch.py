"""``lmcot score``'s light path: a gold file scored without torch, Lightning or ``datasets``,
with the same result and the same errors as through ``read_split``'s Arrow dataset."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lm_guided_cot.data.official_scoring import score_prediction_file
from lm_guided_cot.data.readers import default_source_for, read_split
from lm_guided_cot.data.records import QARecord
from lm_guided_cot.metrics.official import official_report, read_prediction_file
from tests.helpers import hotpot_record, write_jsonl

HEAVY = ("torch", "torchmetrics", "lightning", "datasets", "transformers", "litellm")


def test_the_scoring_modules_import_nothing_heavy():
    code = (
        "import sys\n"
        "import lm_guided_cot.metrics, lm_guided_cot.metrics.scores\n"
        "import lm_guided_cot.metrics.official, lm_guided_cot.data.official_scoring\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _through_arrow(predictions, gold, source, aliases=None, split="validation", percent=False):
    """What ``lmcot score`` computed before the light path: the gold through ``read_split``."""
    predicted = read_prediction_file(predictions)
    records = read_split(gold, source, split=split, aliases_path=aliases)
    examples = [QARecord.from_row(row).gold_example() for row in records.dataset]
    report = official_report(predicted, examples, source, predictions, records.origin)
    return report.as_dict(percent=percent)


def _outcome(score, *args, **kwargs):
    """The result, or the error's type and message."""
    try:
        return score(*args, **kwargs)
    except Exception as err:
        return type(err), str(err)


def _assert_same(*args, **kwargs):
    light = _outcome(score_prediction_file, *args, **kwargs)
    source = kwargs.pop("source", None) or default_source_for(args[1])
    assert light == _outcome(_through_arrow, *args, source=source, **kwargs)
    return light


@pytest.fixture(autouse=True)
def _own_datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))


def test_hotpotqa_file_scores_the_same(shared_data, tmp_path):
    gold = shared_data / "hotpotqa/validation.jsonl"
    rows = [json.loads(line) for line in gold.read_text().splitlines()]
    half = rows[:150]
    facts = {r["id"]: [list(p) for p in zip(*r["supporting_facts"].values())] for r in half}
    predictions = {"answer": {r["id"]: r["answer"] for r in half}, "sp": facts}
    predictions["answer"]["not-a-gold-id"] = "x"
    predictions["sp"][rows[0]["id"]].append(["Beta", "0"])  # malformed: reported
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(predictions))
    result = _assert_same(str(path), str(gold))
    assert result["sp_em"] == pytest.approx(149 / 300) and result["unknown"] == {"answer": 1}
    # a folder goes through read_split, as before
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder/validation.jsonl").write_text(gold.read_text())
    assert _assert_same(str(path), str(tmp_path / "folder")) == result


def test_2wiki_file_with_aliases_scores_the_same(shared_data, tmp_path):
    rows = json.loads((shared_data / "2wikimultihopqa/dev.json").read_text())
    aliases = []
    for i, dp in enumerate(rows):
        dp["answer_id"] = f"QA{i}"
        dp["evidences_id"] = [
            [f"QS{i}_{j}", r, f"QO{i}"] for j, (_, r, _) in enumerate(dp["evidences"])
        ]
        aliases.append({"Q_id": f"QA{i}", "aliases": [f"Alt {dp['answer']}"], "demonyms": []})
        aliases.append({"Q_id": f"QO{i}", "aliases": ["Elsewhere"], "demonyms": ["Elsewhereish"]})
    gold = tmp_path / "2wiki_dev.json"
    gold.write_text(json.dumps(rows))
    alias_path = write_jsonl(tmp_path / "id_aliases.json", aliases)
    predictions = {
        "answer": {r["_id"]: f"Alt {r['answer']}" for r in rows[::2]},
        "sp": {r["_id"]: [[t.lower(), s] for t, s in r["supporting_facts"]] for r in rows},
        "evidence": {
            r["_id"]: [[s, rel, "Elsewhereish"] for s, rel, _ in r["evidences"]] for r in rows
        },
    }
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(predictions))
    result = _assert_same(str(path), str(gold), aliases=str(alias_path), percent=True)
    # the aliases count: every evidence object is one (one record's two triples become one)
    assert (result["em"], result["sp_em"], result["evi_em"]) == (50.0, 100.0, 99.0)
    assert _assert_same(str(path), str(gold))["evi_em"] == 0.0


def test_bad_inputs_fail_the_same(shared_data, tmp_path):
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"answer": {"q1": "x"}, "sp": {"q1": [["T", [0]]]}}))
    empty = tmp_path / "validation.jsonl"
    empty.write_text("")
    assert _assert_same(str(pred), str(empty))[1] == f"{empty}: no records: the file is empty"
    # a bad gold record is reported before a prediction entry the official script stops on
    gold = write_jsonl(tmp_path / "gold.jsonl", [hotpot_record("q1"), {"id": "q2"}])
    kind, message = _assert_same(str(pred), str(gold))
    assert kind.__name__ == "DataFormatError" and "record 1" in message
    gold = write_jsonl(tmp_path / "gold.jsonl", [hotpot_record("q1"), hotpot_record("q1")])
    assert "duplicate id 'q1'" in _assert_same(str(pred), str(gold))[1]
    gold = write_jsonl(tmp_path / "gold.jsonl", [hotpot_record("q1")])
    assert "the official script stops on it too" in _assert_same(str(pred), str(gold))[1]
    assert "unknown source" in _assert_same(str(pred), str(gold), source="squad")[1]
    missing_aliases = str(tmp_path / "no_aliases.json")
    kind, message = _assert_same(str(pred), str(gold), aliases=missing_aliases)
    assert kind.__name__ == "DataFormatError" and message.startswith(missing_aliases)
    train = shared_data / "hotpotqa/train.jsonl"
    first = json.loads(train.read_text().splitlines()[0])["id"]
    pred.write_text(json.dumps({"answer": {first: "x"}}))  # a train id against validation
    validation = shared_data / "hotpotqa/validation.jsonl"
    assert (
        "is it the prediction file of another split" in _assert_same(str(pred), str(validation))[1]
    )
