"""What one PPO step keeps between sampling and its updates: the rollout and the update
statistics (the B rows below are questions x ``samples_per_question``, each question's
samples consecutive), the sampled batch and its behaviour numbers and reward future, with the
small helpers of ``PPOModule``'s steps and checkpoints."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.data.targets import IGNORE_INDEX
from lm_guided_cot.llm.loop import LoopThread, acquire_loop, release_loop
from lm_guided_cot.llm.usage import COUNTERS, RoleUsage, total_usage
from lm_guided_cot.rewards.base import RewardFunction, RewardOutput, ascore_of, role_usages_of
from lm_guided_cot.rl.core import (
    generalized_advantages,
    leave_one_out_advantages,
    masked_whiten,
    scale_to_unit_std,
    token_rewards,
)
from lm_guided_cot.rl.objectives import constant_groups, group_advantages
from lm_guided_cot.stages.ppo.config import PPOConfig


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
    kl: torch.Tensor  # [B, T] per-token KL by ``ppo.estimator`` (k1 penalised, or k3 in the loss)
    kl_k3: torch.Tensor  # [B, T] k3 per-token KL, logged
    ref_logprobs: torch.Tensor  # [B, T] the reference's (at the rollout temperature)
    raw_scores: torch.Tensor  # [B] reward totals before scaling, clipping and penalties
    reward: RewardOutput  # the reward's own output (components and counters for the logs)
    texts: list[str]  # [B] decoded rationales
    records: list[QARecord]  # [B] the question each row answers
    keep: torch.Tensor | None = None  # [B] bool, False for rows dynamic sampling skips
    groups: dict[str, int] = field(default_factory=dict)  # dynamic sampling's counts
    staleness: int = 0  # rollouts made between this one's sampling and its update
    greedy_scores: torch.Tensor | None = None  # [Q] the greedy rationales' reward totals (scst)
    reward_wait_s: float | None = None  # time the step waited for its rewards (staleness > 0)

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
    kl_loss: list[torch.Tensor] = field(default_factory=list)  # KL as a loss term only

    def means(self) -> dict[str, torch.Tensor]:
        """The mean of every field that got values, by field name."""
        out = {}
        for f in fields(self):
            values = getattr(self, f.name)
            if values:
                out[f.name] = torch.stack(values).mean()
        return out


def advantages_and_returns(
    cfg: PPOConfig,
    scores: torch.Tensor,
    kl: torch.Tensor,
    values: torch.Tensor | None,
    mask: torch.Tensor,
    beta: float,
    all_reduce: Callable[[torch.Tensor], torch.Tensor],
    keep: torch.Tensor | None = None,
    baseline: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token advantages and value targets [B, T] of the scores (``beta``: the KL
    coefficient, applied here to ``kl`` unless the KL is a loss term; ``all_reduce`` sums over
    ranks, for whitening by every rank's statistics; ``keep`` [B]: the rows that train, the
    only ones whitening and scaling look at, so that skipped groups change no kept row;
    ``baseline`` [Q]: under ``scst``, each question's greedy rationale's score)."""
    k = cfg.samples_per_question
    trains = mask if keep is None else mask * keep[:, None].to(mask.dtype)
    if cfg.advantage == "gae":
        rewards = token_rewards(scores, kl, mask, beta)
        advantages, returns = generalized_advantages(rewards, values, mask, cfg.gamma, cfg.lam)
        if cfg.whiten:
            # by the statistics of every rank's tokens, as one process would over the batch
            advantages = masked_whiten(advantages, trains, all_reduce=all_reduce)
        return advantages, returns
    sequence = scores if cfg.kl_in_loss else scores - beta * kl.sum(dim=1)
    if cfg.advantage == "rloo":
        per_rationale = leave_one_out_advantages(sequence, k)
    elif cfg.advantage == "scst":
        if baseline is None:
            raise ValueError("scst advantages need the greedy rationales' scores")
        # no KL on the baseline: a constant per question, it shifts no expected gradient
        per_rationale = sequence - baseline.to(sequence).repeat_interleave(k)
    else:
        per_rationale = group_advantages(sequence, k, scale=cfg.advantage == "grpo")
    if cfg.whiten:
        # per rationale and by scale only, never per token (see PPOConfig)
        rows = None if keep is None else keep.to(per_rationale.dtype)
        per_rationale = scale_to_unit_std(per_rationale, all_reduce=all_reduce, mask=rows)
    advantages = per_rationale[:, None] * trains
    return advantages, torch.zeros_like(advantages)


def informative_groups(
    raw_scores: torch.Tensor, group_size: int, baseline: torch.Tensor | None = None
) -> tuple[torch.Tensor, int]:
    """How many of the questions' k reward totals are not all equal (nor all equal to the
    question's ``baseline`` total, under ``scst``), and how many questions: such a group gives
    its baseline no reward signal at all."""
    constant = constant_groups(raw_scores, group_size, baseline=baseline)
    return (~constant).sum(), constant.numel()


def policy_signal(roll: Rollout) -> torch.Tensor:
    """1.0 if some token the updates train on has a non-zero advantage, else 0.0.

    Every such row is in a minibatch of the first pass, where the ratio is 1 and nothing is
    clipped, so this is whether the clipped surrogate gave the policy a gradient. The loss
    value would not tell: with zero-sum group advantages at ratio 1 it is 0 (or nearly) even
    when its gradient is not (a KL loss term or an entropy bonus aside).
    """
    rows = torch.arange(roll.mask.shape[0], device=roll.mask.device)
    trained = roll.advantages * roll.update_mask(rows)
    return (trained != 0).any().float()


def replace_rows(labels: torch.Tensor, rows: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """``labels`` with rows ``rows`` replaced by ``new``, padded to the wider of the two."""
    width = max(labels.shape[1], new.shape[1])
    out = torch.nn.functional.pad(labels, (0, width - labels.shape[1]), value=IGNORE_INDEX)
    out[rows] = torch.nn.functional.pad(new, (0, width - new.shape[1]), value=IGNORE_INDEX)
    return out


def split_reward_rows(out: RewardOutput, n: int) -> tuple[RewardOutput, torch.Tensor]:
    """The first ``n`` rows of a reward call's output (its counters with them), and the
    totals of the rows after them."""
    components = {name: values[:n] for name, values in out.components.items()}
    return RewardOutput(out.total[:n], components, out.logs), out.total[n:]


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


def drop_unused_value_head(checkpoint: dict[str, Any]) -> None:
    """Let an RLOO checkpoint from before RLOO lost its value head resume: drop the head's
    weights and its two parameters, the last ones registered, from the optimizer state."""
    state = checkpoint.get("state_dict", {})
    head = [key for key in state if key.startswith("value_head.")]
    if not head:
        return
    for key in head:
        del state[key]
    for optimizer in checkpoint.get("optimizer_states", []):
        group = optimizer["param_groups"][-1]
        for param_id in group["params"][-len(head) :]:
            optimizer["state"].pop(param_id, None)
        group["params"] = group["params"][: -len(head)]


def nonempty(labels: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """Give a rationale that ended at once (width 0) one EOS token, so every row has a last token."""
    if labels.shape[1] == 0:
        return torch.full(
            (labels.shape[0], 1), eos_token_id, dtype=labels.dtype, device=labels.device
        )
    return labels


def eos_rate(labels: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    return (labels == eos_token_id).any(dim=1).float().mean()


def llm_usage(reward: RewardFunction) -> dict[str, float]:
    """The reward's large-LM counters worth a chart (totals; none for a reward without a large
    LM), with a cache hit rate."""
    usages = role_usages_of(reward)
    if usages is None:
        total, out = RoleUsage(), {}
    else:
        total = total_usage(usages.values())
        out = {f"llm/total/{n}": getattr(total, n) for n in COUNTERS if n != "parse_failures"}
    # every rank logs the same keys (a rank that asked nothing reports 0), or a synced log hangs
    hits, requests = total.cache_hits, total.requests
    out["llm/total/cache_hit_rate"] = hits / (requests + hits) if requests or hits else 0.0
    return out


@dataclass
class Sampled:
    """A batch of sampled rationales (the B rows are questions x k, each question's k samples
    consecutive)."""

    input_ids: torch.Tensor  # [B, P]
    attention_mask: torch.Tensor  # [B, P]
    labels: torch.Tensor  # [B, T], IGNORE_INDEX after each rationale's end
    texts: list[str]  # [B]
    records: list[QARecord]  # [B]


@dataclass
class Greedy:
    """The questions' greedy rationales and their reward totals: the ``scst`` baseline."""

    labels: torch.Tensor  # [Q, T]
    texts: list[str]  # [Q]
    scores: torch.Tensor  # [Q] reward totals


@dataclass
class Behaviour:
    """What the policy that sampled a batch said about it, at the rollout temperature."""

    logprobs: torch.Tensor  # [B, T] its token log-probs: the PPO ratio's denominator
    values: torch.Tensor | None  # [B, T] the value head's estimates (None without one)
    ref_logprobs: torch.Tensor  # [B, T] the frozen reference's token log-probs


class Scores:
    """One batch's reward call: running on the large-LM loop, or done (``output``).

    Under ``rank_zero`` calls ``span`` is this rank's rows among every rank's, and only rank 0
    runs the call (its output covers every rank's rows)."""

    def __init__(
        self,
        future: concurrent.futures.Future | None = None,
        output: RewardOutput | None = None,
        span: tuple[int, int] | None = None,
        held: LoopThread | None = None,
    ) -> None:
        self.future, self.output, self.span, self._held = future, output, span, held

    @classmethod
    def submit(
        cls, reward: Any, records: list, texts: list[str], span: tuple[int, int] | None = None
    ) -> Scores:
        """Start ``reward`` on the batch in the background."""
        held = acquire_loop()  # the loop stays up while the call is out
        future = asyncio.run_coroutine_threadsafe(ascore_of(reward, records, texts), held.loop)
        return cls(future, span=span, held=held)

    def wait(self) -> RewardOutput | None:
        """The reward's output, once it is there (``None`` on ranks that did not ask)."""
        if self.future is not None:
            try:
                self.output = self.future.result()
            finally:
                self.future = None
                self._release()
        return self.output

    def _release(self) -> None:
        if self._held is not None:
            release_loop(self._held)
            self._held = None
