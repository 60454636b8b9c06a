"""Self-consistency: the majority vote and its tie rule, alone and with a scripted reader."""

from __future__ import annotations

import pytest

from lm_guided_cot.evaluation.settings import SmallLMSetting, lm_guided
from lm_guided_cot.evaluation.voting import majority_vote
from lm_guided_cot.llm.client import LLMClient
from lm_guided_cot.roles import Reader
from lm_guided_cot.testing.fake_llm import FakeLLMServer
from tests.helpers import fake_llm_config, qa_record


@pytest.mark.parametrize(
    ("answers", "winner", "index", "votes"),
    [
        (["Paris", "London", "paris."], "Paris", 0, 2),  # normalised: case and punctuation
        (["London", "Paris", "Paris"], "Paris", 1, 2),  # reported as first written
        (["London", "Paris"], "London", 0, 1),  # tie: the first to occur
        (["Rome", "Oslo", "Oslo", "Rome"], "Rome", 0, 2),  # 2-2 tie: Rome came first
        (["The Beatles", "Beatles", "Stones"], "The Beatles", 0, 2),  # articles dropped
        (["", "...", "Rome"], "Rome", 2, 1),  # empty answers do not vote
        (["", ""], "", 0, 2),  # unless all are empty
        (["yes"], "yes", 0, 1),
    ],
)
def test_majority_vote(answers, winner, index, votes):
    vote = majority_vote(answers)
    assert (vote.answer, vote.index, vote.votes) == (winner, index, votes)


def test_majority_vote_needs_answers():
    with pytest.raises(ValueError):
        majority_vote([])


def test_greedy_self_consistency_is_refused():
    with pytest.raises(ValueError, match="do_sample"):
        SmallLMSetting(name="sc", model="x", samples=3)


def _scripted_reader(messages):
    """Answers what the rationale tells it to: 'say X' -> 'Answer: X'."""
    user = messages[-1]["content"]
    rationale = user.split("Reasoning: ", 1)[1].split("\n", 1)[0]
    return f"Answer: {rationale.removeprefix('say').strip()}"


def test_self_consistency_votes_over_the_readers_answers(tmp_path):
    records = [qa_record(f"q{i}", answer="Paris") for i in range(4)]
    rationales = [
        ["say Paris", "say London", "say paris"],  # majority after normalisation
        ["say Oslo", "say Paris", "say Rome"],  # three-way tie: the first sample's answer
        ["say London", "say the London", "say Paris"],  # articles normalised away
        ["say", "say", "say Paris"],  # empty answers do not outvote one
    ]
    with FakeLLMServer(responder=_scripted_reader) as server:
        client = LLMClient(fake_llm_config(server, tmp_path))
        try:
            results = lm_guided(records, rationales, Reader(client))
        finally:
            client.close()
    assert [r.answers for r in results] == [
        ["Paris", "London", "paris"],
        ["Oslo", "Paris", "Rome"],
        ["London", "the London", "Paris"],
        ["", "", "Paris"],
    ]
    assert [r.answer for r in results] == ["Paris", "Oslo", "London", "Paris"]
    assert [r.votes for r in results] == [2, 1, 2, 1]
    assert [r.em for r in results] == [1.0, 0.0, 0.0, 1.0]  # scored against the gold "Paris"
    assert all(len(r.rationales) == 3 for r in results)


def test_one_rationale_is_plain_lm_guided(tmp_path):
    records = [qa_record("q1", answer="Paris")]
    with FakeLLMServer(responder=_scripted_reader) as server:
        client = LLMClient(fake_llm_config(server, tmp_path))
        try:
            (result,) = lm_guided(records, [["say Paris"]], Reader(client))
        finally:
            client.close()
    assert (result.answer, result.votes, result.f1) == ("Paris", None, 1.0)
