"""The one typed record every reader produces, and its Arrow schema.

Readers store records as Arrow rows (``FEATURES``) so that a 90k-question training set is
memory-mapped instead of held as Python objects; ``QARecord.from_row`` turns one row back
into a typed object where code wants one. ``FEATURES`` is built on first use: ``datasets`` is
heavy, and scoring a prediction file reads its gold records without it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from lm_guided_cot.metrics.scores import GoldExample, evidence_forms

if TYPE_CHECKING:
    import datasets

HOTPOTQA = "hotpotqa"
TWOWIKI = "2wikimultihopqa"
SOURCES = (HOTPOTQA, TWOWIKI)


class Paragraph(NamedTuple):
    """One context paragraph: its Wikipedia title and its sentences (as the file splits them)."""

    title: str
    sentences: tuple[str, ...]

    @property
    def text(self) -> str:
        # HotpotQA sentences carry their own leading spaces; 2Wiki's do not.
        return "".join(
            s if i == 0 or s[:1].isspace() else " " + s for i, s in enumerate(self.sentences)
        )


class SupportingFact(NamedTuple):
    """A gold supporting sentence: paragraph title and sentence index within that paragraph."""

    title: str
    sent_id: int


class Evidence(NamedTuple):
    """A 2Wiki gold evidence triple, with the aliases ``id_aliases.json`` gives its subject and
    object through the record's ``evidences_id`` (empty without an alias file)."""

    subject: str
    relation: str
    object: str
    subject_aliases: tuple[str, ...] = ()
    object_aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class QARecord:
    """A multi-hop QA example as HotpotQA and 2WikiMultiHopQA both describe it.

    ``answer_aliases`` holds further accepted answers (2Wiki's aliases); scoring takes the best
    match over ``answer`` and the aliases. ``type`` and ``level`` are empty when the source has
    none (2Wiki has no level). ``evidences`` are 2Wiki's gold triples (none for HotpotQA).
    """

    id: str
    question: str
    answer: str
    paragraphs: tuple[Paragraph, ...]
    supporting_facts: tuple[SupportingFact, ...] = ()
    answer_aliases: tuple[str, ...] = ()
    type: str = ""
    level: str = ""
    source: str = HOTPOTQA
    evidences: tuple[Evidence, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def gold_answers(self) -> list[str]:
        """The answer followed by its aliases, without duplicates."""
        return list(dict.fromkeys((self.answer, *self.answer_aliases)))

    @property
    def gold_titles(self) -> list[str]:
        """Titles of the paragraphs that hold a supporting fact, in first-mention order."""
        return list(dict.fromkeys(f.title for f in self.supporting_facts))

    @property
    def gold_sentences(self) -> list[str]:
        """The gold supporting sentences in the order the record lists them, stripped, empty
        ones left out. A supporting fact pointing past its paragraph's last sentence (a known
        quirk of a few HotpotQA records) contributes nothing (``facts_outside_paragraphs``
        names it)."""
        sentences = {p.title: p.sentences for p in self.paragraphs}
        texts = [
            sentences[f.title][f.sent_id].strip()
            for f in self.supporting_facts
            if 0 <= f.sent_id < len(sentences.get(f.title, ()))
        ]
        return [t for t in texts if t]

    @property
    def gold_rationale(self) -> str:
        """``gold_sentences`` joined by spaces: the oracle guide of the evaluation and the
        ``supporting_facts`` source of stage-1 targets."""
        return " ".join(self.gold_sentences)

    @property
    def facts_outside_paragraphs(self) -> list[str]:
        """The supporting facts that name no sentence of their paragraph, in words (what
        ``gold_rationale`` leaves out), for a report naming the record."""
        sentences = {p.title: len(p.sentences) for p in self.paragraphs}
        return [
            f"supporting_facts[{i}] [{f.title!r}, {f.sent_id}]: paragraph {f.title!r} has "
            f"{sentences.get(f.title, 0)} sentence(s)"
            for i, f in enumerate(self.supporting_facts)
            if not 0 <= f.sent_id < sentences.get(f.title, 0)
        ]

    def gold_example(self) -> GoldExample:
        """What the official scorers need: answer and aliases, supporting facts, evidence forms."""
        return GoldExample(
            self.id,
            self.gold_answers,
            [(f.title, f.sent_id) for f in self.supporting_facts],
            [
                evidence_forms(e.subject, e.relation, e.object, e.subject_aliases, e.object_aliases)
                for e in self.evidences
            ],
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> QARecord:
        """Build a record from one row of a dataset with ``FEATURES``."""
        return cls(
            id=row["id"],
            question=row["question"],
            answer=row["answer"],
            paragraphs=tuple(
                Paragraph(p["title"], tuple(p["sentences"])) for p in row["paragraphs"]
            ),
            supporting_facts=tuple(
                SupportingFact(f["title"], int(f["sent_id"])) for f in row["supporting_facts"]
            ),
            answer_aliases=tuple(row.get("answer_aliases") or ()),
            type=row.get("type") or "",
            level=row.get("level") or "",
            source=row.get("source") or HOTPOTQA,
            evidences=tuple(
                Evidence(
                    e["subject"],
                    e["relation"],
                    e["object"],
                    tuple(e["subject_aliases"]),
                    tuple(e["object_aliases"]),
                )
                for e in row.get("evidences") or ()
            ),
        )

    def to_row(self) -> dict[str, Any]:
        """The Arrow row for this record (inverse of ``from_row``)."""
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "answer_aliases": list(self.answer_aliases),
            "paragraphs": [
                {"title": p.title, "sentences": list(p.sentences)} for p in self.paragraphs
            ],
            "supporting_facts": [
                {"title": f.title, "sent_id": f.sent_id} for f in self.supporting_facts
            ],
            "type": self.type,
            "level": self.level,
            "source": self.source,
            "evidences": [
                {
                    "subject": e.subject,
                    "relation": e.relation,
                    "object": e.object,
                    "subject_aliases": list(e.subject_aliases),
                    "object_aliases": list(e.object_aliases),
                }
                for e in self.evidences
            ],
        }


@functools.cache
def arrow_features() -> datasets.Features:
    """The Arrow schema of a record's row (``to_row``), as ``FEATURES`` gives it."""
    import datasets

    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "answer_aliases": datasets.List(datasets.Value("string")),
            "paragraphs": datasets.List(
                {
                    "title": datasets.Value("string"),
                    "sentences": datasets.List(datasets.Value("string")),
                }
            ),
            "supporting_facts": datasets.List(
                {"title": datasets.Value("string"), "sent_id": datasets.Value("int32")}
            ),
            "type": datasets.Value("string"),
            "level": datasets.Value("string"),
            "source": datasets.Value("string"),
            "evidences": datasets.List(
                {
                    "subject": datasets.Value("string"),
                    "relation": datasets.Value("string"),
                    "object": datasets.Value("string"),
                    "subject_aliases": datasets.List(datasets.Value("string")),
                    "object_aliases": datasets.List(datasets.Value("string")),
                }
            ),
        }
    )


def __getattr__(name: str) -> Any:
    # ``FEATURES`` stays a module attribute, built (and ``datasets`` imported) on first use.
    if name == "FEATURES":
        return arrow_features()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
