"""The judge: scores a rationale on named aspects -- stage 2's rationale reward and the
evaluation's aspect columns.

Three ways to ask (``JudgeConfig.protocol``). A small judge's 1-to-5 scores, even as JSON
it is forced to write, rate a decoy as high as the right facts; the probability it gives
"yes" to a yes/no question does tell them apart (DESIGN.md, "Facts measured here"). So
``logprobs`` asks one yes/no question per aspect and scores the expected value under the
first token's probabilities; ``json_schema`` asks for every aspect in one JSON object whose
shape ``response_format`` enforces; ``text`` asks the same and reads the reply leniently.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.errors import (
    ConfigurationError,
    InputError,
    check_between,
    check_finite,
)
from lm_guided_cot.llm.calls import MAX_TOP_LOGPROBS
from lm_guided_cot.llm.client import LLMRequest, LLMResult
from lm_guided_cot.llm.config import SamplingParams
from lm_guided_cot.llm.parsing import parse_aspect_scores, yes_probability
from lm_guided_cot.roles.base import ContextSelection, Messages, Role, RoleConfig, chat

log = logging.getLogger(__name__)

JudgeProtocol = Literal["auto", "logprobs", "json_schema", "text"]
PROTOCOLS: tuple[str, ...] = ("logprobs", "json_schema", "text")  # auto tries them in this order


@dataclass
class Aspect:
    """One quality the judge scores: what it means (the 1-to-5 prompt) and a yes/no question
    (the ``logprobs`` protocol; ``None``: asked from the description)."""

    name: str
    description: str
    question: str | None = None

    @property
    def yes_no_question(self) -> str:
        return self.question or f"Is this true of the rationale: {self.description}?"


DEFAULT_ASPECTS: tuple[Aspect, ...] = (
    Aspect(
        "factuality",
        "every statement is supported by the paragraphs; nothing is invented",
        "Is every statement of the rationale supported by the paragraphs, with nothing invented?",
    ),
    Aspect(
        "relevance",
        "it is about the question and the facts needed to answer it",
        # the question that told the gold sentences from a decoy (DESIGN.md)
        "Does the rationale state the facts from the paragraphs needed to answer the question?",
    ),
    Aspect(
        "logicality",
        "each step follows from the previous ones and leads to an answer",
        "Does each step of the rationale follow from the previous ones and lead to an answer?",
    ),
    Aspect(
        "consistency",
        "it contradicts neither itself nor the paragraphs",
        "Is the rationale free of contradictions, with itself and with the paragraphs?",
    ),
    Aspect(
        "coherence",
        "it reads as one connected line of thought",
        "Does the rationale read as one connected line of thought?",
    ),
    Aspect(
        "fluency",
        "it is grammatical and well formed",
        "Is the rationale grammatical and well formed?",
    ),
    Aspect(
        "naturalness",
        "it sounds like something a person would write",
        "Does the rationale sound like something a person would write?",
    ),
    Aspect(
        "readability",
        "it is easy to read and understand",
        "Is the rationale easy to read and understand?",
    ),
)


@dataclass
class JudgeConfig(RoleConfig):
    """How the judge is asked to score rationales (``template``, for ``json_schema`` and
    ``text``: ``{context}``, ``{question}``, ``{rationale}``, ``{aspects}`` (one line each),
    ``{scale_min}``, ``{scale_max}``, ``{keys}``; ``question_template``, for ``logprobs``:
    ``{context}``, ``{question}``, ``{rationale}``, ``{aspect_question}``).

    Args:
        aspects: the qualities to score, each a name, a description and optionally a yes/no
            question (at least one; names unique).
        scale_min: lowest score.
        scale_max: highest score (above ``scale_min``).
        fallback_score: score used for an aspect the reply does not give (or gives out of
            range), within the scale; ``None`` for the middle of the scale, which biases no
            reward.
        protocol: how scores are asked for. ``logprobs``: one yes/no question per aspect
            (greedy, one token, ``top_logprobs`` asked), scored ``scale_min + P(yes) *
            (scale_max - scale_min)``, P(yes) summed over the yes and no variants among the
            first token's alternatives; a reply without them gets the fallback.
            ``json_schema``: one reply for all aspects, a JSON object of in-scale numbers
            enforced by ``response_format``. ``text``: the same prompt, read leniently.
            ``auto``: asks the first question with log-probabilities; a reply that carries
            them settles on ``logprobs``; one without (or a failed call) tries ``json_schema``
            the same way, and a failed call there settles on ``text``. Decided once per judge
            (logged; ``Judge.protocol``).
        top_logprobs: alternatives asked for the first token (``logprobs``; 1 to 20).
        question_template: the yes/no prompt of the ``logprobs`` protocol. The aspect's
            question comes last, so the prompts of one rationale share their prefix (a
            llama.cpp server reuses its KV cache).
        context: the paragraphs the judge reads: ``gold_only`` (those holding a supporting
            fact: a short prompt; a record without supporting facts is refused), ``all`` or
            ``none``.
    """

    system: str = "You are a strict grader of reasoning written to help answer multi-hop questions."
    template: str = (
        "{context}\n\nQuestion: {question}\nRationale: {rationale}\n\n"
        "Score the rationale from {scale_min} (worst) to {scale_max} (best) on each aspect:\n{aspects}\n"
        "Reply with one JSON object and nothing else, with the keys {keys}."
    )
    question_template: str = (
        "{context}\n\nQuestion: {question}\nRationale: {rationale}\n\n"
        "{aspect_question} Answer yes or no."
    )
    context: ContextSelection = "gold_only"
    aspects: list[Aspect] = field(default_factory=lambda: list(DEFAULT_ASPECTS))
    scale_min: float = 1.0
    scale_max: float = 5.0
    fallback_score: float | None = None
    protocol: JudgeProtocol = "auto"
    top_logprobs: int = 10

    def __post_init__(self) -> None:
        check_finite("JudgeConfig.scale_min", self.scale_min)
        check_finite("JudgeConfig.scale_max", self.scale_max)
        if not self.scale_min < self.scale_max:
            raise ConfigurationError(
                f"JudgeConfig.scale_min must be below scale_max, got {self.scale_min} and "
                f"{self.scale_max}"
            )
        check_between(
            "JudgeConfig.fallback_score", self.fallback_score, self.scale_min, self.scale_max
        )
        check_between("JudgeConfig.top_logprobs", self.top_logprobs, 1, MAX_TOP_LOGPROBS)
        if self.protocol not in ("auto", *PROTOCOLS):
            raise ConfigurationError(
                f"JudgeConfig.protocol must be one of auto, {', '.join(PROTOCOLS)}; "
                f"got {self.protocol!r}"
            )
        self.aspects = [_aspect(i, a) for i, a in enumerate(self.aspects)]
        names = [a.name for a in self.aspects]
        if not names:
            raise ConfigurationError("JudgeConfig.aspects must name at least one aspect")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigurationError(f"JudgeConfig.aspects repeats the names {repeated}")


@dataclass(frozen=True)
class JudgeOutput:
    """The scores of one rationale: every aspect, fallbacks filled in; ``parsed`` when every
    aspect was read; ``raw`` the reply (``logprobs``: ``{aspect: reply}`` as JSON); how it
    was asked (``protocol``), in how many calls, with how many prompt tokens."""

    scores: dict[str, float]
    parsed: bool
    raw: str | None
    error: str | None = None
    protocol: str = "text"
    calls: int = 1
    prompt_tokens: int = 0


def aspect_schema(names: Sequence[str], low: float, high: float) -> dict[str, Any]:
    """The JSON schema of a reply that scores every aspect within ``[low, high]`` (integers
    when both ends are)."""
    kind = "integer" if float(low).is_integer() and float(high).is_integer() else "number"
    bound = int if kind == "integer" else float
    return {
        "type": "object",
        "properties": {
            name: {"type": kind, "minimum": bound(low), "maximum": bound(high)} for name in names
        },
        "required": list(names),
        "additionalProperties": False,
    }


def check_judge_records(config: JudgeConfig, records: Sequence[QARecord]) -> None:
    """Refuse records the judge cannot read (checked before any call): with ``context:
    gold_only``, those without supporting facts."""
    if config.context != "gold_only":
        return
    lacking = [r.id for r in records if not r.gold_titles]
    if lacking:
        raise InputError(
            f"the judge reads the gold paragraphs (judge.context: gold_only), but "
            f"{len(lacking)} of the {len(records)} questions have no supporting facts "
            f"(first ids: {', '.join(lacking[:5])}); set judge.context: all (or none)"
        )


def judge_counts(outputs: Sequence[JudgeOutput]) -> dict[str, float]:
    """Counters of judged rationales, each a sum (so batches and ranks add up): ``parsed``,
    ``unparsed`` (fallbacks, failed calls included), ``protocol/<name>`` (rationales asked
    that way), ``calls`` and their ``prompt_tokens``."""
    counts = {
        "parsed": float(sum(o.parsed for o in outputs)),
        "unparsed": float(sum(not o.parsed for o in outputs)),
        "calls": float(sum(o.calls for o in outputs)),
        "prompt_tokens": float(sum(o.prompt_tokens for o in outputs)),
    }
    for protocol in PROTOCOLS:
        counts[f"protocol/{protocol}"] = float(sum(o.protocol == protocol for o in outputs))
    return counts


class Judge(Role[JudgeConfig, JudgeOutput]):
    """Scores rationales on named aspects, by ``config.protocol``."""

    role = "judge"

    def __init__(self, client, config: JudgeConfig | None = None) -> None:
        super().__init__(client, config or JudgeConfig())
        self.fallback = (
            self.config.fallback_score
            if self.config.fallback_score is not None
            else (self.config.scale_min + self.config.scale_max) / 2
        )
        # auto's choice, once made: the protocol and why
        self.protocol: str | None = None if self.config.protocol == "auto" else self.config.protocol
        self.protocol_reason = "configured" if self.protocol else "not decided yet"

    # ---- prompts ---------------------------------------------------------------------------

    def check_records(self, records: Sequence[QARecord]) -> None:
        """``check_judge_records`` for this judge's config."""
        check_judge_records(self.config, records)

    def context(self, record: QARecord) -> str:
        self.check_records([record])
        return super().context(record)

    def messages(self, record: QARecord, rationale: str) -> Messages:
        """The prompt that asks for every aspect's score (``json_schema``, ``text``)."""
        cfg = self.config
        user = cfg.template.format(
            context=self.context(record),
            question=record.question,
            rationale=rationale,
            aspects="\n".join(f"- {a.name}: {a.description}" for a in cfg.aspects),
            scale_min=_number(cfg.scale_min),
            scale_max=_number(cfg.scale_max),
            keys=", ".join(f'"{a.name}"' for a in cfg.aspects),
        )
        return chat(cfg.system, user.strip())

    def question_messages(self, record: QARecord, rationale: str, aspect: Aspect) -> Messages:
        """The yes/no prompt for one aspect (``logprobs``)."""
        cfg = self.config
        user = cfg.question_template.format(
            context=self.context(record),
            question=record.question,
            rationale=rationale,
            aspect_question=aspect.yes_no_question,
        )
        return chat(cfg.system, user.strip())

    # ---- scoring ---------------------------------------------------------------------------

    def score(self, records: Sequence[QARecord], rationales: Sequence[str]) -> list[JudgeOutput]:
        """Aspect scores for each (record, rationale) pair."""
        return self.client.run(self.ascore(records, rationales))

    async def ascore(
        self, records: Sequence[QARecord], rationales: Sequence[str]
    ) -> list[JudgeOutput]:
        """``score`` on the running event loop."""
        if len(records) != len(rationales):
            raise ValueError(f"{len(records)} records but {len(rationales)} rationales")
        if not records:
            return []
        protocol = self.protocol or await self._choose(records[0], rationales[0])
        if protocol == "logprobs":
            outputs = await self._ask_yes_no(records, rationales)
        else:
            outputs = await self._ask_scores(records, rationales, protocol == "json_schema")
        # failed calls are counted as failures already
        self.client.count_parse_failure(
            self.role, sum(o.error is None and not o.parsed for o in outputs)
        )
        return outputs

    async def _choose(self, record: QARecord, rationale: str) -> str:
        """``auto``: the first protocol whose probe call gives what it needs (see
        ``JudgeConfig.protocol``). The probes' replies are cached like any other."""
        aspect = self.config.aspects[0]
        (reply,) = await self.client.acomplete(
            [LLMRequest(tuple(self.question_messages(record, rationale, aspect)))],
            role=self.role,
            sampling=self._yes_no_sampling(),
            params=self._yes_no_params(),
        )
        if reply.ok and reply.top_logprobs:
            return self._settle("logprobs", "the endpoint returns top_logprobs")
        why = "a reply without top_logprobs" if reply.ok else f"a failed call ({reply.error})"
        (reply,) = await self.client.acomplete(
            [LLMRequest(tuple(self.messages(record, rationale)))],
            role=self.role,
            sampling=self.config.sampling,
            params=self._schema_params(),
        )
        if reply.ok:
            return self._settle("json_schema", f"logprobs gave {why}")
        return self._settle(
            "text", f"logprobs gave {why}; json_schema gave a failed call ({reply.error})"
        )

    def _settle(self, protocol: str, reason: str) -> str:
        self.protocol, self.protocol_reason = protocol, reason
        log.info("judge protocol: %s (auto: %s)", protocol, reason)
        return protocol

    def _yes_no_sampling(self) -> SamplingParams:
        base = self.config.sampling or self.client.config.sampling
        # one greedy token: its alternatives are the answer
        return dataclasses.replace(base, temperature=0.0, top_p=None, max_tokens=1, stop=None)

    def _yes_no_params(self) -> dict[str, Any]:
        return {"logprobs": True, "top_logprobs": self.config.top_logprobs}

    def _schema_params(self) -> dict[str, Any]:
        cfg = self.config
        schema = aspect_schema([a.name for a in cfg.aspects], cfg.scale_min, cfg.scale_max)
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "aspect_scores", "strict": True, "schema": schema},
            }
        }

    async def _ask_yes_no(
        self, records: Sequence[QARecord], rationales: Sequence[str]
    ) -> list[JudgeOutput]:
        aspects = self.config.aspects
        # a rationale's questions side by side: the client sends prompts that share a prefix
        # one after another
        requests = [
            LLMRequest(tuple(self.question_messages(r, x, a)))
            for r, x in zip(records, rationales, strict=True)
            for a in aspects
        ]
        results = await self.client.acomplete(
            requests, self.role, self._yes_no_sampling(), self._yes_no_params()
        )
        n = len(aspects)
        return [self._read_yes_no(results[i : i + n]) for i in range(0, len(results), n)]

    def _read_yes_no(self, results: Sequence[LLMResult]) -> JudgeOutput:
        cfg = self.config
        scores, replies, parsed = {}, {}, True
        for aspect, result in zip(cfg.aspects, results, strict=True):
            p_yes = yes_probability(result.top_logprobs) if result.ok else None
            parsed = parsed and p_yes is not None
            scores[aspect.name] = (
                self.fallback
                if p_yes is None
                else cfg.scale_min + p_yes * (cfg.scale_max - cfg.scale_min)
            )
            replies[aspect.name] = result.text
        return JudgeOutput(
            scores,
            parsed,
            json.dumps(replies, ensure_ascii=False),
            next((r.error for r in results if r.error), None),
            "logprobs",
            len(results),
            sum(r.prompt_tokens for r in results),
        )

    async def _ask_scores(
        self, records: Sequence[QARecord], rationales: Sequence[str], structured: bool
    ) -> list[JudgeOutput]:
        requests = [
            LLMRequest(tuple(self.messages(r, x))) for r, x in zip(records, rationales, strict=True)
        ]
        params = self._schema_params() if structured else None
        results = await self.client.acomplete(requests, self.role, self.config.sampling, params)
        protocol = "json_schema" if structured else "text"
        return [self._read_scores(result, protocol) for result in results]

    def _read_scores(self, result: LLMResult, protocol: str) -> JudgeOutput:
        cfg = self.config
        names = [a.name for a in cfg.aspects]
        parsed = parse_aspect_scores(result.text, names, cfg.scale_min, cfg.scale_max)
        scores = {n: (v if v is not None else self.fallback) for n, v in parsed.scores.items()}
        return JudgeOutput(
            scores, parsed.ok, result.text, result.error, protocol, 1, result.prompt_tokens
        )


def _aspect(index: int, value: Aspect | dict[str, Any]) -> Aspect:
    """An aspect as written in a config (a mapping) or already made."""
    if isinstance(value, Aspect):
        return value
    try:
        return Aspect(**value)
    except TypeError:
        raise ConfigurationError(
            f"JudgeConfig.aspects[{index}] must have a name, a description and optionally a "
            f"question; got {value!r}"
        ) from None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
