"""The three jobs the large LM does, each a configurable prompt plus a robust parser.

- ``Reader``: answers a question from its context, optionally given a rationale (the
  LM-guided setting) -- the task reward and every evaluation setting use it.
- ``Teacher``: writes a rationale and an answer (zero-shot CoT, or few-shot from
  demonstrations) -- stage 1's training data.
- ``Judge``: scores a rationale on named aspects -- stage 2's rationale reward.

Each role sends its batch through the one ``LLMClient`` under its own name, so usage is
counted per role, and counts the replies its parser could not read (a fallback is used).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lm_guided_cot.data.errors import DataFormatError
from lm_guided_cot.data.json_stream import iter_json_records
from lm_guided_cot.data.prompts import format_context
from lm_guided_cot.data.records import QARecord
from lm_guided_cot.llm.client import LLMClient, LLMRequest, LLMResult
from lm_guided_cot.llm.config import SamplingParams
from lm_guided_cot.llm.parsing import parse_answer, parse_aspect_scores, parse_rationale_and_answer
from lm_guided_cot.paths import expand_path

Messages = list[dict[str, str]]


ContextSelection = Literal["all", "gold_only"]


def record_context(
    record: QARecord,
    paragraph_template: str = "{title}: {text}",
    context: ContextSelection = "all",
) -> str:
    """The record's context for the large LM (not token-budgeted like the small LM's).

    ``gold_only`` keeps the paragraphs that hold a supporting fact: an oracle setting, for
    ablations and for CPU demos where every prompt token costs time.
    """
    gold = set(record.gold_titles)
    paragraphs = [p for p in record.paragraphs if context == "all" or p.title in gold]
    return format_context([(p.title, p.text) for p in paragraphs], paragraph_template)


def _messages(system: str, user: str) -> Messages:
    return (
        [{"role": "system", "content": system}, {"role": "user", "content": user}]
        if system
        else [{"role": "user", "content": user}]
    )


# ---- reader -------------------------------------------------------------------------------------


@dataclass
class ReaderConfig:
    """How the large LM is asked to answer.

    Args:
        system: system message ("" for none).
        template: the user message without a rationale; ``{context}``, ``{question}``.
        template_with_rationale: the user message with one; adds ``{rationale}``.
        paragraph_template: one context paragraph; ``{title}``, ``{text}``.
        context: ``all`` paragraphs (the benchmark's setting) or ``gold_only`` (oracle: those
            holding a supporting fact).
        fallback: when no answer can be read: ``first_line`` of the reply, or ``empty``.
        sampling: overrides the client's sampling (``None``: the client's, greedy by default).
    """

    system: str = "You answer questions about the given paragraphs with a short phrase: an entity, a date, a number, or yes/no."
    template: str = "{context}\n\nQuestion: {question}\nReply with 'Answer: <short answer>'."
    template_with_rationale: str = (
        "{context}\n\nQuestion: {question}\nReasoning: {rationale}\n"
        "Reply with 'Answer: <short answer>'."
    )
    paragraph_template: str = "{title}: {text}"
    context: ContextSelection = "all"
    fallback: str = "first_line"
    sampling: SamplingParams | None = None


@dataclass(frozen=True)
class ReaderOutput:
    answer: str
    raw: str | None
    parsed: bool
    error: str | None = None


class Reader:
    """Answers questions, with or without a rationale from the small LM."""

    role = "reader"

    def __init__(self, client: LLMClient, config: ReaderConfig | None = None) -> None:
        self.client = client
        self.config = config or ReaderConfig()

    def messages(self, record: QARecord, rationale: str | None = None) -> Messages:
        context = record_context(record, self.config.paragraph_template, self.config.context)
        if rationale is None:
            user = self.config.template.format(context=context, question=record.question)
        else:
            user = self.config.template_with_rationale.format(
                context=context, question=record.question, rationale=rationale
            )
        return _messages(self.config.system, user)

    def answer(
        self, records: Sequence[QARecord], rationales: Sequence[str | None] | None = None
    ) -> list[ReaderOutput]:
        """One answer per record (``rationales[i]`` guides record ``i`` when given)."""
        requests = self._requests(records, rationales)
        return self._read(
            self.client.complete(requests, role=self.role, sampling=self.config.sampling)
        )

    async def aanswer(
        self, records: Sequence[QARecord], rationales: Sequence[str | None] | None = None
    ) -> list[ReaderOutput]:
        """``answer`` on the running event loop."""
        requests = self._requests(records, rationales)
        return self._read(
            await self.client.acomplete(requests, role=self.role, sampling=self.config.sampling)
        )

    def _requests(
        self, records: Sequence[QARecord], rationales: Sequence[str | None] | None
    ) -> list[LLMRequest]:
        rationales = rationales if rationales is not None else [None] * len(records)
        return [
            LLMRequest(tuple(self.messages(r, x))) for r, x in zip(records, rationales, strict=True)
        ]

    def _read(self, results: Sequence[LLMResult]) -> list[ReaderOutput]:
        outputs = []
        failures = 0
        for result in results:
            parsed = parse_answer(result.text)
            failures += result.ok and not parsed.ok  # a failed call is counted as a failure already
            answer = parsed.answer if parsed.ok or self.config.fallback == "first_line" else ""
            outputs.append(ReaderOutput(answer, result.text, parsed.ok, result.error))
        self.client.count_parse_failure(self.role, failures)
        return outputs


# ---- teacher ------------------------------------------------------------------------------------


@dataclass
class Demonstration:
    """A worked example for few-shot prompts (the shape of ../shared/data/cot_demos)."""

    question: str
    rationale: str
    answer: str
    paragraphs: list[tuple[str, str]] = field(default_factory=list)


def load_demonstrations(path: str | Path, limit: int | None = None) -> list[Demonstration]:
    """Read CoT demonstrations: JSON lines of ``question, rationale, answer,
    supporting_paragraphs[{title, supporting_snippet}]``."""
    demos = []
    path = Path(expand_path(str(path)))
    for index, line, raw in iter_json_records(path):
        try:
            demos.append(
                Demonstration(
                    question=raw["question"],
                    rationale=raw["rationale"],
                    answer=raw["answer"],
                    paragraphs=[
                        (p["title"], p.get("supporting_snippet") or p.get("text", ""))
                        for p in raw.get("supporting_paragraphs", [])
                    ],
                )
            )
        except (KeyError, TypeError, AttributeError) as err:
            raise DataFormatError(
                str(path), index, None, f"not a demonstration ({err!r})", line
            ) from None
        if limit is not None and len(demos) >= limit:
            break
    return demos


@dataclass
class TeacherConfig:
    """How the large LM is asked for a rationale and an answer.

    Args:
        system: system message ("" for none).
        template: the user message; ``{context}``, ``{question}``.
        reply_template: how a demonstration's reply is written; ``{rationale}``, ``{answer}``.
            Keep it in the form the parser reads ("... So the answer is: X").
        demonstrations: a JSON-lines file of worked examples for few-shot prompting
            (``None``: zero-shot chain of thought).
        num_demonstrations: how many of them to show (``None``: all).
        paragraph_template: one context paragraph; ``{title}``, ``{text}``.
        context: ``all`` paragraphs (the benchmark's setting) or ``gold_only`` (oracle: those
            holding a supporting fact).
        sampling: overrides the client's sampling (use temperature > 0 for several samples).
    """

    system: str = (
        "You answer multi-hop questions about the given paragraphs. Think step by step in a few "
        "sentences, citing the facts you use, then finish with 'So the answer is: <short answer>'."
    )
    template: str = "{context}\n\nQuestion: {question}"
    reply_template: str = "{rationale} So the answer is: {answer}"
    demonstrations: str | None = None
    num_demonstrations: int | None = None
    paragraph_template: str = "{title}: {text}"
    context: ContextSelection = "all"
    sampling: SamplingParams | None = None


@dataclass(frozen=True)
class TeacherOutput:
    rationale: str
    answer: str
    raw: str | None
    parsed: bool
    error: str | None = None


class Teacher:
    """Writes rationale + answer for questions (k samples each where asked)."""

    role = "teacher"

    def __init__(self, client: LLMClient, config: TeacherConfig | None = None) -> None:
        self.client = client
        self.config = config or TeacherConfig()
        self.demos = (
            load_demonstrations(self.config.demonstrations, self.config.num_demonstrations)
            if self.config.demonstrations
            else []
        )

    def messages(self, record: QARecord) -> Messages:
        cfg = self.config
        out: Messages = [{"role": "system", "content": cfg.system}] if cfg.system else []
        for demo in self.demos:
            context = format_context(demo.paragraphs, cfg.paragraph_template)
            out.append(
                {
                    "role": "user",
                    "content": cfg.template.format(context=context, question=demo.question),
                }
            )
            out.append(
                {
                    "role": "assistant",
                    "content": cfg.reply_template.format(
                        rationale=demo.rationale, answer=demo.answer
                    ),
                }
            )
        context = record_context(record, cfg.paragraph_template, cfg.context)
        out.append(
            {
                "role": "user",
                "content": cfg.template.format(context=context, question=record.question),
            }
        )
        return out

    def explain(self, records: Sequence[QARecord], samples: int = 1) -> list[list[TeacherOutput]]:
        """``samples`` rationale + answer pairs per record (sample ``j`` is cached on its own)."""
        requests = [
            LLMRequest(tuple(self.messages(record)), sample_index=j)
            for record in records
            for j in range(samples)
        ]
        results = self.client.complete(requests, role=self.role, sampling=self.config.sampling)
        outputs: list[list[TeacherOutput]] = []
        failures = 0
        for i in range(len(records)):
            group = []
            for result in results[i * samples : (i + 1) * samples]:
                parsed = parse_rationale_and_answer(result.text)
                failures += result.ok and not parsed.ok
                group.append(
                    TeacherOutput(
                        parsed.rationale, parsed.answer, result.text, parsed.ok, result.error
                    )
                )
            outputs.append(group)
        self.client.count_parse_failure(self.role, failures)
        return outputs


# ---- judge ---------------------------------------------------------------------------------------


@dataclass
class Aspect:
    """One quality the judge scores, with what it means."""

    name: str
    description: str


DEFAULT_ASPECTS: tuple[Aspect, ...] = (
    Aspect("factuality", "every statement is supported by the paragraphs; nothing is invented"),
    Aspect("relevance", "it is about the question and the facts needed to answer it"),
    Aspect("logicality", "each step follows from the previous ones and leads to an answer"),
    Aspect("consistency", "it contradicts neither itself nor the paragraphs"),
    Aspect("coherence", "it reads as one connected line of thought"),
    Aspect("fluency", "it is grammatical and well formed"),
    Aspect("naturalness", "it sounds like something a person would write"),
    Aspect("readability", "it is easy to read and understand"),
)


@dataclass
class JudgeConfig:
    """How the judge is asked to score rationales.

    Args:
        aspects: the qualities to score, each a name and a description.
        scale_min: lowest score.
        scale_max: highest score.
        fallback_score: score used for an aspect the reply does not give (or gives out of
            range); ``None`` for the middle of the scale, which biases no reward.
        system: system message ("" for none).
        template: the user message; ``{context}``, ``{question}``, ``{rationale}``,
            ``{aspects}`` (one line each), ``{scale_min}``, ``{scale_max}``, ``{keys}``.
        paragraph_template: one context paragraph; ``{title}``, ``{text}``.
        context: ``all`` paragraphs (the benchmark's setting) or ``gold_only`` (oracle: those
            holding a supporting fact).
        sampling: overrides the client's sampling.
    """

    aspects: list[Aspect] = field(default_factory=lambda: list(DEFAULT_ASPECTS))
    scale_min: float = 1.0
    scale_max: float = 5.0
    fallback_score: float | None = None
    system: str = "You are a strict grader of reasoning written to help answer multi-hop questions."
    template: str = (
        "{context}\n\nQuestion: {question}\nRationale: {rationale}\n\n"
        "Score the rationale from {scale_min} (worst) to {scale_max} (best) on each aspect:\n{aspects}\n"
        "Reply with one JSON object and nothing else, with the keys {keys}."
    )
    paragraph_template: str = "{title}: {text}"
    context: ContextSelection = "all"
    sampling: SamplingParams | None = None


@dataclass(frozen=True)
class JudgeOutput:
    scores: dict[str, float]  # every aspect, fallbacks filled in
    parsed: bool
    raw: str | None
    error: str | None = None


class Judge:
    """Scores rationales on named aspects."""

    role = "judge"

    def __init__(self, client: LLMClient, config: JudgeConfig | None = None) -> None:
        self.client = client
        self.config = config or JudgeConfig()
        if self.config.scale_min >= self.config.scale_max:
            raise ValueError("JudgeConfig.scale_min must be below scale_max")
        self.fallback = (
            self.config.fallback_score
            if self.config.fallback_score is not None
            else (self.config.scale_min + self.config.scale_max) / 2
        )

    def messages(self, record: QARecord, rationale: str) -> Messages:
        cfg = self.config
        names = [a.name for a in cfg.aspects]
        user = cfg.template.format(
            context=record_context(record, cfg.paragraph_template, cfg.context),
            question=record.question,
            rationale=rationale,
            aspects="\n".join(f"- {a.name}: {a.description}" for a in cfg.aspects),
            scale_min=_number(cfg.scale_min),
            scale_max=_number(cfg.scale_max),
            keys=", ".join(f'"{n}"' for n in names),
        )
        return _messages(cfg.system, user)

    def score(self, records: Sequence[QARecord], rationales: Sequence[str]) -> list[JudgeOutput]:
        """Aspect scores for each (record, rationale) pair."""
        requests = self._requests(records, rationales)
        return self._read(
            self.client.complete(requests, role=self.role, sampling=self.config.sampling)
        )

    async def ascore(
        self, records: Sequence[QARecord], rationales: Sequence[str]
    ) -> list[JudgeOutput]:
        """``score`` on the running event loop."""
        requests = self._requests(records, rationales)
        return self._read(
            await self.client.acomplete(requests, role=self.role, sampling=self.config.sampling)
        )

    def _requests(self, records: Sequence[QARecord], rationales: Sequence[str]) -> list[LLMRequest]:
        return [
            LLMRequest(tuple(self.messages(r, x))) for r, x in zip(records, rationales, strict=True)
        ]

    def _read(self, results: Sequence[LLMResult]) -> list[JudgeOutput]:
        cfg = self.config
        names = [a.name for a in cfg.aspects]
        outputs = []
        failures = 0
        for result in results:
            parsed = parse_aspect_scores(result.text, names, cfg.scale_min, cfg.scale_max)
            failures += result.ok and not parsed.ok
            scores = {n: (v if v is not None else self.fallback) for n, v in parsed.scores.items()}
            outputs.append(JudgeOutput(scores, parsed.ok, result.text, result.error))
        self.client.count_parse_failure(self.role, failures)
        return outputs


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
