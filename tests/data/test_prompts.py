"""Prompt building: budgets, fair trimming, titles and gold paragraphs kept, order options."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lm_guided_cot.data.prompts import PromptBuilder, PromptConfig, fair_shares, select_paragraphs
from lm_guided_cot.data.readers import read_split
from lm_guided_cot.data.records import HOTPOTQA, Paragraph, QARecord, SupportingFact
from lm_guided_cot.errors import ConfigurationError


def _ten_paragraph_record() -> QARecord:
    # Gold paragraphs stand last (7 and 9), where naive truncation would lose them.
    paragraphs = tuple(
        Paragraph(
            f"Page {i}",
            tuple(f"Filler sentence {j} about page {i} with some words." for j in range(8))
            if i not in (7, 9)
            else (f"Gold fact for page {i}: the answer is Blue.", " More text that follows here."),
        )
        for i in range(10)
    )
    return QARecord(
        id="ten",
        question="What colour links page 7 and page 9?",
        answer="Blue",
        paragraphs=paragraphs,
        supporting_facts=(SupportingFact("Page 7", 0), SupportingFact("Page 9", 0)),
    )


def test_tight_budget_keeps_every_title_and_the_gold_paragraphs(tokenizer):
    record = _ten_paragraph_record()
    full = PromptBuilder(PromptConfig(max_tokens=None)).build(record)
    budget = len(tokenizer(full)["input_ids"]) // 3
    builder = PromptBuilder(PromptConfig(max_tokens=budget), tokenizer)
    prompt = builder.build(record)
    assert len(tokenizer(prompt)["input_ids"]) <= budget
    assert record.question in prompt
    for paragraph in record.paragraphs:
        assert f"{paragraph.title}: " in prompt
    # the gold paragraphs are short, so water-filling keeps their first sentences whole
    assert "Gold fact for page 7: the answer is Blue." in prompt
    assert "Gold fact for page 9: the answer is Blue." in prompt
    assert builder.over_budget == 0


def test_trimming_is_fair_not_positional(tokenizer):
    record = _ten_paragraph_record()
    full = PromptBuilder(PromptConfig(max_tokens=None)).build(record)
    budget = len(tokenizer(full)["input_ids"]) // 2
    prompt = PromptBuilder(PromptConfig(max_tokens=budget), tokenizer).build(record)
    lines = {
        line.split(": ", 1)[0]: line for line in prompt.splitlines() if line.startswith("Page ")
    }
    long_bodies = [len(lines[f"Page {i}"]) for i in range(10) if i not in (7, 9)]
    assert max(long_bodies) - min(long_bodies) <= 12  # all long paragraphs cut to about one length
    assert "Filler sentence 0 about page 8" in lines["Page 8"]  # the last long one is not starved


def test_prompt_that_fits_is_untouched(tokenizer):
    record = _ten_paragraph_record()
    free = PromptBuilder(PromptConfig(max_tokens=None)).build(record)
    assert PromptBuilder(PromptConfig(max_tokens=100_000), tokenizer).build(record) == free
    assert all(p.text in free for p in record.paragraphs)


def test_titles_that_do_not_fit_fall_back_to_titles_only_and_are_counted(tokenizer):
    builder = PromptBuilder(PromptConfig(max_tokens=40), tokenizer)
    prompt = builder.build(_ten_paragraph_record())
    assert "Page 9: " in prompt and "Filler" not in prompt
    assert builder.over_budget == 1


def test_real_records_fit_their_budget(shared_data, tokenizer, datasets_cache):
    rows = read_split(
        shared_data / "hotpotqa/validation.jsonl", HOTPOTQA, cache_dir=datasets_cache
    ).dataset
    builder = PromptBuilder(PromptConfig(max_tokens=1500), tokenizer)
    for row in rows.select(range(20)):
        record = QARecord.from_row(row)
        prompt = builder.build(record)
        assert len(tokenizer(prompt)["input_ids"]) <= 1500
        assert all(f"{p.title}: " in prompt for p in record.paragraphs)


def test_gold_only_and_orders():
    record = _ten_paragraph_record()
    assert [p.title for p in select_paragraphs(record, PromptConfig(context="gold_only"))] == [
        "Page 7",
        "Page 9",
    ]
    gold_first = [
        p.title for p in select_paragraphs(record, PromptConfig(paragraph_order="gold_first"))
    ]
    assert gold_first[:2] == ["Page 7", "Page 9"] and gold_first[2:] == [
        f"Page {i}" for i in range(10) if i not in (7, 9)
    ]
    shuffled = [
        p.title for p in select_paragraphs(record, PromptConfig(paragraph_order="shuffle", seed=3))
    ]
    again = [
        p.title for p in select_paragraphs(record, PromptConfig(paragraph_order="shuffle", seed=3))
    ]
    other = [
        p.title for p in select_paragraphs(record, PromptConfig(paragraph_order="shuffle", seed=4))
    ]
    assert shuffled == again and sorted(shuffled) == sorted(gold_first) and shuffled != other


def test_templates_are_configurable_and_checked():
    config = PromptConfig(
        template="Q: {question}\nDocs:\n{context}",
        paragraph_template="[{title}] {text}",
        max_tokens=None,
    )
    prompt = PromptBuilder(config).build(_ten_paragraph_record())
    assert prompt.startswith("Q: What colour") and "\n[Page 0] Filler" in prompt
    with pytest.raises(ValueError, match="lacks the placeholder"):
        PromptConfig(template="no placeholders here")
    with pytest.raises(ValueError, match="needs a tokenizer"):
        PromptBuilder(PromptConfig(max_tokens=10))


def test_paragraph_text_joins_sentences_with_single_spaces():
    assert Paragraph("t", ("One.", " Two.", "Three.")).text == "One. Two. Three."


@given(st.lists(st.integers(0, 200), max_size=12), st.integers(0, 1500))
def test_fair_shares_properties(lengths, budget):
    shares = fair_shares(lengths, budget)
    assert len(shares) == len(lengths)
    assert all(0 <= s <= n for s, n in zip(shares, lengths))
    if sum(lengths) <= budget:
        assert shares == lengths
    else:
        assert sum(shares) <= budget
        cut = [s for s, n in zip(shares, lengths) if s < n]
        # every cut item got the same share, and no kept-whole item is longer than that share
        assert len(set(cut)) <= 1
        if cut:
            assert all(n <= cut[0] for s, n in zip(shares, lengths) if s == n)
            assert budget - sum(shares) < len(lengths)  # nothing left that could be shared


def test_relevance_order_and_max_bodies_spend_the_budget_on_the_question_s_paragraphs(tokenizer):
    filler = tuple(f"Filler sentence {j} about common things." for j in range(8))
    paragraphs = (
        Paragraph("Harbour", filler),
        Paragraph("Quillfeather Abbey", ("The abbey was founded by Osric in 1120.",)),
        Paragraph("Market", filler),
        Paragraph("Osric", ("Osric was born in Tamworth and founded things.",)),
    )
    record = QARecord(
        id="rel",
        question="Where was the founder of Quillfeather Abbey born?",
        answer="Tamworth",
        paragraphs=paragraphs,
    )
    order = [p.title for p in select_paragraphs(record, PromptConfig(paragraph_order="relevance"))]
    assert order[0] == "Quillfeather Abbey"  # rare question words in its title
    assert set(order) == {p.title for p in paragraphs}
    titles_only = "Question: \n\nContext:\n" + "".join(f"{p.title}: \n" for p in paragraphs)
    budget = len(tokenizer(record.question + titles_only + "\nRationale:")["input_ids"]) + 45
    config = PromptConfig(max_tokens=budget, paragraph_order="relevance", max_bodies=1)
    prompt = PromptBuilder(config, tokenizer).build(record)
    assert "The abbey was founded by Osric in 1120." in prompt
    assert "Filler" not in prompt and "Tamworth" not in prompt  # the others keep titles only
    for paragraph in paragraphs:
        assert f"{paragraph.title}: " in prompt
    with pytest.raises(ValueError, match="max_bodies"):
        PromptConfig(max_bodies=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 0}, "PromptConfig.max_tokens must be at least 1, got 0"),
        ({"max_tokens": -5}, "PromptConfig.max_tokens must be at least 1, got -5"),
        ({"max_bodies": 0}, "PromptConfig.max_bodies must be at least 1, got 0"),
        ({"template": "{question}"}, "PromptConfig.template lacks the placeholder(s) ['context']"),
    ],
)
def test_prompt_config_refuses(kwargs, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        PromptConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"max_tokens": 1, "max_bodies": 1}, {"max_tokens": None, "max_bodies": None}]
)
def test_prompt_config_accepts_the_boundaries(kwargs):
    PromptConfig(**kwargs)
