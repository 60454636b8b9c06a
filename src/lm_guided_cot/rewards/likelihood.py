"""``GoldAnswerProbabilityReward``: the reader's probability of the gold answer, given the
rationale. Dense where answer F1 is flat: a greedy reader gives the k rationales of a question
one answer (no signal for a group baseline), but not one probability of the right one.

A chat endpoint does not score a given continuation, so the answer is walked a token at a time:
the reader's reply is prefilled (a last assistant message, which llama.cpp's server continues;
vLLM does with ``extra_params: {continue_final_message: true, add_generation_prompt: false}``;
APIs that start a new reply instead, such as OpenAI's, cannot serve this reward) with
``Answer:`` and the gold text read so far, and one greedy token is asked for
with its ``top_logprobs``. The listed token that continues the gold text is the next step; its
log-probability is added. A step where none of the listed tokens does ends the walk with the
least listed log-probability (an upper bound for any unlisted token): a rationale that leads
the reader away still scores lower the further away it leads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.errors import RunError, check_at_least, check_between
from lm_guided_cot.llm.calls import MAX_TOP_LOGPROBS, LLMRequest, TopLogprobs
from lm_guided_cot.llm.config import LLMConfig, SamplingParams
from lm_guided_cot.llm.registry import client_for
from lm_guided_cot.rewards.base import (
    RewardFunction,
    RewardOutput,
    as_tensor,
    check_lengths,
    check_reward_calls,
)
from lm_guided_cot.rewards.task import AnswerReward
from lm_guided_cot.roles import Reader, ReaderConfig


def next_gold_token(alternatives: TopLogprobs, remaining: str) -> tuple[str, float] | None:
    """The most likely listed token that the remaining gold text starts with (ignoring case),
    and the log of the summed probability of the listed tokens that read as it does apart from
    case (`` No`` and `` no`` are one answer to the metric); ``None`` if no token fits."""
    fitting = [(t, lp) for t, lp in alternatives if t and remaining.lower().startswith(t.lower())]
    if not fitting:
        return None
    token = max(fitting, key=lambda pair: pair[1])[0]
    same = [lp for t, lp in fitting if t.lower() == token.lower()]
    return token, math.log(sum(math.exp(lp) for lp in same))


@dataclass
class _Walk:
    """One (rationale, gold answer) pair being read: the prefill so far, the gold text still to
    read, the log-probability gathered, and whether it is done."""

    row: int
    messages: list[dict[str, str]]
    read: str
    remaining: str
    logprob: float = 0.0
    done: bool = False


class GoldAnswerProbabilityReward(RewardFunction):
    """The reader's probability of a gold answer (the best of a record's gold answers) after
    the rationale, read token by token from its top log-probabilities (module docstring).

    Validation (the learning curve) reports the greedy reader's answer F1 instead, as the
    evaluation scores a guide.

    Args:
        llm: the large LM that reads the rationale; its endpoint must return ``top_logprobs``
            and continue a last assistant message (module docstring).
        reader: its prompt (the same the evaluation uses).
        prefill: the reply's start before the answer; the reader's template asks for
            ``Answer: <short answer>``, so the answer's first token carries its space.
        top_logprobs: alternatives listed per step (1 to 20); more find the gold token deeper.
        max_answer_tokens: most steps per answer; a longer answer is scored on its first ones.
        fallback: reward of a rationale whose calls failed after all retries.
    """

    name = "gold_probability"

    def __init__(
        self,
        llm: LLMConfig | None = None,
        reader: ReaderConfig | None = None,
        prefill: str = "Answer:",
        top_logprobs: int = MAX_TOP_LOGPROBS,
        max_answer_tokens: int = 8,
        fallback: float = 0.0,
    ) -> None:
        owner = type(self).__name__
        check_between(f"{owner}.top_logprobs", top_logprobs, 1, MAX_TOP_LOGPROBS)
        check_at_least(f"{owner}.max_answer_tokens", max_answer_tokens, 1)
        self.llm, self.reader_config = llm or LLMConfig(), reader
        self.client = client_for(self.llm)
        self.reader = Reader(self.client, reader)
        self.prefill = prefill
        self.top_logprobs = top_logprobs
        self.max_answer_tokens = max_answer_tokens
        self.fallback = fallback
        self._sampling = SamplingParams(
            temperature=0.0, max_tokens=1, seed=self.client.config.sampling.seed
        )

    def for_validation(self) -> RewardFunction:
        return AnswerReward(llm=self.llm, reader=self.reader_config)

    async def ascore(self, records: Sequence[QARecord], rationales: Sequence[str]) -> RewardOutput:
        check_lengths(records, rationales)
        walks = [
            _Walk(row, self.reader.messages(record, rationale), "", " " + gold.strip())
            for row, (record, rationale) in enumerate(zip(records, rationales))
            for gold in dict.fromkeys(g for g in record.gold_answers if g.strip())
        ]
        failed: set[int] = set()
        calls, errors = 0, []
        for _ in range(self.max_answer_tokens):
            active = [w for w in walks if not w.done and w.row not in failed]
            if not active:
                break
            requests = [
                LLMRequest((*w.messages, {"role": "assistant", "content": self.prefill + w.read}))
                for w in active
            ]
            results = await self.client.acomplete(
                requests,
                role="reader",
                sampling=self._sampling,
                params={"logprobs": True, "top_logprobs": self.top_logprobs},
            )
            calls += len(results)
            for walk, result in zip(active, results):
                if not result.ok:
                    failed.add(walk.row)
                    errors.append(result.error)
                elif not result.top_logprobs:
                    raise RunError(
                        f"reward {self.name!r}: {self.client.where} returned no top_logprobs; "
                        "this reward needs an endpoint that does and continues a prefilled "
                        "reply (llama.cpp's server; vLLM with continue_final_message)"
                    )
                else:
                    self._step(walk, result.top_logprobs)
        check_reward_calls(self, len(errors), calls, next(iter(errors), None))
        logprobs = [-math.inf] * len(records)
        for walk in walks:
            logprobs[walk.row] = max(logprobs[walk.row], walk.logprob)
        total = [
            self.fallback if row in failed or logprobs[row] == -math.inf else math.exp(lp)
            for row, lp in enumerate(logprobs)
        ]
        return RewardOutput(
            as_tensor(total),
            {self.name: as_tensor(total)},
            {f"{self.name}/failed_calls": float(len(errors)), f"{self.name}/calls": float(calls)},
        )

    @staticmethod
    def _step(walk: _Walk, alternatives: TopLogprobs) -> None:
        found = next_gold_token(alternatives, walk.remaining)
        if found is None:
            walk.logprob += min(lp for _, lp in alternatives)
            walk.done = True
            return
        token, logprob = found
        walk.logprob += logprob
        walk.read += token
        walk.remaining = walk.remaining[len(token) :]
        walk.done = not walk.remaining.strip()
