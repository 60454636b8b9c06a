"""Reading the large LM's replies: answers, rationale + answer, aspect scores, a yes/no P(yes).

Pure functions. Each returns what it found and whether parsing succeeded; the roles count
failures and apply the configured fallback, so an odd reply never stops a run.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

# "So the answer is: X", "the answer is X", "Answer: X", "Final answer - X" (last one wins).
_ANSWER_MARKERS = re.compile(
    r"\b(?:final\s+answer\s*(?:is)?\s*[:\-–]?|(?:the\s+)?answer\s+is\s*:?|answer\s*[:\-–])\s*",
    re.IGNORECASE,
)
_TRAILING = " \t\n\"'`*.。"


def _clean_answer(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = line.strip().strip(_TRAILING).strip()
    return line


@dataclass(frozen=True)
class ParsedAnswer:
    answer: str
    ok: bool


def parse_answer(text: str | None) -> ParsedAnswer:
    """The answer after the last answer marker; without one, a one-line reply is the answer.

    A multi-line reply with no marker is a failure (its first line is returned as a guess).
    """
    if not text or not text.strip():
        return ParsedAnswer("", False)
    matches = list(_ANSWER_MARKERS.finditer(text))
    for match in reversed(matches):
        answer = _clean_answer(text[match.end() :])
        if answer:
            return ParsedAnswer(answer, True)
    if matches:  # a marker with nothing after it
        return ParsedAnswer("", False)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if len(lines) == 1:
        return ParsedAnswer(_clean_answer(lines[0]), True)
    return ParsedAnswer(_clean_answer(lines[0]), False)


@dataclass(frozen=True)
class ParsedRationale:
    rationale: str
    answer: str
    ok: bool


def parse_rationale_and_answer(text: str | None) -> ParsedRationale:
    """Split a chain-of-thought reply into the reasoning and the final answer.

    The answer is what follows the last answer marker; the rationale is everything before
    that marker's sentence (e.g. without "So the answer is"). No marker: a failure, with the
    whole text as rationale and an empty answer.
    """
    if not text or not text.strip():
        return ParsedRationale("", "", False)
    matches = list(_ANSWER_MARKERS.finditer(text))
    for match in reversed(matches):
        answer = _clean_answer(text[match.end() :])
        if not answer:
            continue
        head = text[: match.start()]
        # drop a dangling lead-in such as "So", "Thus," or "Therefore" before the marker
        head = re.sub(
            r"(?:\b(?:so|thus|therefore|hence)\b[\s,]*)$", "", head.rstrip(), flags=re.IGNORECASE
        )
        return ParsedRationale(head.strip(), answer, True)
    return ParsedRationale(text.strip(), "", False)


@dataclass(frozen=True)
class ParsedScores:
    scores: dict[str, float | None]  # None where the aspect is missing or out of range
    ok: bool


_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)


def parse_aspect_scores(
    text: str | None, aspects: Sequence[str], low: float, high: float
) -> ParsedScores:
    """Scores per aspect from a JSON object in the reply, or from ``aspect: n`` lines.

    Names match case-insensitively. A score that is not a number or lies outside
    ``[low, high]`` counts as missing; the parse is ``ok`` only if every aspect was found.
    """
    found: dict[str, object] = {}
    if text:
        for block in _JSON_OBJECT.findall(text):
            try:
                data = json.loads(block)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                found = {str(k).strip().lower(): v for k, v in data.items()}
                break
        if not found:
            for name in aspects:
                match = re.search(
                    rf"{re.escape(name)}\W{{0,3}}\s*[:=\-]?\s*(-?\d+(?:\.\d+)?)",
                    text,
                    re.IGNORECASE,
                )
                if match:
                    found[name.lower()] = match.group(1)
    scores: dict[str, float | None] = {}
    for name in aspects:
        value = found.get(name.lower())
        try:
            number = float(value) if value is not None and not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        scores[name] = number if number is not None and low <= number <= high else None
    return ParsedScores(scores, all(v is not None for v in scores.values()))


YES_WORDS = ("yes",)
NO_WORDS = ("no",)
# What tokenizers and servers put around a word: a leading space (or SentencePiece's and
# GPT-2's markers for one), quotes, markdown emphasis, a full stop.
_TOKEN_WRAPPING = " \t\n\r\u2581\u0120\"'`*_.,:;!?()[]"


def yes_probability(
    alternatives: Sequence[tuple[str, float]] | None,
    yes: Sequence[str] = YES_WORDS,
    no: Sequence[str] = NO_WORDS,
) -> float | None:
    """P(yes) among the first token's alternatives: the probabilities of every variant of a
    yes word ("Yes", " yes", "YES.") summed, over those of the yes and no variants together.

    ``alternatives`` are (token, log-probability) pairs (``LLMResult.top_logprobs``). ``None``
    when none of them is a yes or no variant: the reply cannot be read.
    """
    yes_words = {w.lower() for w in yes}
    no_words = {w.lower() for w in no}
    p_yes = p_no = 0.0
    for token, logprob in alternatives or ():
        word = token.strip(_TOKEN_WRAPPING).lower()
        if word in yes_words:
            p_yes += math.exp(logprob)
        elif word in no_words:
            p_no += math.exp(logprob)
    if p_yes + p_no <= 0:
        return None
    return p_yes / (p_yes + p_no)
