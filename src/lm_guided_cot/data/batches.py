"""Batches for the stage modules: padded prompt ids with the questions' records alongside."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.data.targets import pad_labels


class RecordBatch:
    """The records of a batch, in row order.

    Deliberately not a list, tuple or dataclass: Lightning moves a batch to its device by
    rebuilding every collection in it, and refuses frozen dataclasses such as ``QARecord``;
    an opaque holder is passed through untouched.
    """

    def __init__(self, records: Iterable[QARecord]) -> None:
        self._records = list(records)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[QARecord]:
        return iter(self._records)

    def __getitem__(self, index: int) -> QARecord:
        return self._records[index]

    def repeat_each(self, k: int) -> list[QARecord]:
        """Each record ``k`` times in a row, as ``Tensor.repeat_interleave(k)`` orders rows."""
        return [record for record in self._records for _ in range(k)]


class PromptCollator:
    """Pads tokenised rows into a batch: ``input_ids``, ``attention_mask`` (padded on the
    tokenizer's side), ``index``, ``records`` and, when the rows carry them, ``labels``
    (right-padded with -100).

    The rows are those of ``MultiHopQADataModule.tokenized`` or ``.targets``: each holds its
    record's columns, so any DataLoader over them gives the modules everything they need.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        padded = self.tokenizer.pad(
            [{"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]} for r in rows],
            return_tensors="pt",
        )
        batch = {
            "input_ids": padded["input_ids"],
            "attention_mask": padded["attention_mask"],
            "index": torch.tensor([r["index"] for r in rows], dtype=torch.long),
            "records": RecordBatch(QARecord.from_row(r) for r in rows),
        }
        if rows and "labels" in rows[0]:
            batch["labels"] = pad_labels([r["labels"] for r in rows])
        return batch
