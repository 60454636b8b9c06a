"""What one PPO step keeps between sampling and its updates: the rollout and the update
statistics (the B rows below are questions x ``samples_per_question``, each question's
samples consecutive)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.data.targets import IGNORE_INDEX
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
    keep: torch.Tensor | None = None  # [B] bool, False for rows dynamic sampling skips
    groups: dict[str, int] = field(default_factory=dict)  # dynamic sampling's counts

    def update_mask(self, rows: torch.Tensor) -> torch.Tensor:
        """The token mask of rows ``rows`` for the updates: 0 on the rows that are skipped."""
        mask = self.mask[rows]
        return mask if self.keep is None else mask * self.keep[rows, None].to(mask.dtype)

    def update_order(self) -> torch.Tensor:
        """A random order of the rows for one pass of updates, the kept rows first."""
        order = torch.randperm(self.mask.shape[0], device=self.mask.device)
        if self.keep is None:
            return order
        return torch.cat([order[self.keep[order]], order[~self.keep[order]]])


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


def replace_rows(labels: torch.Tensor, rows: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """``labels`` with rows ``rows`` replaced by ``new``, padded to the wider of the two."""
    width = max(labels.shape[1], new.shape[1])
    out = torch.nn.functional.pad(labels, (0, width - labels.shape[1]), value=IGNORE_INDEX)
    out[rows] = torch.nn.functional.pad(new, (0, width - new.shape[1]), value=IGNORE_INDEX)
    return out


def replace_reward_rows(old: RewardOutput, rows: torch.Tensor, new: RewardOutput) -> RewardOutput:
    """``old`` with rows ``rows`` scored as in ``new``; the counters of both calls add up."""
    rows = rows.to(old.total.device)
    total = old.total.clone()
    total[rows] = new.total.to(total.dtype).to(total.device)
    components = {}
    for name, values in old.components.items():
        values = values.clone()
        values[rows] = new.components[name].to(values.dtype).to(values.device)
        components[name] = values
    logs = {key: old.logs.get(key, 0.0) + new.logs.get(key, 0.0) for key in {*old.logs, *new.logs}}
    return RewardOutput(total, components, logs)
