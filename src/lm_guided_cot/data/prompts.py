"""The small LM's input: question + context paragraphs, fitted into a token budget.

Multi-hop questions need every paragraph that holds a hop, and a paragraph's place in the
list says nothing about whether it does. So when the context does not fit, no paragraph is
dropped and none is cut merely for standing last: every title is kept, and the paragraph
bodies share the remaining budget fairly (water-filling: short paragraphs stay whole, long
ones are cut to one common length).
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from lm_guided_cot.data.records import Paragraph, QARecord
from lm_guided_cot.errors import ConfigurationError, check_at_least

log = logging.getLogger(__name__)


class Tokenizer(Protocol):
    """The part of a Hugging Face tokenizer that prompt building uses."""

    def __call__(self, text: str, add_special_tokens: bool = True): ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str: ...


@dataclass
class PromptConfig:
    """How the small LM's input is written.

    Args:
        template: the whole prompt; ``{question}`` and ``{context}`` are filled in.
        paragraph_template: one paragraph of the context; ``{title}`` and ``{text}``.
        paragraph_separator: what stands between two paragraphs.
        max_tokens: token budget of the whole prompt (special tokens included; at least 1).
            Over it, paragraph bodies are shortened (titles always stay); ``None`` for no limit.
        paragraph_order: ``original`` (as in the data), ``shuffle`` (a fixed per-question
            permutation drawn from ``seed`` and the record id), ``relevance`` (most words
            shared with the question first, see ``relevance_order``: no gold is used) or
            ``gold_first`` (paragraphs holding supporting facts first: an ablation, it leaks
            the gold).
        context: ``all`` paragraphs, or ``gold_only`` (oracle ablation: only those holding a
            supporting fact).
        max_bodies: over the budget, only the first ``max_bodies`` paragraphs in the order
            above keep body text (sharing the budget); the others keep their titles. With
            ``relevance`` this spends a small budget on the paragraphs likely to matter
            (HotpotQA, 384 tokens: 62% of the gold sentences whole in the prompt with 3,
            16% without); at least 1, ``None``: every paragraph shares the budget.
        seed: seed of the ``shuffle`` order.
    """

    template: str = "Question: {question}\n\nContext:\n{context}\n\nRationale:"
    paragraph_template: str = "{title}: {text}"
    paragraph_separator: str = "\n"
    max_tokens: int | None = 512
    paragraph_order: Literal["original", "shuffle", "relevance", "gold_first"] = "original"
    context: Literal["all", "gold_only"] = "all"
    max_bodies: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for field_name, keys in (
            ("template", ("question", "context")),
            ("paragraph_template", ("title", "text")),
        ):
            text = getattr(self, field_name)
            missing = [k for k in keys if "{" + k + "}" not in text]
            if missing:
                raise ConfigurationError(
                    f"PromptConfig.{field_name} lacks the placeholder(s) {missing}: {text!r}"
                )
        check_at_least("PromptConfig.max_tokens", self.max_tokens, 1)
        check_at_least("PromptConfig.max_bodies", self.max_bodies, 1)


_STOPWORDS = frozenset(
    "a an and are as at be by did do does for from how in is it its of on or that the their "  # noqa: SIM905
    "this to was were what when where which who whom whose with".split()
)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOPWORDS}


def relevance_order(question: str, paragraphs: Sequence[Paragraph]) -> list[Paragraph]:
    """Paragraphs by the words they share with the question, weighted by rarity among the
    question's paragraphs (IDF); a shared word in the title counts three times. Stable on ties.

    A bag-of-words ranker, not a retriever: it reads only the question and the context, so it
    is as legitimate at test time as the original order.
    """
    asked = _words(question)
    bags = [(_words(p.title), _words(f"{p.title} {p.text}")) for p in paragraphs]
    frequency = Counter(w for _, bag in bags for w in bag)
    n = len(paragraphs)

    def score(index: int) -> float:
        title, bag = bags[index]
        return sum(math.log(1 + n / frequency[w]) * (3 if w in title else 1) for w in asked & bag)

    ranked = sorted(range(n), key=lambda i: -score(i))
    return [paragraphs[i] for i in ranked]


def select_paragraphs(record: QARecord, config: PromptConfig) -> list[Paragraph]:
    """The record's paragraphs in the configured order and selection."""
    paragraphs = list(record.paragraphs)
    gold = set(record.gold_titles)
    if config.context == "gold_only":
        paragraphs = [p for p in paragraphs if p.title in gold]
    if config.paragraph_order == "shuffle":
        random.Random(f"{config.seed}:{record.id}").shuffle(paragraphs)
    elif config.paragraph_order == "relevance":
        paragraphs = relevance_order(record.question, paragraphs)
    elif config.paragraph_order == "gold_first":
        paragraphs.sort(key=lambda p: p.title not in gold)  # stable: keeps order within groups
    return paragraphs


def fair_shares(lengths: Sequence[int], budget: int) -> list[int]:
    """Split ``budget`` over items of the given lengths by water-filling.

    Items shorter than the common cap keep their full length; the others get the cap, the
    largest one with ``sum(min(length, cap)) <= budget``. The sum never exceeds the budget.
    """
    budget = max(budget, 0)
    if sum(lengths) <= budget:
        return list(lengths)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    shares = [0] * len(lengths)
    remaining = budget
    for rank, i in enumerate(order):
        left = len(order) - rank
        if lengths[i] * left <= remaining:
            shares[i] = lengths[i]
            remaining -= lengths[i]
            continue
        cap = remaining // left
        for j in order[rank:]:
            shares[j] = cap
        break
    return shares


def format_context(
    paragraphs: Sequence[tuple[str, str]],
    paragraph_template: str = "{title}: {text}",
    separator: str = "\n",
) -> str:
    """Paragraphs as text: each (title, text) pair through the template, joined by the separator."""
    return separator.join(
        paragraph_template.format(title=title, text=text) for title, text in paragraphs
    )


class PromptBuilder:
    """Writes prompts for records under ``config`` and counts tokens with ``tokenizer``."""

    def __init__(self, config: PromptConfig, tokenizer: Tokenizer | None = None) -> None:
        if config.max_tokens is not None and tokenizer is None:
            raise ValueError("a token budget (max_tokens) needs a tokenizer to count with")
        self.config = config
        self.tokenizer = tokenizer
        self.over_budget = 0  # prompts that stayed over budget even with titles only

    def render(self, question: str, paragraphs: Sequence[tuple[str, str]]) -> str:
        """Fill the templates with a question and (title, text) pairs."""
        context = format_context(
            paragraphs, self.config.paragraph_template, self.config.paragraph_separator
        )
        return self.config.template.format(question=question, context=context)

    def count(self, text: str) -> int:
        return len(self.tokenizer(text)["input_ids"])

    def build(self, record: QARecord) -> str:
        """The prompt for one record, within ``max_tokens`` whenever the titles alone fit."""
        paragraphs = select_paragraphs(record, self.config)
        full = [(p.title, p.text) for p in paragraphs]
        prompt = self.render(record.question, full)
        limit = self.config.max_tokens
        if limit is None or self.count(prompt) <= limit:
            return prompt

        bodies = [self.tokenizer(text, add_special_tokens=False)["input_ids"] for _, text in full]
        if self.config.max_bodies is not None:
            bodies = [b if i < self.config.max_bodies else [] for i, b in enumerate(bodies)]
        titles_only = self.render(record.question, [(title, "") for title, _ in full])
        budget = limit - self.count(titles_only)
        if budget <= 0:
            self.over_budget += 1
            log.debug("record %s: question and titles alone exceed %d tokens", record.id, limit)
            return titles_only
        # Token counts of pieces do not add up exactly to the count of their concatenation
        # (merges at the seams), so shrink the budget by the overshoot until it fits.
        for _ in range(8):
            shares = fair_shares([len(b) for b in bodies], budget)
            cut = [
                (title, self.tokenizer.decode(body[:share], skip_special_tokens=True).strip())
                for (title, _), body, share in zip(full, bodies, shares)
            ]
            prompt = self.render(record.question, cut)
            over = self.count(prompt) - limit
            if over <= 0:
                return prompt
            budget -= max(over, 1)
            if budget <= 0:
                break
        self.over_budget += 1
        return titles_only
