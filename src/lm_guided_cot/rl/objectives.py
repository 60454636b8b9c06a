"""The GRPO family on sequence scores and token tensors: group-normalised advantages (GRPO,
Dr. GRPO), loss aggregation, DAPO's overlong penalty and the groups dynamic sampling drops.

Pure torch. Scores are ``[Q * k]`` with the k samples of a question next to each other; token
tensors are ``[B, T]`` with ``mask`` 1 on real tokens, as in ``rl.core``.
"""

from __future__ import annotations

from typing import Literal

import torch

from lm_guided_cot.rl.core import masked_mean

Aggregation = Literal["token", "sequence", "constant"]


def group_advantages(
    scores: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """Each sample's score minus its question's mean score, divided by the question's std when
    ``scale``: GRPO (Shao et al. 2024, eq. 3: ``(r_i - mean(r)) / std(r)``). Without ``scale``
    it is Dr. GRPO's advantage (Liu et al. 2025, "Understanding R1-Zero-Like Training"), which
    drops the std because it weights questions by how little their samples differ.

    The std is Bessel-corrected and ``eps`` is added to it, as TRL's GRPOTrainer does, so a
    group of equal scores gets advantages of 0, not nan.
    """
    if group_size < 2:
        raise ValueError("group-normalised advantages need at least 2 samples per question")
    grouped = scores.view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


def loss_weights(
    mask: torch.Tensor,
    aggregation: Aggregation,
    max_tokens: int | None = None,
    count: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Per-token weights ``w`` [B, T] such that the loss is ``sum(loss_per_token * w)``.

    - ``token``: every real token of the batch counts the same, ``1 / N_tokens`` (DAPO's
      token-level aggregation; PPO's usual mean). ``count`` replaces ``N_tokens``.
    - ``sequence``: each sequence's token mean, then the mean over sequences,
      ``1 / (B |o_i|)`` (the GRPO paper's ``1/G sum_i 1/|o_i| sum_t``): a long rationale's
      tokens weigh less than a short one's. ``count`` replaces ``B``.
    - ``constant``: ``1 / (B * max_tokens)`` (Dr. GRPO: a constant divisor, so no length is
      favoured). ``count`` replaces ``B``.

    A row whose mask is all 0 (a skipped group) gets weight 0 and does not count in ``B``.
    Data-parallel training passes as ``count`` the mean over ranks of the local count (see
    ``rl.core.masked_mean``), so the ranks' gradients average to one process's.
    """
    mask = mask.to(torch.float32 if not mask.is_floating_point() else mask.dtype)
    if aggregation == "token":
        divisor = mask.sum() if count is None else torch.as_tensor(count, dtype=mask.dtype)
        return mask / divisor.clamp(min=1.0)
    rows = (mask.sum(dim=1) > 0).to(mask.dtype)
    sequences = rows.sum() if count is None else torch.as_tensor(count, dtype=mask.dtype)
    sequences = sequences.clamp(min=1.0)
    if aggregation == "sequence":
        lengths = mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        return mask / lengths / sequences
    if aggregation == "constant":
        if max_tokens is None or max_tokens < 1:
            raise ValueError("'constant' aggregation needs max_tokens, the generation budget")
        return mask / (sequences * max_tokens)
    raise ValueError(f"unknown loss aggregation {aggregation!r}")


def kl_loss(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor | None = None,
    count: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """The KL to the reference as a loss term (GRPO, Shao et al. 2024, eq. 4; TRL's ``beta``
    term): the k3 estimate ``q/p - 1 - log(q/p)`` per token, with ``p`` the current policy's
    probability of the sampled token (with gradient) and ``q`` the reference's, aggregated as
    the policy loss is (``weights`` from ``loss_weights``, or the token mean over ``count``)."""
    log_ratio = ref_logprobs - logprobs
    per_token = torch.expm1(log_ratio) - log_ratio
    if weights is not None:
        return (per_token * weights).sum()
    return masked_mean(per_token, mask, count=count)


def overlong_penalty(lengths: torch.Tensor, max_length: int, buffer: int) -> torch.Tensor:
    """DAPO's soft overlong punishment (Yu et al. 2025, eq. 13), added to the reward.

    0 up to ``max_length - buffer`` tokens, then falling linearly to -1 at ``max_length``,
    and -1 beyond it: ``((max_length - buffer) - length) / buffer`` inside the buffer.
    """
    if not 0 < buffer <= max_length:
        raise ValueError(f"the overlong buffer must be in [1, {max_length}], got {buffer}")
    lengths = lengths.to(torch.float32)
    inside = ((max_length - buffer) - lengths) / buffer
    return torch.where(
        lengths <= max_length - buffer,
        torch.zeros_like(lengths),
        torch.where(lengths <= max_length, inside, -torch.ones_like(lengths)),
    )


def constant_groups(
    scores: torch.Tensor,
    group_size: int,
    atol: float = 1e-6,
    baseline: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[Q]`` True where a question's k scores are all equal (within ``atol``), and equal to
    its ``baseline`` ``[Q]`` score where one is given (the greedy rationale's, for ``scst``).
    Given the reward totals, these are the groups with no reward signal for the baseline
    (DAPO's dynamic sampling drops them); their advantages are 0 only where nothing else enters
    the score (a KL reward under ``rloo`` or ``gae``, or penalties that differ, still moves
    them)."""
    grouped = scores.view(-1, group_size)
    if baseline is not None:
        grouped = torch.cat([grouped, baseline.to(grouped)[:, None]], dim=1)
    spread = grouped.max(dim=1).values - grouped.min(dim=1).values
    return spread <= atol
