"""What the three roles share: the prompt fields, the record's context, and one ask loop that
sends a batch through the client under the role's name and counts unreadable replies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, Literal, TypeVar

from lm_guided_cot.data.prompts import format_context
from lm_guided_cot.data.records import QARecord
from lm_guided_cot.llm.client import LLMClient, LLMRequest, LLMResult
from lm_guided_cot.llm.config import SamplingParams

Messages = list[dict[str, str]]
ContextSelection = Literal["all", "gold_only", "none"]
ConfigT = TypeVar("ConfigT", bound="RoleConfig")
OutputT = TypeVar("OutputT")


def record_context(
    record: QARecord,
    paragraph_template: str = "{title}: {text}",
    context: ContextSelection = "all",
) -> str:
    """The record's context for the large LM (not token-budgeted like the small LM's).

    ``gold_only`` keeps the paragraphs that hold a supporting fact: an oracle setting, for
    ablations, for a judge, and for CPU demos where every prompt token costs time. ``none``
    keeps none (closed book).
    """
    if context == "none":
        return ""
    gold = set(record.gold_titles)
    paragraphs = [p for p in record.paragraphs if context == "all" or p.title in gold]
    return format_context([(p.title, p.text) for p in paragraphs], paragraph_template)


def chat(system: str, user: str) -> Messages:
    """A system message (when there is one) and a user message."""
    return (
        [{"role": "system", "content": system}, {"role": "user", "content": user}]
        if system
        else [{"role": "user", "content": user}]
    )


@dataclass
class RoleConfig:
    """The prompt fields every role has.

    Args:
        system: system message ("" for none).
        template: the user message (each role names its fields).
        paragraph_template: one context paragraph; ``{title}``, ``{text}``.
        context: ``all`` paragraphs (the benchmark's setting), ``gold_only`` (oracle: those
            holding a supporting fact) or ``none`` (closed book).
        sampling: overrides the client's sampling (``None``: the client's, greedy by default).
    """

    system: str = ""
    template: str = "{context}\n\nQuestion: {question}"
    paragraph_template: str = "{title}: {text}"
    context: ContextSelection = "all"
    sampling: SamplingParams | None = None


class Role(Generic[ConfigT, OutputT]):
    """A prompt plus a parser: ``_ask``/``_aask`` send a batch and read each reply."""

    role: ClassVar[str]

    def __init__(self, client: LLMClient, config: ConfigT) -> None:
        self.client = client
        self.config = config

    def context(self, record: QARecord) -> str:
        return record_context(record, self.config.paragraph_template, self.config.context)

    def _ask(
        self, requests: Sequence[LLMRequest], read: Callable[[LLMResult], tuple[OutputT, bool]]
    ) -> list[OutputT]:
        results = self.client.complete(requests, role=self.role, sampling=self.config.sampling)
        return self._read_all(results, read)

    async def _aask(
        self,
        requests: Sequence[LLMRequest],
        read: Callable[[LLMResult], tuple[OutputT, bool]],
        sampling: SamplingParams | None = None,
    ) -> list[OutputT]:
        """The replies read; ``sampling`` replaces the role's own for this batch."""
        results = await self.client.acomplete(
            requests, role=self.role, sampling=sampling or self.config.sampling
        )
        return self._read_all(results, read)

    def _read_all(
        self, results: Sequence[LLMResult], read: Callable[[LLMResult], tuple[OutputT, bool]]
    ) -> list[OutputT]:
        outputs, failures = [], 0
        for result in results:
            output, parsed = read(result)
            failures += result.ok and not parsed  # a failed call is counted as a failure already
            outputs.append(output)
        self.client.count_parse_failure(self.role, failures)
        return outputs
