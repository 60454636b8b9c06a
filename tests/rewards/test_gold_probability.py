"""The gold-answer probability reward: walking the gold answer through the reader's top
log-probabilities, on hand-made alternatives and on a scripted server."""

from __future__ import annotations

import dataclasses
import math

import pytest

from lm_guided_cot.errors import ConfigurationError, RunError
from lm_guided_cot.rewards import AnswerReward, GoldAnswerProbabilityReward
from lm_guided_cot.rewards.likelihood import next_gold_token
from lm_guided_cot.testing.fake_llm import FakeLLMServer
from tests.helpers import fake_llm_config
from tests.rewards.questions import RECORDS  # gold: "New York", "Paris", "1922"

LOG = math.log


def test_the_next_gold_token_is_the_likeliest_listed_token_the_gold_text_starts_with():
    alternatives = ((" The", LOG(0.5)), (" New", LOG(0.3)), (" N", LOG(0.1)), ("", LOG(0.05)))
    assert next_gold_token(alternatives, " New York") == (" New", pytest.approx(LOG(0.3)))
    # a token that reads the same apart from case is the same answer to the metric: summed
    cased = ((" Yes", LOG(0.4)), (" no", LOG(0.35)), (" No", LOG(0.2)))
    assert next_gold_token(cased, " no") == (" no", pytest.approx(LOG(0.55)))
    assert next_gold_token(alternatives, " Paris") is None
    assert next_gold_token((("", LOG(0.9)),), " Paris") is None  # an empty token reads nothing


class ScriptedReader:
    """Top log-probabilities that read the prefilled reply: after a rationale that says
    ``good`` the next gold token has probability 0.8, after any other 0.2; "Paris" is never
    among the listed tokens. Answers ``Answer: x`` (the reward reads only the alternatives)."""

    def __init__(self) -> None:
        self.prefills: list[str] = []

    def __call__(self, messages):
        assert messages[-1]["role"] == "assistant"
        reply = messages[-1]["content"]
        self.prefills.append(reply)
        p = 0.8 if "Reasoning: good" in messages[-2]["content"] else 0.2
        if "question c?" in messages[-2]["content"]:
            following = {"Answer:": " 19", "Answer: 19": "22"}
        else:
            following = {"Answer:": " New", "Answer: New": " York"}
        next_token = following.get(reply, " Rome")  # off the gold text: a dead end
        return {next_token: LOG(p), " Lyon": LOG((1 - p) * 0.9), " <": LOG(0.01)}


def _server(reader: ScriptedReader) -> FakeLLMServer:
    return FakeLLMServer(responder=lambda m: "Answer: x", logprobs=reader)


def test_the_reward_is_the_product_of_the_gold_tokens_probabilities(tmp_path):
    reader = ScriptedReader()
    with _server(reader) as server:
        config = fake_llm_config(server, tmp_path)
        reward = GoldAnswerProbabilityReward(llm=config, top_logprobs=3)
        out = reward(RECORDS * 2, ["good"] * 3 + ["bad"] * 3)
        params, sent = list(server.request_params), server.stats()["requests"]
        # a rerun (a new reward on the same cache) asks the server nothing
        again = GoldAnswerProbabilityReward(llm=config, top_logprobs=3)
        assert again(RECORDS * 2, ["good"] * 3 + ["bad"] * 3).total.tolist() == out.total.tolist()
        assert server.stats()["requests"] == sent
    # New York: two tokens; Paris: no listed token fits, so the least listed one (0.01);
    # 1922: " 19" then "22"
    assert out.total.tolist() == pytest.approx([0.64, 0.01, 0.64, 0.04, 0.01, 0.04])
    assert out.components["gold_probability"].tolist() == out.total.tolist()
    assert out.logs == {"gold_probability/failed_calls": 0.0, "gold_probability/calls": 10.0}
    assert sent == 10
    assert sorted(set(reader.prefills)) == ["Answer:", "Answer: 19", "Answer: New"]
    assert all(p["max_tokens"] == 1 and p["temperature"] == 0 for p in params)
    assert all(p["logprobs"] is True and p["top_logprobs"] == 3 for p in params)


def test_a_rationale_scores_its_best_gold_answer(tmp_path):
    paris_or_new_york = dataclasses.replace(RECORDS[1], answer_aliases=("New York",))
    with _server(ScriptedReader()) as server:
        reward = GoldAnswerProbabilityReward(llm=fake_llm_config(server, tmp_path), top_logprobs=3)
        assert reward([paris_or_new_york], ["good"]).total.tolist() == pytest.approx([0.64])


def test_an_endpoint_without_top_logprobs_stops_with_a_message(tmp_path):
    with FakeLLMServer(responder=lambda m: "Answer: x") as server:
        reward = GoldAnswerProbabilityReward(llm=fake_llm_config(server, tmp_path))
        with pytest.raises(RunError, match="returned no top_logprobs; this reward needs"):
            reward(RECORDS[:1], ["good"])


def test_failed_calls_score_the_fallback_and_all_failed_stops_the_run(tmp_path):
    with _server(ScriptedReader()) as server:
        config = fake_llm_config(server, tmp_path, max_retries=0, max_failure_rate=0.9)
        reward = GoldAnswerProbabilityReward(llm=config, top_logprobs=3, fallback=-1.0)
        out = reward(RECORDS[:2], ["good", "ALWAYS_FAIL"])
        assert out.total.tolist() == pytest.approx([0.64, -1.0])
        assert out.logs["gold_probability/failed_calls"] == 1.0
        with pytest.raises(RunError, match="stopped before the policy learns from fallback"):
            reward(RECORDS[:1], ["ALWAYS_FAIL"])


def test_validation_reports_the_greedy_readers_f1_and_options_are_checked(tmp_path):
    with _server(ScriptedReader()) as server:
        reward = GoldAnswerProbabilityReward(llm=fake_llm_config(server, tmp_path))
        validation = reward.for_validation()
        assert isinstance(validation, AnswerReward) and validation.samples == 1
        assert validation.client.endpoint is reward.client.endpoint
    with pytest.raises(ConfigurationError, match=r"top_logprobs must be in \[1, 20\]"):
        GoldAnswerProbabilityReward(top_logprobs=21)
    with pytest.raises(ConfigurationError, match="max_answer_tokens must be at least 1"):
        GoldAnswerProbabilityReward(max_answer_tokens=0)
