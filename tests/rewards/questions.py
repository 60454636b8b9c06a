"""The three questions the reward tests score, each with one gold paragraph for the judge."""

from __future__ import annotations

from lm_guided_cot.data.records import Paragraph, QARecord, SupportingFact


def _record(rid: str, answer: str) -> QARecord:
    return QARecord(
        id=rid,
        question=f"question {rid}?",
        answer=answer,
        paragraphs=(Paragraph("T", ("Some text.",)),),
        supporting_facts=(SupportingFact("T", 0),),  # the judge reads the gold paragraph
    )


RECORDS = [_record("a", "New York"), _record("b", "Paris"), _record("c", "1922")]
