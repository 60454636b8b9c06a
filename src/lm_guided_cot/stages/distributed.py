"""Data-parallel helpers of the stage modules: every reduction over ranks (sums, means,
gathered floats), gathering Python objects, and asking the large LM from rank 0 alone.

Large-LM calls under several processes go out one of two ways (``PPOModule.llm_calls``):
- ``every_rank``: each rank asks about its own shard; the client's shared SQLite cache and its
  claims make a request that two ranks share go out once. Needs a cache path every rank can
  reach (a shared file system across nodes).
- ``rank_zero``: the ranks' (question, rationale) pairs are gathered on rank 0, which asks the
  large LM for all of them in one batch and scatters the scores back. No shared file needed;
  one process holds the API connections and rate limits.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.rewards.base import RewardFunction, RewardOutput


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_objects(items: list[Any]) -> list[Any]:
    """Every rank's ``items`` concatenated in rank order (``items`` itself in one process)."""
    if _world() == 1:
        return items
    gathered: list[list[Any]] = [[] for _ in range(_world())]
    dist.all_gather_object(gathered, items)
    return [item for part in gathered for item in part]


def sum_over_ranks(strategy: Any, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the ranks of a Lightning strategy (itself in one process)."""
    return strategy.reduce(tensor, reduce_op="sum")


def mean_over_ranks(strategy: Any, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` averaged over the ranks of a Lightning strategy (itself in one process)."""
    return strategy.reduce(tensor, reduce_op="mean")


def token_count(strategy: Any, mask: torch.Tensor) -> torch.Tensor:
    """The mean token count over ranks: the divisor that makes the ranks' averaged loss (and
    gradients) the mean over all their tokens, as one process over the whole batch."""
    return mean_over_ranks(strategy, mask.sum())


def mean_across_ranks(module: Any, value: torch.Tensor) -> float:
    """A scalar averaged over the ranks of a LightningModule's trainer, as a float."""
    if module.trainer.world_size > 1:
        return float(module.all_gather(value.detach()).float().mean())
    return float(value)


def gather_floats(module: Any, values: torch.Tensor) -> list[float]:
    """Every rank's values in rank order, non-finite ones left out (so running statistics
    agree across ranks)."""
    if module.trainer.world_size > 1:
        values = module.all_gather(values.detach()).reshape(-1)
    return [float(v) for v in values.tolist() if math.isfinite(v)]


def std_over_ranks(module: Any, values: torch.Tensor) -> torch.Tensor:
    """Standard deviation of every rank's values together (logged once, not averaged)."""
    gathered = torch.tensor(gather_floats(module, values.float().to(module.device)))
    return gathered.std() if gathered.numel() > 1 else torch.zeros(())


@contextlib.contextmanager
def pretrained_loading(trainer: Any | None) -> Iterator[None]:
    """Load pretrained weights the way the strategy needs.

    Under ZeRO 3, ``configure_model`` runs where new parameters are sharded as they are made;
    transformers then has to gather each shard to copy the checkpoint in, which it does when
    it sees a ZeRO-3 config (``HfDeepSpeedConfig``), set only for this block.
    """
    strategy = getattr(trainer, "strategy", None)
    if not getattr(strategy, "zero_stage_3", False):
        yield
        return
    from transformers.integrations.deepspeed import HfDeepSpeedConfig, unset_hf_deepspeed_config

    keep = HfDeepSpeedConfig(strategy.config)  # transformers holds it through a weak reference
    try:
        yield
    finally:
        unset_hf_deepspeed_config()
        del keep


def full_weights(trainer: Any, module: torch.nn.Module) -> contextlib.AbstractContextManager:
    """Inside this block every rank holds the module's whole weights (ZeRO 3 shards them, and
    saving a shard writes empty tensors). Every rank must enter it: gathering is collective."""
    if not getattr(getattr(trainer, "strategy", None), "zero_stage_3", False):
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None)


def generation_kwargs(trainer: Any) -> dict[str, Any]:
    """Extra ``generate`` arguments a strategy needs: ZeRO 3 shards every weight, so all
    ranks must keep stepping until the longest sequence on any rank is done."""
    return {"synced_gpus": True} if getattr(trainer.strategy, "zero_stage_3", False) else {}


def rank_zero_reward(
    reward: RewardFunction, records: Sequence[QARecord], rationales: Sequence[str]
) -> RewardOutput:
    """Score every rank's rationales on rank 0 and hand each rank its own scores.

    Counters in ``logs`` stay on rank 0 (other ranks report zeros for the same keys), so a
    sum over ranks counts each call once.
    """
    if _world() == 1:
        return reward(records, rationales)
    all_records, all_rationales, span = gather_pairs(records, rationales)
    output = reward(all_records, all_rationales) if dist.get_rank() == 0 else None
    return scatter_scores(output, span)


def gather_pairs(
    records: Sequence[QARecord], rationales: Sequence[str]
) -> tuple[list[QARecord], list[str], tuple[int, int]]:
    """Every rank's (records, rationales) in rank order, and this rank's span of rows in them
    (a collective: every rank calls it, on the main thread)."""
    world = _world()
    if world == 1:
        return list(records), list(rationales), (0, len(records))
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, (list(records), list(rationales)))
    start = sum(len(part[0]) for part in parts[: dist.get_rank()])
    all_records = [r for part in parts for r in part[0]]
    all_rationales = [x for part in parts for x in part[1]]
    return all_records, all_rationales, (start, start + len(records))


def scatter_scores(output: RewardOutput | None, span: tuple[int, int]) -> RewardOutput:
    """Rank 0's ``output`` for every rank's rows: each rank gets the rows of its ``span``
    (a collective; ``output`` is read on rank 0 only; counters stay on rank 0)."""
    start, stop = span
    if _world() == 1:
        return output  # its span is every row
    payload: list[Any] = [None]
    if dist.get_rank() == 0:
        payload = [
            (
                output.total.tolist(),
                {k: v.tolist() for k, v in output.components.items()},
                dict(output.logs),
            )
        ]
    dist.broadcast_object_list(payload, src=0)
    total, components, logs = payload[0]
    return RewardOutput(
        torch.tensor(total[start:stop], dtype=torch.float32),
        {k: torch.tensor(v[start:stop], dtype=torch.float32) for k, v in components.items()},
        logs if dist.get_rank() == 0 else dict.fromkeys(logs, 0.0),
    )
