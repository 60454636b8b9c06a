"""How much of the gold the small LM's prompt shows: the share of gold supporting sentences
that stand whole in the prompt, and of questions whose answer string is in it, for several
prompt settings side by side (docs/results.md, "what the guide sees").

    python bin/prompt_coverage.py --data ../shared/data/hotpotqa/validation.jsonl --source hotpotqa
"""

from __future__ import annotations

import argparse

from lm_guided_cot.data.prompts import PromptBuilder, PromptConfig
from lm_guided_cot.data.readers import read_split
from lm_guided_cot.data.records import QARecord
from lm_guided_cot.model_loading import load_tokenizer


def coverage(
    records: list[QARecord], config: PromptConfig, tokenizer
) -> tuple[float, float, float]:
    """Shares of gold sentences whole in the prompt, of questions with every one of them whole
    (a comparison needs both sides), and of questions whose answer string is in it."""
    builder = PromptBuilder(config, tokenizer)
    whole = total = answers = complete = 0
    for record in records:
        prompt = builder.build(record)
        sentences = {p.title: p.sentences for p in record.paragraphs}
        seen = []
        for fact in record.supporting_facts:
            if fact.sent_id >= len(sentences.get(fact.title, ())):
                continue
            text = sentences[fact.title][fact.sent_id].strip()
            seen.append(text[:40] in prompt and text[-15:] in prompt)  # cut bodies lose the end
        whole, total = whole + sum(seen), total + len(seen)
        complete += bool(seen) and all(seen)
        answers += record.answer in prompt
    n = max(len(records), 1)
    return whole / max(total, 1), complete / n, answers / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--source", default="hotpotqa", choices=["hotpotqa", "2wikimultihopqa"])
    parser.add_argument("--tokenizer", default="smollm2")
    parser.add_argument("--max_tokens", type=int, default=384)
    args = parser.parse_args()
    tokenizer = load_tokenizer(args.tokenizer)
    records = [QARecord.from_row(r) for r in read_split(args.data, args.source).dataset]
    print(f"{len(records)} questions, {args.max_tokens}-token prompts ({args.tokenizer})")
    print(
        f"{'prompt':40s} {'gold sentences whole':>22s} {'questions, all whole':>22s}"
        f" {'answer in prompt':>18s}"
    )
    for label, config in (
        ("all bodies share the budget", PromptConfig(max_tokens=args.max_tokens)),
        (
            "relevance order, 2 bodies",
            PromptConfig(max_tokens=args.max_tokens, paragraph_order="relevance", max_bodies=2),
        ),
        *(
            (
                f"relevance order, {bodies} bodies",
                PromptConfig(
                    max_tokens=args.max_tokens, paragraph_order="relevance", max_bodies=bodies
                ),
            )
            for bodies in (3, 4)
        ),
    ):
        sentences, complete, answers = coverage(records, config, tokenizer)
        print(
            f"{label:40s} {100 * sentences:21.1f}% {100 * complete:21.1f}% {100 * answers:17.1f}%"
        )


if __name__ == "__main__":
    main()
