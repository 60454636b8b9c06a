"""The reward interface: batched, from (records, rationales) to a score per rationale.

A reward is an object chosen in YAML by ``class_path``/``init_args``; every reward returns a
``RewardOutput`` with the total it contributes and named components for logging, so that a
weighted sum can report each part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lm_guided_cot.data.records import QARecord


@dataclass
class RewardOutput:
    """Scores of a batch: ``total[B]``, ``components{name: [B]}``, and counters for the logs."""

    total: torch.Tensor
    components: dict[str, torch.Tensor] = field(default_factory=dict)
    logs: dict[str, float] = field(default_factory=dict)


class RewardFunction:
    """Base class: subclasses implement ``__call__`` (and ``usage`` if they call the large LM)."""

    name: str = "reward"

    def __call__(self, records: Sequence[QARecord], rationales: Sequence[str]) -> RewardOutput:
        raise NotImplementedError

    def usage(self) -> dict[str, float]:
        """Large-LM counters of the calls this reward made (flat ``llm/...`` keys)."""
        return {}


def as_tensor(values: Sequence[float]) -> torch.Tensor:
    return torch.tensor(list(values), dtype=torch.float32)


def merge_usage(rewards: Sequence[RewardFunction]) -> dict[str, float]:
    """Sum the usage counters of several rewards (they may share clients)."""
    out: dict[str, float] = {}
    seen: set[int] = set()
    for reward in rewards:
        client = getattr(reward, "client", None)
        if client is not None:
            if id(client) in seen:
                continue
            seen.add(id(client))
        for key, value in reward.usage().items():
            out[key] = out.get(key, 0.0) + value
    return out


def check_lengths(records: Sequence[Any], rationales: Sequence[str]) -> None:
    if len(records) != len(rationales):
        raise ValueError(f"{len(records)} records but {len(rationales)} rationales")
