"""Rewards: answer F1 from the reader, marginal utility, judge aspects, sums, failures."""

from __future__ import annotations

import json
import re

import pytest
import torch

from lm_guided_cot.errors import ConfigurationError, RunError
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.rewards import (
    AnswerMentionReward,
    AnswerReward,
    AspectReward,
    MarginalUtilityReward,
    WeightedSum,
)
from lm_guided_cot.roles import Aspect, JudgeConfig
from lm_guided_cot.testing.fake_llm import FakeLLMServer
from tests.helpers import fake_llm_config
from tests.rewards.questions import RECORDS


def _reader(messages):
    """Answers with whatever follows 'USE:' in the rationale, or 'Lyon' without one."""
    user = messages[-1]["content"]
    if "Reasoning: " in user:
        rationale = user.split("Reasoning: ", 1)[1].split("\n", 1)[0]
        if "USE:" in rationale:
            return f"Answer: {rationale.split('USE:', 1)[1].strip()}"
    if "question c?" in user:
        return "Answer: 1922"  # the reader knows c without help
    return "Answer: Lyon"


def test_answer_reward_is_the_readers_f1(tmp_path):
    with FakeLLMServer(responder=_reader) as server:
        reward = AnswerReward(llm=fake_llm_config(server, tmp_path))
        out = reward(RECORDS, ["USE: New York City", "USE: Paris", "no hint"])
    assert out.total.tolist() == pytest.approx([0.8, 1.0, 1.0])
    assert torch.equal(out.components["answer"], out.total)
    assert reward.usage()["llm/reader/requests"] == 3


def test_marginal_utility_subtracts_the_no_rationale_score(tmp_path):
    with FakeLLMServer(responder=_reader) as server:
        reward = MarginalUtilityReward(llm=fake_llm_config(server, tmp_path))
        out = reward(RECORDS, ["USE: New York", "USE: Lyon", "USE: 1921"])
        # a second call reuses the cached answers without a rationale
        sent = server.stats()["requests"]
        reward(RECORDS, ["USE: New York", "USE: Lyon", "USE: 1921"])
        assert server.stats()["requests"] == sent
    # with: 1, 0, 0;  without: 0 (Lyon), 0 (Lyon), 1 (the reader knows c)
    assert out.total.tolist() == pytest.approx([1.0, 0.0, -1.0])
    assert out.components["marginal_utility/without"].tolist() == [0.0, 0.0, 1.0]


def test_failed_reader_calls_get_the_fallback_and_are_counted(tmp_path):
    with FakeLLMServer(responder=_reader) as server:
        reward = AnswerReward(llm=fake_llm_config(server, tmp_path, max_retries=0), fallback=-1.0)
        out = reward(RECORDS[:2], ["USE: New York ALWAYS_FAIL", "USE: Paris"])
    assert out.total.tolist() == [-1.0, 1.0]
    assert out.logs["answer/failed_calls"] == 1.0


@pytest.mark.parametrize("cls", [AnswerReward, MarginalUtilityReward, AspectReward])
def test_a_batch_whose_calls_all_failed_stops_the_run(tmp_path, cls):
    with FakeLLMServer(fault_rates={"error500": 1.0}) as server:
        reward = cls(llm=fake_llm_config(server, tmp_path, max_retries=0))
        with pytest.raises(RunError) as caught:
            reward(RECORDS[:2], ["USE: New York", "USE: Paris"])
    message = str(caught.value)
    calls = 4 if cls is MarginalUtilityReward else 2
    assert message.startswith(
        f"reward {cls.name!r}: all {calls} large-LM calls to openai/fake-model at "
        f"{server.base_url} failed (first error: {server.base_url}: InternalServerError"
    )
    assert "stopped before the policy learns from fallback rewards" in message


def test_max_failure_rate_stops_a_batch_that_is_partly_failed(tmp_path):
    rationales = ["USE: New York ALWAYS_FAIL", "USE: Paris"]
    with FakeLLMServer(responder=_reader) as server:
        lenient = AnswerReward(llm=fake_llm_config(server, tmp_path, max_retries=0))
        assert lenient(RECORDS[:2], rationales).logs["answer/failed_calls"] == 1.0
        strict = AnswerReward(
            llm=fake_llm_config(server, tmp_path, max_retries=0, max_failure_rate=0.5)
        )
        with pytest.raises(RunError, match=r"1 of 2 large-LM calls .* max_failure_rate 0.5"):
            strict(RECORDS[:2], rationales)


def test_aspect_reward_rescales_and_weights(tmp_path):
    aspects = [Aspect("factuality", "true"), Aspect("fluency", "well written")]

    def judge(messages):
        return json.dumps({"factuality": 5, "fluency": 1})

    with FakeLLMServer(responder=judge) as server:
        reward = AspectReward(
            llm=fake_llm_config(server, tmp_path),
            judge=JudgeConfig(aspects=aspects),
            weights={"factuality": 3.0, "fluency": 1.0},
        )
        out = reward(RECORDS[:1], ["some rationale"])
    assert out.components["aspects/factuality"].tolist() == [1.0]
    assert out.components["aspects/fluency"].tolist() == [0.0]
    assert out.total.tolist() == pytest.approx([0.75])
    with pytest.raises(ValueError, match="unknown aspects"):
        AspectReward(
            llm=LLMConfig(cache_path=None),
            judge=JudgeConfig(aspects=aspects),
            weights={"style": 1.0},
        )


def test_weighted_sum_keeps_every_component():
    mention = AnswerMentionReward()
    total = WeightedSum([mention, AnswerMentionReward(metric="em")], weights=[0.5, 2.0])
    out = total(RECORDS, ["it is New York", "maybe Paris?", "nothing"])
    assert out.total.tolist() == pytest.approx([2.5, 2.5, 0.0])
    assert "answer_mention" in out.components
    with pytest.raises(ValueError):
        WeightedSum([mention], weights=[1.0, 2.0])


def test_answer_mention_reward_by_hand():
    reward = AnswerMentionReward()
    out = reward(RECORDS, ["The answer: new york.", "Parisian food", "In 1922 it ended"])
    assert out.total.tolist() == [1.0, 0.0, 1.0]  # "Parisian" is not the word "Paris"
    with pytest.raises(ValueError, match="3 records but 2 rationales"):
        reward(RECORDS, ["a", "b"])


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([0.0, 0.0], "WeightedSum.weights must not all be 0, got [0.0, 0.0]"),
        ([1.0, float("nan")], "WeightedSum.weights[1] must be a finite number, got nan"),
        ([float("inf"), 1.0], "WeightedSum.weights[0] must be a finite number, got inf"),
        ([1.0], "WeightedSum.weights must hold one weight per reward: 2 rewards but 1 weights"),
    ],
)
def test_weighted_sum_refuses_bad_weights(weights, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        WeightedSum([AnswerMentionReward(), AnswerMentionReward(metric="em")], weights=weights)


def test_weighted_sum_needs_a_reward():
    with pytest.raises(ConfigurationError, match=re.escape("WeightedSum.rewards must hold")):
        WeightedSum([])


@pytest.mark.parametrize(("weights", "expected"), [([1.0, 0.0], 1.0), ([1.0, -0.5], 0.5)])
def test_weighted_sum_takes_a_zero_or_a_penalty_weight(weights, expected):
    total = WeightedSum([AnswerMentionReward(), AnswerMentionReward(metric="em")], weights)
    assert total(RECORDS[:1], ["it is New York"]).total.tolist() == [expected]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"fluency": -1.0}, "AspectReward.weights['fluency'] must be at least 0, got -1.0"),
        ({"fluency": float("nan")}, "AspectReward.weights['fluency'] must be a finite number"),
        (
            {"factuality": 0.0, "fluency": 0.0},
            "AspectReward.weights must not all be 0, got {'factuality': 0.0, 'fluency': 0.0}",
        ),
        ({"style": 1.0}, "AspectReward.weights for unknown aspects ['style']"),
    ],
)
def test_aspect_reward_refuses_bad_weights_before_making_a_client(weights, message):
    aspects = [Aspect("factuality", "true"), Aspect("fluency", "well written")]
    # An address nothing listens on: the weights are refused before any client is made.
    llm = LLMConfig(model="openai/x", api_base="http://127.0.0.1:9", cache_path=None)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        AspectReward(llm=llm, judge=JudgeConfig(aspects=aspects), weights=weights)


def test_aspect_reward_takes_a_zero_weight(tmp_path):
    aspects = [Aspect("factuality", "true"), Aspect("fluency", "well written")]
    with FakeLLMServer(responder=lambda m: json.dumps({"factuality": 5, "fluency": 1})) as server:
        reward = AspectReward(
            llm=fake_llm_config(server, tmp_path),
            judge=JudgeConfig(aspects=aspects),
            weights={"fluency": 0.0},
        )
        assert reward(RECORDS[:1], ["some rationale"]).total.tolist() == [1.0]


@pytest.mark.parametrize("cls", [AnswerReward, MarginalUtilityReward])
def test_answer_rewards_refuse_a_fallback_that_is_no_number(cls):
    message = f"{cls.__name__}.fallback must be a finite number, got nan"
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        cls(fallback=float("nan"))
