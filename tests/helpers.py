"""Builders of small input files for tests."""

from __future__ import annotations

import json
from pathlib import Path


def hotpot_record(rid: str = "q1", n_paragraphs: int = 3, **overrides) -> dict:
    """A small valid record in the Hugging Face ``hotpot_qa`` layout."""
    titles = [f"Title {i}" for i in range(n_paragraphs)]
    record = {
        "id": rid,
        "question": f"Which one is question {rid}?",
        "answer": "yes",
        "type": "comparison",
        "level": "hard",
        "supporting_facts": {"title": [titles[0], titles[-1]], "sent_id": [0, 1]},
        "context": {
            "title": titles,
            "sentences": [[f"Sentence zero of {t}.", f" Sentence one of {t}."] for t in titles],
        },
    }
    record.update(overrides)
    return record


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_json(path: Path, records) -> Path:
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path
