"""The answer rewards with several reader samples: the expected score, one cache entry per
sample, failures, and the options they refuse."""

from __future__ import annotations

import re
import sqlite3
import statistics
from collections import Counter

import pytest

from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.llm.config import SamplingParams
from lm_guided_cot.metrics import answer_score
from lm_guided_cot.rewards import AnswerReward, MarginalUtilityReward
from lm_guided_cot.testing.fake_llm import FakeLLMServer
from tests.helpers import fake_llm_config
from tests.rewards.questions import RECORDS

# What the reader says on the j-th request of a prompt, by question (the rationale does not
# matter): the server sees the n samples of one prompt as n requests with the same messages,
# so the answers a prompt gets are these, whatever order the requests come in.
SCRIPT = {
    "question a?": ["New York", "New York City", "Lyon", "Lyon"],  # gold New York
    "question b?": ["Paris", "Paris", "Paris", "Paris"],  # gold Paris
    "question c?": ["1921", "1921", "1921", "1922"],  # gold 1922
}
WITHOUT = ["Lyon", "Lyon", "Lyon", "Paris"]  # any question, no rationale


class ScriptedReader:
    """Answers the j-th request of each prompt from ``SCRIPT`` (``WITHOUT`` with no rationale)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, messages):
        user = messages[-1]["content"]
        j = self.calls[user]
        self.calls[user] += 1
        if "Reasoning: " not in user:
            return f"Answer: {WITHOUT[j % len(WITHOUT)]}"
        question = next(q for q in SCRIPT if q in user)
        return f"Answer: {SCRIPT[question][j % 4]}"


def _expected(record, answers) -> list[float]:
    return [answer_score(a, record.gold_answers, "f1") for a in answers]


def test_the_reward_is_the_mean_score_over_n_distinct_samples(tmp_path):
    with FakeLLMServer(responder=ScriptedReader()) as server:
        config = fake_llm_config(server, tmp_path)
        reward = AnswerReward(llm=config, samples=4, sample_temperature=0.7)
        out = reward(RECORDS, ["hint one", "hint two", "hint three"])
        stats = server.stats()
        params = list(server.request_params)
        # a rerun (a new reward on the same cache) asks the server nothing
        again = AnswerReward(llm=config, samples=4, sample_temperature=0.7)
        hits_before = again.usage().get("llm/reader/cache_hits", 0)
        rerun = again(RECORDS, ["hint one", "hint two", "hint three"])
        assert server.stats()["requests"] == stats["requests"]
    scores = [_expected(r, SCRIPT[r.question]) for r in RECORDS]
    assert out.total.tolist() == pytest.approx([statistics.fmean(s) for s in scores])
    assert out.total.tolist() == pytest.approx([0.45, 1.0, 0.25])  # by hand: (1 + .8) / 4 ...
    assert out.components["answer/sample_std"].tolist() == pytest.approx(
        [statistics.pstdev(s) for s in scores]
    )
    assert out.logs["answer/failed_calls"] == 0.0
    # each (question, rationale) went out 4 times, at the sample temperature
    assert stats["requests"] == 12 and set(stats["per_prompt"].values()) == {4}
    assert {p["temperature"] for p in params} == {0.7}
    with sqlite3.connect(config.cache_path) as db:
        assert db.execute("SELECT COUNT(*) FROM replies").fetchone()[0] == 12
    assert rerun.total.tolist() == out.total.tolist()
    assert again.usage()["llm/reader/cache_hits"] - hits_before == 12


def test_one_sample_is_the_greedy_reward_of_before(tmp_path):
    with FakeLLMServer(responder=ScriptedReader()) as server:
        reward = AnswerReward(llm=fake_llm_config(server, tmp_path))
        out = reward(RECORDS, ["hint one", "hint two", "hint three"])
        assert server.stats()["requests"] == 3
        assert {p["temperature"] for p in server.request_params} == {0.0}
    assert out.total.tolist() == pytest.approx([1.0, 1.0, 0.0])  # each prompt's first answer
    assert set(out.components) == {"answer"}


def test_seeded_samples_are_sent_with_seeds_of_their_own(tmp_path):
    # a server that honours the seed would give n samples with one seed the same reply
    with FakeLLMServer(responder=ScriptedReader()) as server:
        config = fake_llm_config(server, tmp_path, sampling=SamplingParams(seed=5))
        AnswerReward(llm=config, samples=3, sample_temperature=1.0)(RECORDS[:1], ["hint"])
        seeds = sorted(p["seed"] for p in server.request_params)
    assert seeds == [5, 6, 7]


def test_marginal_utility_samples_both_sides(tmp_path):
    with FakeLLMServer(responder=ScriptedReader()) as server:
        reward = MarginalUtilityReward(
            llm=fake_llm_config(server, tmp_path), samples=4, sample_temperature=0.5
        )
        # two rationales of question a: the side without a rationale is asked 4 times, not 8
        records = [RECORDS[0], RECORDS[0], RECORDS[1]]
        out = reward(records, ["first hint", "second hint", "hint"])
        per_prompt = sorted(server.stats()["per_prompt"].values())
    with_a = statistics.fmean(_expected(RECORDS[0], SCRIPT["question a?"]))
    without_a = statistics.fmean(_expected(RECORDS[0], WITHOUT))  # 0: never New York
    without_b = statistics.fmean(_expected(RECORDS[1], WITHOUT))  # 0.25: Paris once
    assert out.components["marginal_utility/without"].tolist() == pytest.approx(
        [without_a, without_a, without_b]
    )
    assert out.total.tolist() == pytest.approx([with_a - without_a, with_a - without_a, 0.75])
    assert "marginal_utility/with_sample_std" in out.components
    assert per_prompt == [4] * 5  # 3 prompts with a rationale, 2 without


def test_failed_samples_are_counted_and_left_out_of_the_mean(tmp_path):
    # every prompt's first request fails (no retries): 3 of 4 answers come back per rationale
    with FakeLLMServer(responder=ScriptedReader(), first_attempt_fault="error500") as server:
        config = fake_llm_config(server, tmp_path, max_retries=0)
        reward = AnswerReward(llm=config, samples=4, sample_temperature=0.7, fallback=-1.0)
        out = reward(RECORDS[:2], ["hint ALWAYS_FAIL", "hint"])
    # the reader's first 3 answers to b: Paris x3; a's calls all failed: the fallback
    assert out.total.tolist() == pytest.approx([-1.0, 1.0])
    assert out.logs["answer/failed_calls"] == 4 + 1  # every failed call


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (AnswerReward, {"samples": 0}, "AnswerReward.samples must be at least 1, got 0"),
        (
            AnswerReward,
            {"samples": 4},
            "AnswerReward.samples=4 needs AnswerReward.sample_temperature",
        ),
        (
            MarginalUtilityReward,
            {"samples": 2, "sample_temperature": 0.0},
            "MarginalUtilityReward.sample_temperature must be positive, got 0.0",
        ),
        (
            AnswerReward,
            {"sample_temperature": -1.0},
            "AnswerReward.sample_temperature must be positive, got -1.0",
        ),
    ],
)
def test_bad_sample_options_are_refused_by_name(cls, kwargs, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        cls(**kwargs)


def test_validation_scores_one_greedy_reply_per_rationale(tmp_path):
    """The learning curve measures what the evaluation table does: one greedy reply, while
    training (and a weighted sum around it) keeps the mean over n sampled replies."""
    from lm_guided_cot.rewards import WeightedSum

    with FakeLLMServer(responder=ScriptedReader()) as server:
        reward = AnswerReward(
            llm=fake_llm_config(server, tmp_path), samples=4, sample_temperature=0.7
        )
        summed = WeightedSum([reward, AnswerReward(llm=fake_llm_config(server, tmp_path))])
        greedy = summed.for_validation().rewards[0]
        assert reward.for_validation() is not reward and greedy.samples == 1
        assert summed.rewards[1].for_validation() is summed.rewards[1]
        out = greedy(RECORDS, ["hint one", "hint two", "hint three"])
        params = list(server.request_params)
    assert len(params) == 3 and all(p.get("temperature") in (None, 0, 0.0) for p in params)
    assert out.total.tolist() == pytest.approx([1.0, 1.0, 0.0])  # each question's first reply
    assert reward.samples == 4 and reward.sample_temperature == 0.7  # the training reward as it was
