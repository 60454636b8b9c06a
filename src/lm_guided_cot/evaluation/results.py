"""Per-question results of one evaluation setting, their means, and the files they are saved as.

Each setting yields one ``ExampleResult`` per question, in the split's order; the settings of
one evaluation therefore pair up question by question, which the bootstrap needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.files import write_atomically
from lm_guided_cot.llm.usage import RoleUsage
from lm_guided_cot.metrics import best_inclusion, score_answer

# The usage counters a setting reports (RoleUsage fields, summed over its roles).
USAGE_COUNTERS = (
    "requests",
    "replies",
    "failures",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost",
)


@dataclass
class ExampleResult:
    """What one setting did on one question, with its official scores.

    ``rationales`` holds the rationale(s) the large LM answered with (none for standard
    prompting, the large LM's own for CoT, k for self-consistency); ``answers`` the answer
    given with each, and ``answer`` the final one (the vote's winner under self-consistency).
    ``aspects`` are the judge's mean scores over the rationales; ``judge_unparsed`` counts the
    judge replies that could not be read (their aspects are the judge's fallback score).
    """

    id: str
    question: str
    gold: list[str]
    answer: str
    rationales: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    votes: int | None = None
    em: float = 0.0
    f1: float = 0.0
    inclusion: float = 0.0
    aspects: dict[str, float] = field(default_factory=dict)
    judge_unparsed: int = 0
    errors: list[str] = field(default_factory=list)

    @classmethod
    def scored(cls, record: QARecord, answer: str, **fields) -> ExampleResult:
        """A result for ``record`` scored by the official rules (answer and aliases)."""
        gold = list(record.gold_answers)
        score = score_answer(answer, gold)
        return cls(
            id=record.id,
            question=record.question,
            gold=gold,
            answer=answer,
            em=score.em,
            f1=score.f1,
            inclusion=best_inclusion(answer, gold),
            **fields,
        )


@dataclass
class SettingResult:
    """One row of the comparison table: a setting's per-question results and its costs.

    ``usage`` counts the large-LM calls the setting needed to answer (reader, or the CoT
    prompt); ``judge_usage`` the calls that scored its rationales, kept apart because they
    measure the rationales rather than being part of the method; ``judge`` the judge's
    counters over them (``lm_guided_cot.roles.judge_counts``: parsed, unparsed, protocol,
    calls, prompt tokens).
    """

    name: str
    examples: list[ExampleResult]
    seconds: float
    usage: dict[str, float] = field(default_factory=dict)
    judge_usage: dict[str, float] = field(default_factory=dict)
    judge: dict[str, float] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The setting's name as a file and TensorBoard tag name."""
        return slugify(self.name)

    def metrics(self) -> dict[str, float]:
        """Mean EM, F1 and inclusion; mean rationale length in words where there are rationales;
        mean aspect scores (each and overall) where judged."""
        n = len(self.examples)
        out = {
            "n": float(n),
            "answer_em": sum(e.em for e in self.examples) / max(n, 1),
            "answer_f1": sum(e.f1 for e in self.examples) / max(n, 1),
            "answer_inclusion": sum(e.inclusion for e in self.examples) / max(n, 1),
        }
        lengths = [len(x.split()) for e in self.examples for x in e.rationales]
        if lengths:
            out["rationale_words"] = sum(lengths) / len(lengths)
        judged = [e.aspects for e in self.examples if e.aspects]
        if judged:
            for name in judged[0]:
                out[f"aspect/{name}"] = sum(a[name] for a in judged) / len(judged)
            out["aspect/mean"] = sum(sum(a.values()) / len(a) for a in judged) / len(judged)
            replies = sum(len(e.rationales) for e in self.examples if e.aspects)
            unparsed = sum(e.judge_unparsed for e in self.examples)
            out["aspect/parsed"] = 1 - unparsed / max(replies, 1)
        return out

    def column(self, metric: str) -> list[float]:
        """Per-question scores of ``em``, ``f1`` or ``inclusion`` (for paired statistics)."""
        return [float(getattr(e, metric)) for e in self.examples]


def slugify(name: str) -> str:
    """``"LM-guided (KD+RL)"`` -> ``"lm_guided_kd_rl"``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "setting"


def usage_delta(
    before: Mapping[str, RoleUsage], after: Mapping[str, RoleUsage], roles: Sequence[str]
) -> dict[str, float]:
    """The counters ``roles`` added between two ``LLMClient.role_usages()`` snapshots."""
    added = RoleUsage()
    for role in roles:
        added = added + (after.get(role, RoleUsage()) - before.get(role, RoleUsage()))
    return {counter: float(getattr(added, counter)) for counter in USAGE_COUNTERS}


def official_predictions(examples: Sequence[ExampleResult]) -> dict[str, dict]:
    """The official prediction-file layout: ``{"answer": {id: answer}}`` (no ``sp``: the
    settings predict answers only)."""
    return {"answer": {e.id: e.answer for e in examples}}


def write_setting_files(folder: str | Path, result: SettingResult) -> dict[str, Path]:
    """Write ``examples/<slug>.jsonl`` (one line per question) and ``predictions/<slug>.json``
    (official layout) under ``folder``; each file appears whole or not at all."""
    folder = Path(folder)
    examples = folder / "examples" / f"{result.slug}.jsonl"
    predictions = folder / "predictions" / f"{result.slug}.json"
    write_atomically(
        examples,
        "".join(json.dumps(asdict(e), ensure_ascii=False) + "\n" for e in result.examples),
    )
    write_atomically(predictions, json.dumps(official_predictions(result.examples), indent=1))
    return {"examples": examples, "predictions": predictions}
