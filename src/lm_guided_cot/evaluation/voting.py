"""Self-consistency's majority vote over answers, by the official normalisation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from lm_guided_cot.metrics import normalize_answer


@dataclass(frozen=True)
class Vote:
    """The winner of a vote: its answer as first written, its index, and its votes."""

    answer: str
    index: int
    votes: int


def majority_vote(answers: Sequence[str]) -> Vote:
    """The answer most samples agree on after normalisation (case, punctuation, articles).

    Ties go to the answer that occurred first. Answers that normalise to nothing (a failed
    call, an unreadable reply) do not vote unless every answer is empty: a sample that said
    nothing should not outvote one that answered.
    """
    if not answers:
        raise ValueError("majority_vote needs at least one answer")
    keys = [normalize_answer(a) for a in answers]
    counts = Counter(k for k in keys if k)
    if not counts:
        return Vote(answers[0], 0, len(answers))
    best = max(counts.values())
    # keys are visited in order of first occurrence, so the first key with the top count wins
    index = next(i for i, k in enumerate(keys) if k and counts[k] == best)
    return Vote(answers[index], index, best)
