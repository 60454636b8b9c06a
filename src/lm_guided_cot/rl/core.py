"""PPO arithmetic on token tensors: masked statistics, advantages, losses, KL estimators.

Pure torch, no Lightning. Shapes: ``[B, T]`` per rationale token, ``mask`` 1 on real tokens
(the rationale's tokens, EOS included) and 0 on padding; rationales may differ in length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

AllReduce = Callable[[torch.Tensor], torch.Tensor]  # sums a tensor over data-parallel ranks


def masked_mean(
    values: torch.Tensor,
    mask: torch.Tensor,
    dim: int | None = None,
    count: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Mean over the positions where ``mask`` is 1 (over all of them, or along ``dim``).

    ``count`` (``dim=None`` only) replaces the number of masked positions as the divisor.
    Data-parallel training passes the mean count over the ranks: the ranks' means then
    average to the mean over all their tokens, and so do their gradients, exactly as one
    process would compute over the whole batch.
    """
    mask = mask.to(values.dtype)
    if dim is None:
        divisor = mask.sum() if count is None else torch.as_tensor(count, dtype=values.dtype)
        return (values * mask).sum() / divisor.clamp(min=1.0)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_moments(
    values: torch.Tensor, mask: torch.Tensor, all_reduce: AllReduce | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean, biased variance, count)`` over masked positions, over all ranks when given
    ``all_reduce`` (two passes, so no precision is lost to E[x^2] - E[x]^2)."""
    mask = mask.to(values.dtype)
    sums = torch.stack([(values * mask).sum(), mask.sum()])
    if all_reduce is not None:
        sums = all_reduce(sums)
    count = sums[1]
    mean = sums[0] / count.clamp(min=1.0)
    squares = (((values - mean) ** 2) * mask).sum()
    if all_reduce is not None:
        squares = all_reduce(squares)
    return mean, squares / count.clamp(min=1.0), count


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance over the masked positions (Bessel-corrected unless ``unbiased=False``)."""
    _, variance, count = masked_moments(values, mask)
    if unbiased and count > 1:
        variance = variance * count / (count - 1)
    return variance


def masked_whiten(
    values: torch.Tensor,
    mask: torch.Tensor,
    shift_mean: bool = True,
    eps: float = 1e-8,
    all_reduce: AllReduce | None = None,
) -> torch.Tensor:
    """Scale masked values to unit variance (and zero mean unless ``shift_mean=False``);
    with ``all_reduce``, by the statistics of every rank's values together."""
    mean, variance, count = masked_moments(values, mask, all_reduce)
    if count > 1:
        variance = variance * count / (count - 1)
    whitened = (values - mean) * torch.rsqrt(variance + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(values.dtype)


def scale_to_unit_std(
    values: torch.Tensor,
    eps: float = 1e-8,
    all_reduce: AllReduce | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``values`` divided by their (Bessel-corrected) standard deviation, not shifted; with
    ``all_reduce``, by the standard deviation of every rank's values together; with ``mask``,
    of the values where it is 1 only (the rows that train)."""
    mask = torch.ones_like(values) if mask is None else mask.to(values.dtype)
    _, variance, count = masked_moments(values, mask, all_reduce)
    if count > 1:
        variance = variance * count / (count - 1)
    return values * torch.rsqrt(variance + eps)


def generalized_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE (Schulman et al. 2016) per token; returns ``(advantages, returns)``.

    The value after a rationale's last real token is 0 (the episode ends there), so uneven
    lengths need no special casing beyond the mask.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    steps = rewards.shape[1]
    for t in reversed(range(steps)):
        next_value = values[:, t + 1] if t + 1 < steps else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running * (mask[:, t + 1] if t + 1 < steps else 0.0)
        running = running * mask[:, t]
        advantages[:, t] = running
    returns = (advantages + values) * mask
    return advantages, returns


def kl_penalty(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1"
) -> torch.Tensor:
    """Per-token KL(policy || reference) estimate from log-probs of the sampled tokens.

    ``k1``: ``log p - log q`` (unbiased, can be negative per token); ``k3``:
    ``(q/p) - 1 - log(q/p)`` (unbiased, never negative; Schulman's approximator).
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; use 'k1' or 'k3'")


def token_rewards(
    scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Per-token rewards: ``-kl_coef * KL`` on every token, the sequence score on the last one."""
    rewards = -kl_coef * kl * mask
    last = mask.long().sum(dim=1).clamp(min=1) - 1
    rewards[torch.arange(rewards.shape[0]), last] += scores.to(rewards.dtype)
    return rewards


@dataclass
class PolicyLossOutput:
    loss: torch.Tensor
    clipfrac: torch.Tensor  # share of tokens whose ratio was clipped
    approx_kl: torch.Tensor  # k3 estimate of KL(old || new) over the minibatch


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float = 0.2,
    count: torch.Tensor | float | None = None,
    clip_range_high: float | None = None,
    weights: torch.Tensor | None = None,
) -> PolicyLossOutput:
    """PPO's clipped surrogate: ``mean(max(-A r, -A clip(r, 1-e_low, 1+e_high)))`` over real
    tokens (``count``: the divisor of the means, see ``masked_mean``).

    ``clip_range`` is ``e_low``, and ``e_high`` too unless ``clip_range_high`` is given (DAPO's
    "clip-higher": a larger ``e_high`` lets unlikely tokens with a positive advantage gain more
    per update). ``weights`` ([B, T], see ``rl.objectives.loss_weights``) replaces the token
    mean by ``sum(loss * weights)``; the logged clip fraction and KL stay token means.
    """
    high = clip_range if clip_range_high is None else clip_range_high
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + high)
    per_token = torch.maximum(unclipped, clipped)
    if weights is None:
        loss = masked_mean(per_token, mask, count=count)
    else:
        loss = (per_token * weights).sum()
    with torch.no_grad():
        clipfrac = masked_mean((clipped > unclipped).to(logprobs.dtype), mask, count=count)
        approx_kl = masked_mean(torch.expm1(log_ratio) - log_ratio, mask, count=count)
    return PolicyLossOutput(loss, clipfrac, approx_kl)


@dataclass
class ValueLossOutput:
    loss: torch.Tensor
    clipfrac: torch.Tensor


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float | None = 0.2,
    count: torch.Tensor | float | None = None,
) -> ValueLossOutput:
    """``0.5 * mean(max((V - R)^2, (V_clipped - R)^2))``; no clipping when ``clip_range`` is None
    (``count``: the divisor of the means, see ``masked_mean``)."""
    unclipped = (values - returns) ** 2
    if clip_range is None:
        return ValueLossOutput(
            0.5 * masked_mean(unclipped, mask, count=count), torch.zeros((), device=values.device)
        )
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask, count=count)
    with torch.no_grad():
        clipfrac = masked_mean((clipped > unclipped).to(values.dtype), mask, count=count)
    return ValueLossOutput(loss, clipfrac)


def explained_variance(
    predictions: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    all_reduce: AllReduce | None = None,
) -> torch.Tensor:
    """``1 - Var(targets - predictions) / Var(targets)`` over real tokens (of every rank with
    ``all_reduce``; nan when Var is 0)."""
    _, var_targets, _ = masked_moments(targets, mask, all_reduce)
    _, var_residual, _ = masked_moments(targets - predictions, mask, all_reduce)
    if var_targets == 0:
        return torch.tensor(float("nan"), device=targets.device)
    return 1.0 - var_residual / var_targets


def leave_one_out_advantages(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO: each sample's score minus the mean score of the other samples of its question.

    ``scores`` is ``[Q * k]`` with the k samples of a question next to each other.
    """
    if group_size < 2:
        raise ValueError("a leave-one-out baseline needs at least 2 samples per question")
    grouped = scores.view(-1, group_size)
    others = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)
    return (grouped - others).reshape(-1)


def entropy_from_logits(logits: torch.Tensor, chunk_rows: int | None = None) -> torch.Tensor:
    """Entropy of each position's distribution, ``[B, T]``.

    ``chunk_rows`` computes it a few batch rows at a time: without autograd that bounds the
    ``[B, T, V]`` temporaries (probabilities, products) to a chunk, which at a real vocabulary
    is most of a PPO minibatch's memory. With autograd every chunk's tensors are kept anyway.
    """
    if chunk_rows is not None and logits.shape[0] > chunk_rows:
        return torch.cat([entropy_from_logits(c) for c in logits.split(chunk_rows)])
    logsumexp = logits.logsumexp(dim=-1, keepdim=True)
    probs = (logits - logsumexp).exp()
    return logsumexp.squeeze(-1) - (probs * logits).sum(-1)
