"""The teacher: writes a rationale and an answer (zero-shot CoT, or few-shot from
demonstrations) -- stage 1's training data and the CoT prompting setting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lm_guided_cot.data.errors import DataFormatError
from lm_guided_cot.data.json_stream import iter_json_records
from lm_guided_cot.data.prompts import format_context
from lm_guided_cot.data.records import QARecord
from lm_guided_cot.errors import check_at_least
from lm_guided_cot.llm.client import LLMRequest, LLMResult
from lm_guided_cot.llm.parsing import parse_rationale_and_answer
from lm_guided_cot.paths import expand_path
from lm_guided_cot.roles.base import Messages, Role, RoleConfig


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
class TeacherConfig(RoleConfig):
    """How the large LM is asked for a rationale and an answer (``template``: ``{context}``,
    ``{question}``; use a ``sampling`` temperature > 0 for several samples).

    Args:
        reply_template: how a demonstration's reply is written; ``{rationale}``, ``{answer}``.
            Keep it in the form the parser reads ("... So the answer is: X").
        demonstrations: a JSON-lines file of worked examples for few-shot prompting
            (``None``: zero-shot chain of thought).
        num_demonstrations: how many of them to show, at least 1 (``None``: all; for
            zero-shot, leave ``demonstrations`` unset).
    """

    system: str = (
        "You answer multi-hop questions about the given paragraphs. Think step by step in a few "
        "sentences, citing the facts you use, then finish with 'So the answer is: <short answer>'."
    )
    reply_template: str = "{rationale} So the answer is: {answer}"
    demonstrations: str | None = None
    num_demonstrations: int | None = None

    def __post_init__(self) -> None:
        check_at_least("TeacherConfig.num_demonstrations", self.num_demonstrations, 1)


@dataclass(frozen=True)
class TeacherOutput:
    rationale: str
    answer: str
    raw: str | None
    parsed: bool
    error: str | None = None


class Teacher(Role[TeacherConfig, TeacherOutput]):
    """Writes rationale + answer for questions (k samples each where asked)."""

    role = "teacher"

    def __init__(self, client, config: TeacherConfig | None = None) -> None:
        super().__init__(client, config or TeacherConfig())
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
        out.append(
            {
                "role": "user",
                "content": cfg.template.format(
                    context=self.context(record), question=record.question
                ),
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
        flat = self._ask(requests, self._read)
        return [flat[i * samples : (i + 1) * samples] for i in range(len(records))]

    def _read(self, result: LLMResult) -> tuple[TeacherOutput, bool]:
        parsed = parse_rationale_and_answer(result.text)
        output = TeacherOutput(
            parsed.rationale, parsed.answer, result.text, parsed.ok, result.error
        )
        return output, parsed.ok
