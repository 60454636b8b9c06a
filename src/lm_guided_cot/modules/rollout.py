"""What one PPO step keeps between sampling and its updates: the rollout and the update
statistics (the B rows below are questions x ``samples_per_question``, each question's
samples consecutive)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.rewards.base import RewardOutput


@dataclass
class Rollout:
    """Sampled rationales with everything the PPO updates and the step's logs need."""

    input_ids: torch.Tensor  # [B, P] prompts, each question repeated k times
    attention_mask: torch.Tensor  # [B, P]
    labels: torch.Tensor  # [B, T] sampled rationales, IGNORE_INDEX after their end
    mask: torch.Tensor  # [B, T] float, 1 on rationale tokens
    logprobs: torch.Tensor  # [B, T] the sampling policy's (at the rollout temperature)
    values: torch.Tensor | None  # [B, T] the value head's estimates; None under RLOO
    advantages: torch.Tensor  # [B, T] zero off the mask
    returns: torch.Tensor  # [B, T] value targets (zeros under RLOO)
    kl: torch.Tensor  # [B, T] the penalised estimator's per-token KL
    kl_k3: torch.Tensor  # [B, T] k3 per-token KL, logged only
    raw_scores: torch.Tensor  # [B] reward totals before scaling, clipping and penalties
    reward: RewardOutput  # the reward's own output (components and counters for the logs)
    texts: list[str]  # [B] decoded rationales
    records: list[QARecord]  # [B] the question each row answers


@dataclass
class PPOStats:
    """Per-minibatch statistics of one step's updates (detached scalars)."""

    policy_loss: list[torch.Tensor] = field(default_factory=list)
    value_loss: list[torch.Tensor] = field(default_factory=list)  # GAE only
    clipfrac: list[torch.Tensor] = field(default_factory=list)
    approx_kl: list[torch.Tensor] = field(default_factory=list)
    vf_clipfrac: list[torch.Tensor] = field(default_factory=list)  # GAE only
    entropy: list[torch.Tensor] = field(default_factory=list)

    def means(self) -> dict[str, torch.Tensor]:
        """The mean of every field that got values, by field name."""
        out = {}
        for f in fields(self):
            values = getattr(self, f.name)
            if values:
                out[f.name] = torch.stack(values).mean()
        return out
