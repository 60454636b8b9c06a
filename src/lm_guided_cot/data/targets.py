"""Rationale targets as token ids: EOS appended, right-padded with -100 (ignored by losses)."""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


def encode_targets(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_tokens: int | None = None
) -> torch.Tensor:
    """Right-padded target ids with EOS appended, ``-100`` on padding; cut to ``max_tokens``.

    A text cut short keeps its first ``max_tokens`` tokens and gets no EOS: the model learns
    how it begins, not to stop mid-sentence.
    """
    rows = []
    for text in texts:
        ids = [*tokenizer(text, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        rows.append(ids if max_tokens is None else ids[:max_tokens])
    return pad_labels(rows)


def pad_labels(rows: list[list[int]]) -> torch.Tensor:
    """Rows of ids as one right-padded tensor (-100 padding)."""
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out
