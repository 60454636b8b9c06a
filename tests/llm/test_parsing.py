"""Parsers of the large LM's replies."""

from __future__ import annotations

import pytest

from lm_guided_cot.llm.parsing import parse_answer, parse_aspect_scores, parse_rationale_and_answer


@pytest.mark.parametrize(
    ("reply", "answer", "ok"),
    [
        ("Answer: Paris", "Paris", True),
        ("answer - Paris.", "Paris", True),
        ("The Seine flows there. So the answer is: Paris.", "Paris", True),
        ("The answer is yes", "yes", True),
        ("Final answer: 1922\nExtra notes follow.", "1922", True),
        ("Answer: X\nOn second thought, Answer: Y", "Y", True),  # the last marker wins
        ("Paris", "Paris", True),  # a bare one-line reply is the answer
        ('"Paris"', "Paris", True),
        ("The city was answered by many.\nIt is big.", "The city was answered by many", False),
        ("", "", False),
        (None, "", False),
        ("Answer:", "", False),
    ],
)
def test_parse_answer(reply, answer, ok):
    parsed = parse_answer(reply)
    assert (parsed.answer, parsed.ok) == (answer, ok)


def test_parse_rationale_and_answer():
    parsed = parse_rationale_and_answer(
        "Kerensky led the Provisional Government. The civil war ended in October 1922. So the answer is: October 1922."
    )
    assert parsed.ok
    assert parsed.answer == "October 1922"
    assert (
        parsed.rationale
        == "Kerensky led the Provisional Government. The civil war ended in October 1922."
    )
    missing = parse_rationale_and_answer("Just some thoughts with no conclusion.")
    assert (missing.ok, missing.answer, missing.rationale) == (
        False,
        "",
        "Just some thoughts with no conclusion.",
    )
    therefore = parse_rationale_and_answer("A is older than B. Therefore, the answer is A")
    assert (therefore.rationale, therefore.answer) == ("A is older than B.", "A")


def test_parse_aspect_scores():
    aspects = ["factuality", "relevance", "fluency"]
    json_reply = 'Here you go: {"Factuality": 4, "relevance": "5", "fluency": 3.5}'
    parsed = parse_aspect_scores(json_reply, aspects, 1, 5)
    assert parsed.ok and parsed.scores == {"factuality": 4.0, "relevance": 5.0, "fluency": 3.5}
    out_of_range = parse_aspect_scores(
        '{"factuality": 9, "relevance": 2, "fluency": true}', aspects, 1, 5
    )
    assert not out_of_range.ok
    assert out_of_range.scores == {"factuality": None, "relevance": 2.0, "fluency": None}
    lines = parse_aspect_scores("Factuality: 2\n- relevance = 3\nFluency - 5", aspects, 1, 5)
    assert lines.ok and lines.scores == {"factuality": 2.0, "relevance": 3.0, "fluency": 5.0}
    assert parse_aspect_scores("no scores at all", aspects, 1, 5).scores == dict.fromkeys(aspects)
    assert not parse_aspect_scores(None, aspects, 1, 5).ok
