"""One client per endpoint: shared budget, rate limits and counters; conflicting budgets refused."""

from __future__ import annotations

import asyncio
import json

import pytest

from lm_guided_cot.data.records import Paragraph, QARecord, SupportingFact
from lm_guided_cot.llm.client import LLMClient, LLMRequest
from lm_guided_cot.llm.config import SamplingParams
from lm_guided_cot.llm.registry import client_for, close_all
from lm_guided_cot.rewards import (
    AnswerMentionReward,
    AnswerReward,
    AspectReward,
    RewardFunction,
    WeightedSum,
)
from lm_guided_cot.roles import Aspect, JudgeConfig
from lm_guided_cot.testing.fake_llm import FakeLLMServer
from tests.helpers import VowelShareReward, fake_llm_config

ASPECTS = [Aspect("factuality", "true"), Aspect("fluency", "well written")]
RECORDS = [
    QARecord(
        id=str(i),
        question=f"question {i}?",
        answer="Paris",
        paragraphs=(Paragraph("T", ("Some text.",)),),
        supporting_facts=(SupportingFact("T", 0),),  # the judge reads the gold paragraph
    )
    for i in range(6)
]


def _reader_and_judge(messages):
    if "JSON" in messages[-1]["content"]:
        return json.dumps({"factuality": 5, "fluency": 3})
    return "Answer: Paris"


def test_rewards_of_one_endpoint_share_its_concurrency_budget(tmp_path):
    with FakeLLMServer(responder=_reader_and_judge, latency=0.1) as server:
        answer = AnswerReward(llm=fake_llm_config(server, tmp_path, max_concurrency=2))
        aspects = AspectReward(
            # sampling is per role: it may differ on one endpoint
            llm=fake_llm_config(
                server, tmp_path, max_concurrency=2, sampling=SamplingParams(max_tokens=64)
            ),
            judge=JudgeConfig(aspects=ASPECTS, protocol="text"),  # no auto probe to count
        )
        total = WeightedSum([answer, aspects])
        out = total(RECORDS, [f"rationale {i}" for i in range(6)])
        stats = server.stats()
    # two clients (one per reward) would have had 4 requests in flight
    assert stats["max_in_flight"] == 2
    assert answer.client.endpoint is aspects.client.endpoint
    assert aspects.client.config.sampling.max_tokens == 64
    assert out.total.tolist() == pytest.approx([1.0 + 0.75] * 6)
    usage = total.usage()
    assert usage["llm/reader/requests"] == 6 and usage["llm/judge/requests"] == 6
    assert usage["llm/total/requests"] == stats["requests"] == 12
    assert total.role_usages()["judge"].replies == 6


def test_batches_in_flight_at_once_share_one_budget(tmp_path):
    with FakeLLMServer(latency=0.1) as server:
        client = LLMClient(fake_llm_config(server, tmp_path, max_concurrency=3))
        requests = [LLMRequest(({"role": "user", "content": f"q{i}"},)) for i in range(12)]

        async def two_batches():
            return await asyncio.gather(
                client.acomplete(requests[:6], role="a"), client.acomplete(requests[6:], role="b")
            )

        first, second = asyncio.run(two_batches())
        assert server.stats()["max_in_flight"] == 3
    assert all(r.ok for r in first + second)
    usages = client.role_usages()
    assert usages["a"].requests == usages["b"].requests == 6
    assert (usages["a"] + usages["b"]).replies == 12
    assert (usages["a"] - usages["b"]).requests == 0


def test_the_same_request_from_two_batches_is_sent_once(tmp_path):
    with FakeLLMServer(latency=0.1) as server:
        first = client_for(fake_llm_config(server, tmp_path))
        second = client_for(fake_llm_config(server, tmp_path))
        requests = [LLMRequest(({"role": "user", "content": f"q{i}"},)) for i in range(4)]

        async def both():
            return await asyncio.gather(
                first.acomplete(requests, role="reader"), second.acomplete(requests, role="judge")
            )

        a, b = asyncio.run(both())
        assert server.stats()["requests"] == 4
    assert [r.text for r in a] == [r.text for r in b]
    assert first.role_usages()["judge"].cache_hits == 4


def test_conflicting_budgets_on_one_endpoint_are_refused(tmp_path):
    with FakeLLMServer() as server:
        client_for(fake_llm_config(server, tmp_path, max_concurrency=2))
        with pytest.raises(ValueError, match=r"timeout \(2.0 vs 5\), max_concurrency \(2 vs 3\)"):
            client_for(fake_llm_config(server, tmp_path, max_concurrency=3, timeout=5))
        with pytest.raises(ValueError, match="cache_path"):
            client_for(fake_llm_config(server, tmp_path, max_concurrency=2, cache_path=None))
        # another model on the same server is another endpoint
        other = client_for(fake_llm_config(server, tmp_path, model="openai/other", timeout=5))
        first = client_for(fake_llm_config(server, tmp_path, max_concurrency=2))
        assert other.endpoint is not first.endpoint


def test_closing_one_client_leaves_the_others_of_its_endpoint_working(tmp_path):
    request = [LLMRequest(({"role": "user", "content": "hello"},))]
    with FakeLLMServer() as server:
        first = client_for(fake_llm_config(server, tmp_path))
        second = client_for(fake_llm_config(server, tmp_path, sampling=SamplingParams(seed=1)))
        assert first.complete(request, role="reader")[0].ok
        first.close()
        assert second.complete(request, role="judge")[0].ok  # other params: not a cache hit
        assert server.stats()["requests"] == 2
        second.close()
        # the endpoint closed with its last client: the next one starts afresh
        third = client_for(fake_llm_config(server, tmp_path))
        assert third.endpoint is not first.endpoint
        assert third.complete(request, role="reader")[0].cached
        close_all()


class _Neither(RewardFunction):
    pass


class _Shouting(AnswerReward):
    """A user subclass that only overrides __call__: a weighted sum must call it too."""

    def __call__(self, records, rationales):
        out = super().__call__(records, rationales)
        out.total = out.total * 10
        return out


def test_sync_rewards_and_subclasses_still_work(tmp_path):
    with pytest.raises(NotImplementedError, match="neither"):
        _Neither()(RECORDS, ["x"] * 6)
    with pytest.raises(NotImplementedError, match="neither"):
        asyncio.run(_Neither().ascore(RECORDS, ["x"] * 6))
    mention = AnswerMentionReward()
    assert mention.usage() == {} and mention.role_usages() is None
    # a duck-typed reward (no RewardFunction: a __call__ and flat usage()) still sums
    duck = WeightedSum([mention, VowelShareReward()])
    assert duck(RECORDS[:1], ["Paris"]).total.tolist() == pytest.approx([1.4])
    assert duck.usage() == {}
    with FakeLLMServer(responder=_reader_and_judge) as server:
        shouting = _Shouting(llm=fake_llm_config(server, tmp_path))
        # a reward that asks the large LM reports zeros before its first call (every DDP rank
        # logs the same keys)
        assert shouting.usage()["llm/total/requests"] == 0
        out = WeightedSum([mention, shouting])(RECORDS[:2], ["it is Paris", "no idea"])
    assert out.total.tolist() == pytest.approx([11.0, 10.0])
    assert WeightedSum([mention, shouting]).usage()["llm/reader/requests"] == 2
