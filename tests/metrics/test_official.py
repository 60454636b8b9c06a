"""Official-format prediction files: reading and checking them, and scoring them as the
official scripts do (missing, unknown and malformed entries included)."""

from __future__ import annotations

import json
import math

import pytest

from lm_guided_cot.metrics.official import (
    coverage_notes,
    official_report,
    read_prediction_file,
    score_predictions,
)
from lm_guided_cot.metrics.scores import (
    HOTPOTQA,
    TWOWIKI,
    AnswerScore,
    GoldExample,
    PredictionFormatError,
    evidence_forms,
    joint_score,
    score_evidence,
    score_supporting_facts,
)
from tests.helpers import evidence_gold, score_tuple


def test_prediction_file_scores_as_official_script(tmp_path):
    gold = [
        GoldExample("1", ["Paris"], [("A", 0), ("B", 1)]),
        GoldExample("2", ["yes"], [("C", 0)]),
        GoldExample("3", ["New York"], [("D", 0)]),  # missing from predictions: counts as 0
    ]
    predictions = {
        "answer": {"1": "paris", "2": "no"},
        "sp": {"1": [["A", 0], ["B", 1]], "2": [["C", 0], ["X", 3]]},
    }
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(predictions))
    result = score_predictions(read_prediction_file(path), gold)
    assert result["em"] == pytest.approx(1 / 3)
    assert result["f1"] == pytest.approx(1 / 3)
    assert result["sp_em"] == pytest.approx(1 / 3)
    assert result["sp_f1"] == pytest.approx((1.0 + 2 * 0.5 * 1.0 / 1.5 + 0.0) / 3)
    # joint: example 1 is perfect; example 2 has answer P=R=0; example 3 is missing
    assert result["joint_f1"] == pytest.approx(1 / 3)
    assert result["joint_em"] == pytest.approx(1 / 3)
    assert not any(math.isnan(v) for v in result.values())


def test_prediction_file_without_sp_has_answer_keys_only():
    result = score_predictions({"answer": {"1": "Paris"}}, [GoldExample("1", ["Paris"])])
    assert result == {"em": 1.0, "f1": 1.0, "prec": 1.0, "recall": 1.0}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"sp": {}}', "field 'answer'"),
        ('{"answer": {"1": 3}}', "record '1': field 'answer': expected a string"),
    ],
)
def test_bad_prediction_file_names_file_and_field(tmp_path, content, message):
    path = tmp_path / "pred.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as caught:
        read_prediction_file(path)
    assert str(path) in str(caught.value)


_LAYOUT_HINT = 'expected a JSON object {"answer": {id: answer}'


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", f"the file is empty; {_LAYOUT_HINT}"),
        (b" \n\t\n", f"the file holds only white space; {_LAYOUT_HINT}"),
        (
            b'{"answer":\n {"q1": "caf\xe9"}}',
            "line 2: not UTF-8 text: byte 0xe9 (invalid continuation byte) at byte offset 23",
        ),
        (
            b'{"answer": {"q1": "x"}, "sp": {"q1": [["A", 0]',
            "not valid JSON (Expecting ',' delimiter, line 1, column 47); the file ends before "
            "the JSON does: is it cut off?",
        ),
        (b'{"answer": {"q1": "unfinished', "the file ends before the JSON does: is it cut off?"),
        (b'[{"answer": {}}]', f"{_LAYOUT_HINT}"),
        (b'"just a string"', "found a string"),
        (b'{"answer": ["q1", "x"]}', "field 'answer': expected an object mapping ids to "),
        (
            b'{"answer": null}',
            "field 'answer': expected an object mapping ids to answers, found null",
        ),
        (b'{"sp": {"q1": []}}', "field 'answer': missing; expected a JSON object"),
        (
            b'{"answer": {"q1": ["x"]}}',
            "record 'q1': field 'answer': expected a string, found a list",
        ),
        (b'{"answer": {}, "sp": [["A", 0]]}', "field 'sp': expected an object mapping ids to"),
    ],
    ids=[
        "empty",
        "blank",
        "not-utf8",
        "cut-off",
        "cut-in-string",
        "list",
        "string",
        "answer-list",
        "answer-null",
        "answer-missing",
        "answer-not-string",
        "sp-list",
    ],
)
def test_bad_prediction_file_gives_one_message_naming_it(tmp_path, content, problem):
    path = tmp_path / "pred.json"
    path.write_bytes(content)
    with pytest.raises(PredictionFormatError) as caught:
        read_prediction_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert problem in message


def test_prediction_file_missing_or_a_folder(tmp_path):
    with pytest.raises(PredictionFormatError, match=r"pred\.json: no such file$") as caught:
        read_prediction_file(tmp_path / "pred.json")
    assert str(tmp_path / "pred.json") in str(caught.value)
    (tmp_path / "preds").mkdir()
    with pytest.raises(PredictionFormatError) as caught:
        read_prediction_file(tmp_path / "preds")
    assert str(caught.value) == f"{tmp_path / 'preds'}: a folder, not a file"


def test_prediction_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "pred.json"
    path.write_bytes(b'\xef\xbb\xbf{"answer": {"q1": "x"}}')
    assert read_prediction_file(path) == {"answer": {"q1": "x"}}


def test_missing_and_unknown_ids_are_counted_and_the_first_named():
    gold = [GoldExample(f"g{i}", ["x"], [("A", 0)]) for i in range(8)]
    predictions = {
        "answer": {"g0": "x", "g1": "x", "u1": "x", "u2": "x"},
        "sp": {f"g{i}": [["A", 0]] for i in range(7)} | {"u3": []},
    }
    report = official_report(predictions, gold, HOTPOTQA, "pred.json", "gold.jsonl")
    result = report.as_dict()
    assert result["missing"] == {"answer": 6, "sp": 1}
    assert result["missing_ids"] == {"answer": ["g2", "g3", "g4", "g5", "g6"], "sp": ["g7"]}
    assert result["unknown"] == {"answer": 2, "sp": 1}
    assert result["unknown_ids"] == {"answer": ["u1", "u2"], "sp": ["u3"]}
    assert report.metrics["em"] == 2 / 8  # unknown ids change nothing: the script ignores them
    notes = coverage_notes(result)
    assert notes == [
        "6 gold id(s) have no 'answer' prediction and score 0 there (first: g2, g3, g4, g5, g6)",
        "1 gold id(s) have no 'sp' prediction and score 0 there (first: g7)",
        "2 id(s) of the 'answer' section are not gold ids and are ignored (first: u1, u2)",
        "1 id(s) of the 'sp' section are not gold ids and are ignored (first: u3)",
    ]
    full = official_report({"answer": {"g0": "x"}}, gold[:1], HOTPOTQA).as_dict()
    assert not {"missing", "missing_ids", "unknown", "unknown_ids"} & set(full)
    assert coverage_notes(full) == []


def test_no_gold_id_predicted_stops_with_one_message():
    gold = [GoldExample(f"g{i}", ["x"], [("A", 0)]) for i in range(3)]
    predictions = {"answer": {"other1": "x", "other2": "y"}, "sp": {"other3": []}}
    with pytest.raises(PredictionFormatError) as caught:
        official_report(predictions, gold, HOTPOTQA, "pred.json", "dev.jsonl")
    assert str(caught.value) == (
        "pred.json: none of its 3 predicted id(s) is among the 3 gold ids of dev.jsonl "
        "(first predicted: other1, other2, other3; first gold: g0, g1, g2): is it the "
        "prediction file of another split or benchmark?"
    )
    with pytest.raises(PredictionFormatError, match=r"^pred\.json: it holds no predictions"):
        official_report({"answer": {}, "sp": {}}, gold, HOTPOTQA, "pred.json")
    # one gold id in one section is enough to score
    assert official_report({"answer": {}, "sp": {"g1": []}}, gold).metrics["em"] == 0.0


def test_score_file_names_the_bad_gold_file_and_the_file_of_another_split(
    tmp_path, shared_data, monkeypatch
):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    from lm_guided_cot.cli.score import score_file
    from lm_guided_cot.data.errors import DataFormatError

    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"answer": {"q1": "x"}}))
    gold = tmp_path / "validation.jsonl"
    gold.write_text("")
    with pytest.raises(DataFormatError) as caught:
        score_file(str(pred), str(gold))
    assert str(caught.value) == f"{gold}: no records: the file is empty"
    train = shared_data / "hotpotqa/train.jsonl"
    validation = shared_data / "hotpotqa/validation.jsonl"
    first = json.loads(train.read_text().splitlines()[0])["id"]
    pred.write_text(json.dumps({"answer": {first: "x"}}))  # a train id against validation
    with pytest.raises(PredictionFormatError) as caught:
        score_file(str(pred), str(validation))
    assert str(caught.value).startswith(
        f"{pred}: none of its 1 predicted id(s) is among the 300 gold ids of {validation}"
    )


@pytest.mark.parametrize(
    "entry",
    [[], ["T"], ["T", 0, 1], {}, {"a": 1, "b": 2}, "ab", "", [None, None], [["a"], 0], [1.5, 0]],
    ids=repr,
)
@pytest.mark.parametrize("section", ["sp", "evidence"])
def test_malformed_entries_from_a_file_are_scored_or_named(tmp_path, entry, section):
    gold = [GoldExample("q1", ["x"], [("T", 0)], [evidence_forms("A", "r", "B")])]
    path = tmp_path / "pred.json"
    path.write_text(json.dumps({"answer": {"q1": "x"}, "sp": {"q1": []}, section: {"q1": [entry]}}))
    for benchmark in (HOTPOTQA, TWOWIKI):
        try:
            report = official_report(read_prediction_file(path), gold, benchmark, str(path))
        except PredictionFormatError as err:  # the official script stops on it: so do we
            message = str(err)
        else:
            if section == "evidence" and benchmark == HOTPOTQA:
                continue  # HotpotQA has no evidence section
            (message,) = report.malformed
        assert message.startswith(f"{path}: record 'q1': field '{section}': ")


# ---- issue 16: the cases where the project differed from the official scripts ---------------


@pytest.mark.parametrize("benchmark", [HOTPOTQA, TWOWIKI])
def test_string_sentence_id_is_wrong_as_in_both_official_scripts(benchmark, tmp_path):
    # ("Alpha", "0") != ("Alpha", 0): tp 0, fp 1, fn 1
    assert score_tuple(score_supporting_facts([["Alpha", "0"]], [("Alpha", 0)], benchmark)) == (
        0,
        0,
        0,
        0,
    )
    # one right, one with a string id: tp 1, fp 1, fn 1 -> P = R = F1 = 0.5, EM 0
    half = score_supporting_facts(
        [["Alpha", 0], ["Beta", "1"]], [("Alpha", 0), ("Beta", 1)], benchmark
    )
    assert score_tuple(half) == (0.0, 0.5, 0.5, 0.5)
    path = tmp_path / "pred.json"
    path.write_text(json.dumps({"answer": {"q1": "x"}, "sp": {"q1": [["Alpha", "0"]]}}))
    report = official_report(
        read_prediction_file(path), [GoldExample("q1", ["x"], [("Alpha", 0)])], benchmark, str(path)
    )
    assert report.metrics["sp_em"] == report.metrics["sp_f1"] == 0.0
    (message,) = report.malformed
    assert str(path) in message and "'q1'" in message and '["Alpha", "0"]' in message


def test_2wiki_evidence_and_the_official_joint():
    predictions = {
        "answer": {"w1": "Gamma College"},
        "sp": {"w1": [["Alpha", 0], ["Beta", 1]]},
        "evidence": {"w1": [["alpha", "Father", "beta."]]},  # case and punctuation go
    }
    result = score_predictions(predictions, [evidence_gold()], TWOWIKI)
    assert list(result) == [
        *("em", "f1", "prec", "recall"),
        *("sp_em", "sp_f1", "sp_prec", "sp_recall"),
        *("evi_em", "evi_f1", "evi_prec", "evi_recall"),
        *("joint_em", "joint_f1", "joint_prec", "joint_recall"),
    ]
    # answer and facts perfect; evidence: 1 match, 1 prediction, 2 gold triples
    # -> P 1, R 0.5, F1 2/3, EM 0
    assert (result["evi_em"], result["evi_prec"], result["evi_recall"]) == (0.0, 1.0, 0.5)
    assert result["evi_f1"] == pytest.approx(2 / 3)
    # joint = answer x facts x evidence: P 1, R 0.5, F1 2/3, EM 1 * 1 * 0 = 0
    assert (result["joint_em"], result["joint_prec"], result["joint_recall"]) == (0.0, 1.0, 0.5)
    assert result["joint_f1"] == pytest.approx(2 / 3)
    # without the evidence factor (HotpotQA's joint) the same record would have joint EM 1
    assert score_predictions(predictions, [evidence_gold()], HOTPOTQA)["joint_em"] == 1.0
    three = joint_score(AnswerScore(1, 1, 1, 1), AnswerScore(1, 1, 1, 1), AnswerScore(0, 0, 1, 0.5))
    assert score_tuple(three) == pytest.approx((0, 2 / 3, 1, 0.5))


def test_2wiki_file_without_evidence_is_scored_for_answers_and_facts(tmp_path):
    path = tmp_path / "pred.json"
    path.write_text(
        json.dumps({"answer": {"w1": "Gamma College"}, "sp": {"w1": [["Alpha", 0], ["Beta", 1]]}})
    )
    report = official_report(read_prediction_file(path), [evidence_gold()], TWOWIKI, str(path))
    assert report.absent == ["evidence"]
    assert report.metrics == {
        **{"em": 1.0, "f1": 1.0, "prec": 1.0, "recall": 1.0},
        **{"sp_em": 1.0, "sp_f1": 1.0, "sp_prec": 1.0, "sp_recall": 1.0},
    }  # no evi_*, and no joint: the official joint multiplies the evidence score in
    assert report.as_dict()["absent"] == ["evidence"]
    bare = official_report({"answer": {"w1": "x"}}, [evidence_gold()], TWOWIKI)
    assert bare.absent == ["sp", "evidence"] and list(bare.metrics) == [
        "em",
        "f1",
        "prec",
        "recall",
    ]


def test_ids_missing_from_a_section_score_zero_and_are_counted():
    gold = [evidence_gold(), GoldExample("w2", ["x"], [("A", 0)], [evidence_forms("A", "r", "B")])]
    predictions = {
        "answer": {"w1": "Gamma College", "w2": "x"},
        "sp": {"w1": [["Alpha", 0], ["Beta", 1]], "w2": [["A", 0]]},
        "evidence": {"w2": [["a", "r", "b"]]},
    }
    report = official_report(predictions, gold, TWOWIKI)
    assert report.missing == {"evidence": 1}
    # w1 has no evidence: evidence 0 and no joint for it; w2 is perfect
    assert report.metrics["evi_em"] == 0.5 and report.metrics["joint_em"] == 0.5
    assert report.metrics["sp_em"] == 1.0


@pytest.mark.parametrize("benchmark", [HOTPOTQA, TWOWIKI])
def test_malformed_facts_are_false_positives_and_reported(benchmark, tmp_path):
    path = tmp_path / "pred.json"
    facts = [["Alpha", 0], ["Beta", 0, 0.9], ["Beta", "x"]]
    path.write_text(json.dumps({"answer": {"q1": "x"}, "sp": {"q1": facts}}))
    gold = [GoldExample("q1", ["x"], [("Alpha", 0), ("Beta", 0)])]
    report = official_report(read_prediction_file(path), gold, benchmark, str(path))
    # tp 1 (Alpha), fp 2 (both malformed entries), fn 1 (Beta 0): P 1/3, R 1/2, F1 0.4, EM 0
    m = report.metrics
    assert (m["sp_em"], m["sp_recall"]) == (0.0, 0.5)
    assert (m["sp_prec"], m["sp_f1"]) == (pytest.approx(1 / 3), pytest.approx(0.4))
    assert len(report.malformed) == 2
    for entry, message in zip(('["Beta", 0, 0.9]', '["Beta", "x"]'), report.malformed):
        assert str(path) in message and "record 'q1'" in message and "field 'sp'" in message
        assert entry in message and "false positive" in message
    assert report.as_dict()["malformed"] == report.malformed


def test_entries_equal_in_python_count_as_the_official_script_counts_them():
    # the official sets compare by Python equality: 0.0 == 0 and True == 1
    score = score_supporting_facts([["Alpha", 0.0], ["Beta", True]], [("Alpha", 0), ("Beta", 1)])
    assert score_tuple(score) == (1, 1, 1, 1)
    report = official_report(
        {"answer": {"q": "x"}, "sp": {"q": [["Alpha", 0.0]]}},
        [GoldExample("q", ["x"], [("Alpha", 0)])],
    )
    assert report.metrics["sp_em"] == 1.0
    assert "counts as correct" in report.malformed[0]
    # HotpotQA compares a numeric title as given (a false positive); 2Wiki cannot lowercase it
    assert score_tuple(score_supporting_facts([[3, 0]], [("Alpha", 0)], HOTPOTQA)) == (0, 0, 0, 0)
    assert score_tuple(score_supporting_facts([[]], [("Alpha", 0)], HOTPOTQA)) == (0, 0, 0, 0)
    # a 4-field evidence entry or a bare string is compared as given: a false positive ...
    forms = [evidence_forms("A", "r", "B")]
    assert score_tuple(score_evidence([["a", "r", "b", "c"], "xyz"], forms)) == (0, 0, 0, 0)
    # ... unless the string's characters are the triple: tuple("arb") == ("a", "r", "b")
    assert score_tuple(score_evidence(["A.r.B"], forms)) == (1, 1, 1, 1)


@pytest.mark.parametrize(
    ("benchmark", "section", "value"),
    [
        (HOTPOTQA, "sp", [["Beta", [0]]]),  # a list inside a fact: unhashable, the set fails
        (TWOWIKI, "sp", [["Beta", [0]]]),
        (TWOWIKI, "sp", [[3, 0]]),  # 2Wiki lowercases the title: a number has no .lower()
        (TWOWIKI, "sp", [[]]),  # 2Wiki reads sp[0] of an empty entry
        (HOTPOTQA, "sp", 7),
        (TWOWIKI, "evidence", [["A", "r", 3]]),  # normalize_evi takes len() of the number
        (TWOWIKI, "evidence", "A r B"),  # normalize_evi assigns into the string
    ],
)
def test_entries_the_official_script_stops_on_raise_one_clear_error(benchmark, section, value):
    gold = [GoldExample("q1", ["x"], [("Beta", 0)], [evidence_forms("A", "r", "B")])]
    predictions = {"answer": {"q1": "x"}, "sp": {"q1": [["Beta", 0]]}, "evidence": {"q1": []}}
    predictions[section] = {"q1": value}
    with pytest.raises(PredictionFormatError) as caught:
        official_report(predictions, gold, benchmark, "pred.json")
    message = str(caught.value)
    assert message.startswith(f"pred.json: record 'q1': field '{section}': ")
    assert "official script stops on it too" in message


def test_percent_output_rounds_as_the_2wiki_script_prints():
    report = official_report(
        {"answer": {"a": "x", "b": "y", "c": "z"}},
        [GoldExample("a", ["x"]), GoldExample("b", ["x"]), GoldExample("c", ["x"])],
    )
    assert report.metrics["em"] == 1 / 3
    assert report.as_dict(percent=True) == {
        "em": 33.33,
        "f1": 33.33,
        "prec": 33.33,
        "recall": 33.33,
        "absent": ["sp"],
    }
    assert official_report(
        {"answer": {"a": "x y z"}}, [GoldExample("a", ["x y"]), GoldExample("b", ["q"])]
    ).as_dict(percent=True) == {
        **{"em": 0.0, "f1": 40.0, "prec": 33.33, "recall": 50.0},
        **{"absent": ["sp"], "missing": {"answer": 1}, "missing_ids": {"answer": ["b"]}},
    }
