"""What ``PPOModule`` logs after each step's updates (README.md, "Stage 2", lists them)."""

from __future__ import annotations

import functools
from typing import Any

import torch

from lm_guided_cot.rl.core import explained_variance
from lm_guided_cot.stages.distributed import std_over_ranks, sum_over_ranks
from lm_guided_cot.stages.ppo.rollout import (
    PPOStats,
    Rollout,
    eos_rate,
    informative_groups,
    llm_usage,
    policy_signal,
)
from lm_guided_cot.stages.run_logs import log_text_table


def log_step(module: Any, roll: Rollout, stats: PPOStats, sequence_kl: torch.Tensor) -> None:
    """Log a PPO step's metrics, counters and sample table (from the batch it updated on)."""
    mask = roll.mask
    n = mask.shape[0]
    log = {
        "reward/total_mean": roll.raw_scores.float().mean(),
        "reward/total_std": std_over_ranks(module, roll.raw_scores),
        "kl/mean": sequence_kl,
        "kl/k3": roll.kl_k3.sum(dim=1).mean(),
        "kl/coef": torch.tensor(module.kl_controller.value),
        "rationale/length": mask.sum(dim=1).mean(),
        "rationale/eos_rate": eos_rate(roll.labels, module.policy.tokenizer.eos_token_id),
    }
    if roll.greedy_scores is not None:
        log["reward/greedy_mean"] = roll.greedy_scores.float().mean()
    if module.ppo.max_staleness:
        log["ppo/staleness"] = torch.tensor(float(roll.staleness))
        log["time/reward_wait_s"] = torch.tensor(roll.reward_wait_s)
    log.update(signal_logs(module, roll))
    for name, values in roll.reward.components.items():
        values = values.float()
        log[f"reward/{name}_mean"] = values.mean()
        log[f"reward/{name}_std"] = std_over_ranks(module, values)
    for name, value in stats.means().items():
        log[f"ppo/{name}"] = value
    if module.ppo.advantage == "gae":
        log["ppo/explained_variance"] = explained_variance(
            roll.values,
            roll.returns,
            mask,
            all_reduce=functools.partial(sum_over_ranks, module.trainer.strategy),
        )
    log = {k: v.detach().float().to(module.device) for k, v in log.items()}
    module.log_dict(log, on_step=True, on_epoch=False, sync_dist=True, batch_size=n)
    module.log(
        "reward",
        log["reward/total_mean"],
        prog_bar=True,
        on_step=True,
        logger=False,
        batch_size=n,
    )
    counters = {f"ppo/{name}": count for name, count in roll.groups.items()}
    for key, value in {**roll.reward.logs, **llm_usage(module.reward), **counters}.items():
        module.log(
            key,
            float(value),
            on_step=True,
            on_epoch=False,
            reduce_fx="sum",
            sync_dist=True,
            batch_size=n,
        )
    if module.global_rank == 0 and module.hparams.num_logged_examples:
        k = module.hparams.num_logged_examples
        log_text_table(
            module,
            "train/samples",
            ["question", "rationale", "reward", "gold"],
            [
                (r.question, t, f"{s:.3f}", r.answer)
                for r, t, s in zip(roll.records[:k], roll.texts[:k], roll.raw_scores[:k].tolist())
            ],
        )


def signal_logs(module: Any, roll: Rollout) -> dict[str, torch.Tensor]:
    """Whether the step had anything to learn from, as one process over every rank's rows
    would say (each rank logs the same value; ``sync_dist``'s mean leaves it as it is).

    - ``ppo/informative_groups``: the share of the step's questions whose k reward totals are
      not all equal (after dynamic sampling; under ``scst``, not all equal to the greedy
      rationale's). Not logged for k = 1 without ``scst``: there is no group, and
      ``reward/total_std`` says whether the batch's rewards differ.
    - ``ppo/policy_updated``: 1 if any rank's policy got a gradient from the advantages
      (``rollout.policy_signal``), else 0.
    """
    strategy = module.trainer.strategy
    out = {}
    k = module.ppo.samples_per_question
    if k > 1 or roll.greedy_scores is not None:
        informative, questions = informative_groups(roll.raw_scores, k, roll.greedy_scores)
        counts = torch.tensor([float(informative), float(questions)], device=module.device)
        informative, questions = sum_over_ranks(strategy, counts).tolist()
        out["ppo/informative_groups"] = torch.tensor(informative / max(questions, 1.0))
    updated = sum_over_ranks(strategy, policy_signal(roll).to(module.device))
    out["ppo/policy_updated"] = (updated > 0).float()
    return out
