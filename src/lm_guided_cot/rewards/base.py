"""The reward interface: batched, from (records, rationales) to a score per rationale.

A reward is an object chosen in YAML by ``class_path``/``init_args``; every reward returns a
``RewardOutput`` with the total it contributes and named components for logging, so that a
weighted sum can report each part.

A reward implements ``ascore`` (async: rewards that wait on the large LM, so that a sum can
gather its parts on the one large-LM event loop) or ``__call__`` (plain code); each of the two
falls back on the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.llm.loop import run_sync
from lm_guided_cot.llm.usage import RoleUsage, add_usages, check_failures, flat_usage

if TYPE_CHECKING:
    from lm_guided_cot.llm.client import LLMClient


@dataclass
class RewardOutput:
    """Scores of a batch: ``total[B]``, ``components{name: [B]}``, and counters for the logs."""

    total: torch.Tensor
    components: dict[str, torch.Tensor] = field(default_factory=dict)
    logs: dict[str, float] = field(default_factory=dict)


class RewardFunction:
    """Base class: subclasses implement ``ascore`` or ``__call__``; one that asks the large LM
    keeps its client in ``self.client`` (or lists them in ``clients``) for the usage counters."""

    name: str = "reward"

    def __call__(self, records: Sequence[QARecord], rationales: Sequence[str]) -> RewardOutput:
        if type(self).ascore is RewardFunction.ascore:
            raise NotImplementedError(f"{type(self).__name__} defines neither __call__ nor ascore")
        return run_sync(self.ascore(records, rationales))

    async def ascore(self, records: Sequence[QARecord], rationales: Sequence[str]) -> RewardOutput:
        """The scores, awaited; by default ``__call__`` in a worker thread."""
        if type(self).__call__ is RewardFunction.__call__:
            raise NotImplementedError(f"{type(self).__name__} defines neither __call__ nor ascore")
        return await asyncio.to_thread(self, records, rationales)

    def for_validation(self) -> RewardFunction:
        """The reward that validation reports: this one, unless a reward trains on a denser
        estimate of what the evaluation measures (``AnswerReward`` with ``samples``)."""
        return self

    def clients(self) -> list[LLMClient]:
        """The large-LM clients this reward calls."""
        client = getattr(self, "client", None)
        return [client] if client is not None else []

    def role_usages(self) -> dict[str, RoleUsage] | None:
        """Large-LM counters per role of this reward's clients; ``None`` if it asks no large LM
        (a reward that does but has not yet reports ``{}``)."""
        return merge_usage([self])

    def usage(self) -> dict[str, float]:
        """The same counters as flat ``llm/...`` keys (none without a large LM)."""
        usages = self.role_usages()
        return flat_usage(usages) if usages is not None else {}


async def ascore_of(
    reward: RewardFunction, records: Sequence[QARecord], rationales: Sequence[str]
) -> RewardOutput:
    """``reward.ascore``, unless a subclass overrides ``__call__`` below the class whose
    ``ascore`` it inherits: that ``__call__`` is then the reward, run in a worker thread."""
    for cls in type(reward).__mro__:
        if "ascore" in vars(cls):
            return await reward.ascore(records, rationales)
        if "__call__" in vars(cls):
            return await asyncio.to_thread(reward, records, rationales)
    raise TypeError(f"{type(reward).__name__} is not callable: it is no reward")


def validation_reward(reward: Any) -> Any:
    """``reward.for_validation()``; a scripted reward that is no ``RewardFunction`` as it is."""
    for_validation = getattr(reward, "for_validation", None)
    return for_validation() if callable(for_validation) else reward


def as_tensor(values: Sequence[float]) -> torch.Tensor:
    return torch.tensor(list(values), dtype=torch.float32)


def role_usages_of(reward: Any) -> dict[str, RoleUsage] | None:
    """``reward.role_usages()``; ``None`` for a reward that has none (a scripted reward that is
    no ``RewardFunction`` asks no large LM)."""
    role_usages = getattr(reward, "role_usages", None)
    return role_usages() if callable(role_usages) else None


def merge_usage(rewards: Sequence[RewardFunction]) -> dict[str, RoleUsage] | None:
    """Counters per role of several rewards, each shared endpoint counted once; ``None`` when
    none of them asks the large LM."""
    clients = {}
    others = []  # rewards that do not say which clients they call
    for reward in rewards:
        if isinstance(reward, RewardFunction):
            for client in reward.clients():
                clients.setdefault(client.endpoint, client)  # its clients share the counters
        elif (usages := role_usages_of(reward)) is not None:
            others.append(usages)
    if not clients and not others:
        return None
    return add_usages(*(client.role_usages() for client in clients.values()), *others)


def check_reward_calls(
    reward: RewardFunction, failed: int, calls: int, first_error: str | None
) -> None:
    """Stop stage 2 before it optimises on fallback rewards: ``RunError`` when a batch's calls
    of ``reward`` failed at its large LM's ``max_failure_rate`` (by default: all of them)."""
    client: LLMClient = reward.client  # type: ignore[attr-defined]
    check_failures(
        f"reward {reward.name!r}",
        failed,
        calls,
        client.where,
        first_error,
        client.config.max_failure_rate,
        then="stopped before the policy learns from fallback rewards; check the large LM's "
        "settings (model, api_base, key, server) and run again (--ckpt_path resumes)",
    )


def check_lengths(records: Sequence[Any], rationales: Sequence[str]) -> None:
    if len(records) != len(rationales):
        raise ValueError(f"{len(records)} records but {len(rationales)} rationales")
