"""The judge: scores a rationale on named aspects -- stage 2's rationale reward and the
evaluation's aspect column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.errors import ConfigurationError, check_between, check_finite
from lm_guided_cot.llm.client import LLMRequest, LLMResult
from lm_guided_cot.llm.parsing import parse_aspect_scores
from lm_guided_cot.roles.base import Messages, Role, RoleConfig, chat


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
class JudgeConfig(RoleConfig):
    """How the judge is asked to score rationales (``template``: ``{context}``, ``{question}``,
    ``{rationale}``, ``{aspects}`` (one line each), ``{scale_min}``, ``{scale_max}``, ``{keys}``).

    Args:
        aspects: the qualities to score, each a name and a description (at least one; names
            unique).
        scale_min: lowest score.
        scale_max: highest score (above ``scale_min``).
        fallback_score: score used for an aspect the reply does not give (or gives out of
            range), within the scale; ``None`` for the middle of the scale, which biases no
            reward.
    """

    system: str = "You are a strict grader of reasoning written to help answer multi-hop questions."
    template: str = (
        "{context}\n\nQuestion: {question}\nRationale: {rationale}\n\n"
        "Score the rationale from {scale_min} (worst) to {scale_max} (best) on each aspect:\n{aspects}\n"
        "Reply with one JSON object and nothing else, with the keys {keys}."
    )
    aspects: list[Aspect] = field(default_factory=lambda: list(DEFAULT_ASPECTS))
    scale_min: float = 1.0
    scale_max: float = 5.0
    fallback_score: float | None = None

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
        names = [a.name if isinstance(a, Aspect) else a["name"] for a in self.aspects]
        if not names:
            raise ConfigurationError("JudgeConfig.aspects must name at least one aspect")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigurationError(f"JudgeConfig.aspects repeats the names {repeated}")


@dataclass(frozen=True)
class JudgeOutput:
    scores: dict[str, float]  # every aspect, fallbacks filled in
    parsed: bool
    raw: str | None
    error: str | None = None


class Judge(Role[JudgeConfig, JudgeOutput]):
    """Scores rationales on named aspects."""

    role = "judge"

    def __init__(self, client, config: JudgeConfig | None = None) -> None:
        super().__init__(client, config or JudgeConfig())
        self.fallback = (
            self.config.fallback_score
            if self.config.fallback_score is not None
            else (self.config.scale_min + self.config.scale_max) / 2
        )

    def messages(self, record: QARecord, rationale: str) -> Messages:
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
        return chat(cfg.system, user)

    def score(self, records: Sequence[QARecord], rationales: Sequence[str]) -> list[JudgeOutput]:
        """Aspect scores for each (record, rationale) pair."""
        return self._ask(self._requests(records, rationales), self._read)

    async def ascore(
        self, records: Sequence[QARecord], rationales: Sequence[str]
    ) -> list[JudgeOutput]:
        """``score`` on the running event loop."""
        return await self._aask(self._requests(records, rationales), self._read)

    def _requests(self, records: Sequence[QARecord], rationales: Sequence[str]) -> list[LLMRequest]:
        return [
            LLMRequest(tuple(self.messages(r, x))) for r, x in zip(records, rationales, strict=True)
        ]

    def _read(self, result: LLMResult) -> tuple[JudgeOutput, bool]:
        cfg = self.config
        names = [a.name for a in cfg.aspects]
        parsed = parse_aspect_scores(result.text, names, cfg.scale_min, cfg.scale_max)
        scores = {n: (v if v is not None else self.fallback) for n, v in parsed.scores.items()}
        return JudgeOutput(scores, parsed.ok, result.text, result.error), parsed.ok


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
