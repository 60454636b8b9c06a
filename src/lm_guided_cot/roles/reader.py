"""The reader: answers a question from its context, optionally given a rationale (the
LM-guided setting). The task reward and every evaluation setting use it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.llm.client import LLMRequest, LLMResult
from lm_guided_cot.llm.config import SamplingParams
from lm_guided_cot.llm.parsing import parse_answer
from lm_guided_cot.roles.base import Messages, Role, RoleConfig, chat


@dataclass
class ReaderConfig(RoleConfig):
    """How the large LM is asked to answer (``template``: ``{context}``, ``{question}``).

    Args:
        template_with_rationale: the user message with a rationale; adds ``{rationale}``.
        fallback: when no answer can be read: ``first_line`` of the reply, or ``empty``.
    """

    system: str = "You answer questions about the given paragraphs with a short phrase: an entity, a date, a number, or yes/no."
    template: str = "{context}\n\nQuestion: {question}\nReply with 'Answer: <short answer>'."
    template_with_rationale: str = (
        "{context}\n\nQuestion: {question}\nReasoning: {rationale}\n"
        "Reply with 'Answer: <short answer>'."
    )
    fallback: str = "first_line"


@dataclass(frozen=True)
class ReaderOutput:
    answer: str
    raw: str | None
    parsed: bool
    error: str | None = None


class Reader(Role[ReaderConfig, ReaderOutput]):
    """Answers questions, with or without a rationale from the small LM."""

    role = "reader"

    def __init__(self, client, config: ReaderConfig | None = None) -> None:
        super().__init__(client, config or ReaderConfig())

    def messages(self, record: QARecord, rationale: str | None = None) -> Messages:
        cfg, context = self.config, self.context(record)
        if rationale is None:
            user = cfg.template.format(context=context, question=record.question)
        else:
            user = cfg.template_with_rationale.format(
                context=context, question=record.question, rationale=rationale
            )
        return chat(cfg.system, user)

    def answer(
        self, records: Sequence[QARecord], rationales: Sequence[str | None] | None = None
    ) -> list[ReaderOutput]:
        """One answer per record (``rationales[i]`` guides record ``i`` when given)."""
        return self._ask(self._requests(records, rationales), self._read)

    async def aanswer(
        self, records: Sequence[QARecord], rationales: Sequence[str | None] | None = None
    ) -> list[ReaderOutput]:
        """``answer`` on the running event loop."""
        return await self._aask(self._requests(records, rationales), self._read)

    async def asample(
        self,
        records: Sequence[QARecord],
        rationales: Sequence[str | None] | None,
        samples: int,
        temperature: float | None = None,
    ) -> list[list[ReaderOutput]]:
        """``samples`` answers per record, at ``temperature`` (``None``: the role's sampling).

        Answer ``j`` is request ``sample_index=j``: its own cache entry, so the n answers are n
        replies, and a rerun asks nothing. With one sample and no temperature the requests
        are ``aanswer``'s, cache keys included.
        """
        base = self._requests(records, rationales)
        requests = [LLMRequest(r.messages, sample_index=j) for r in base for j in range(samples)]
        flat = await self._aask(requests, self._read, self._sampling_at(temperature))
        return [flat[i * samples : (i + 1) * samples] for i in range(len(base))]

    def _sampling_at(self, temperature: float | None) -> SamplingParams | None:
        if temperature is None:
            return None
        base = self.config.sampling or self.client.config.sampling
        return dataclasses.replace(base, temperature=temperature)

    def _requests(
        self, records: Sequence[QARecord], rationales: Sequence[str | None] | None
    ) -> list[LLMRequest]:
        rationales = rationales if rationales is not None else [None] * len(records)
        return [
            LLMRequest(tuple(self.messages(r, x))) for r, x in zip(records, rationales, strict=True)
        ]

    def _read(self, result: LLMResult) -> tuple[ReaderOutput, bool]:
        parsed = parse_answer(result.text)
        answer = parsed.answer if parsed.ok or self.config.fallback == "first_line" else ""
        return ReaderOutput(answer, result.text, parsed.ok, result.error), parsed.ok
