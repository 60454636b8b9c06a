"""A judge's two reference rationales for one question: the oracle (the gold supporting
sentences) and a decoy of as many sentences from the paragraphs that hold no supporting fact.
A judge that cannot rate the oracle above the decoy cannot tell a useful rationale from
fluent, on-topic filler."""

from __future__ import annotations

import random

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.errors import InputError


def decoy_rationale(record: QARecord, seed: int = 0) -> str:
    """As many sentences as the oracle has, drawn without replacement from the paragraphs
    that hold no supporting fact and joined in their context order (all of them where there
    are fewer). The draw depends on ``seed`` and the record's id only, so a question's decoy
    is the same whichever other questions are checked with it."""
    gold = set(record.gold_titles)
    pool = [
        text
        for p in record.paragraphs
        if p.title not in gold
        for text in (s.strip() for s in p.sentences)
        if text
    ]
    if not pool:
        raise InputError(
            f"record {record.id!r}: every paragraph holds a supporting fact, so there is no "
            "sentence to build a decoy rationale from"
        )
    wanted = min(len(record.gold_sentences), len(pool))
    # a string seed is hashed by SHA-512 (random.seed version 2): stable across processes
    chosen = sorted(random.Random(f"{seed}:{record.id}").sample(range(len(pool)), wanted))
    return " ".join(pool[i] for i in chosen)
