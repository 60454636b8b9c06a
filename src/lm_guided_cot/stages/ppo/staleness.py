"""Bounded staleness (``ppo.max_staleness``): rollouts whose rewards are still out.

A step samples a batch, computes at once what only the policy that sampled it knows (its
token log-probs, the value head's values, the reference log-probs) and hands the texts to the
reward on the process's large-LM event loop (``lm_guided_cot.llm.loop``), where the calls of
several pending batches run concurrently; it then updates on the oldest batch once more than
``max_staleness`` are out. The queue lives on the main thread: every collective (gathering
texts for ``rank_zero`` calls, scattering their scores) is made there, never on the loop.

A checkpoint holds the queue: it waits for the pending rewards and stores every rollout,
scored, as plain tensors, lists and strings (checkpoints load with ``weights_only=True``).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, fields
from typing import Any

import torch

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.rewards.base import RewardOutput
from lm_guided_cot.stages.distributed import gather_pairs, scatter_scores
from lm_guided_cot.stages.ppo.rollout import Behaviour, Rollout, Sampled, Scores


@dataclass
class PendingRollout:
    """A sampled batch waiting for its rewards; ``born`` numbers the rollouts in order."""

    sampled: Sampled
    behaviour: Behaviour
    scores: Scores
    born: int

    def state(self) -> dict[str, Any]:
        """Plain, on the CPU, scored (waits for the reward)."""
        output = self.scores.wait()
        sampled = {f.name: getattr(self.sampled, f.name) for f in fields(Sampled)}
        sampled["records"] = [r.to_row() if r is not None else None for r in sampled["records"]]
        behaviour = {f.name: getattr(self.behaviour, f.name) for f in fields(Behaviour)}
        return _cpu(
            {
                "sampled": sampled,
                "behaviour": behaviour,
                "output": None if output is None else _output_state(output),
                "span": list(self.scores.span) if self.scores.span is not None else None,
                "born": self.born,
            }
        )

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> PendingRollout:
        sampled = {k: _to(v, device) for k, v in state["sampled"].items()}
        sampled["records"] = [
            QARecord.from_row(r) if r is not None else None for r in sampled["records"]
        ]
        behaviour = {k: _to(v, device) for k, v in state["behaviour"].items()}
        output = state["output"]
        span = tuple(state["span"]) if state["span"] is not None else None
        return cls(
            Sampled(**sampled),
            Behaviour(**behaviour),
            Scores(output=None if output is None else RewardOutput(**output), span=span),
            state["born"],
        )


class PendingQueue:
    """The rollouts whose rewards are out, oldest first, and how many rollouts were made."""

    def __init__(self) -> None:
        self.items: deque[PendingRollout] = deque()
        self.made = 0

    def __len__(self) -> int:
        return len(self.items)

    def push(self, sampled: Sampled, behaviour: Behaviour, scores: Scores) -> None:
        self.items.append(PendingRollout(sampled, behaviour, scores, self.made))
        self.made += 1

    def pop(self) -> PendingRollout:
        """The oldest pending rollout (its reward may still be running)."""
        return self.items.popleft()

    def state_dict(self) -> dict[str, Any]:
        """Every pending rollout, scored (waits for their rewards)."""
        return {"made": self.made, "items": [item.state() for item in self.items]}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.items = deque(PendingRollout.from_state(s, device) for s in state["items"])
        self.made = state["made"]

    def drop_oldest(self, n: int) -> None:
        """Drop the ``n`` oldest pending rollouts (their rewards are done: restored ones are)."""
        for _ in range(n):
            self.items.popleft().scores.wait()

    def drain(self) -> int:
        """Wait for every pending reward and drop the rollouts; how many there were."""
        n = len(self.items)
        while self.items:
            self.items.popleft().scores.wait()
        return n


def _output_state(output: RewardOutput) -> dict[str, Any]:
    return {
        "total": output.total,
        "components": dict(output.components),
        "logs": {k: float(v) for k, v in output.logs.items()},
    }


def _cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cpu(v) for v in value]
    return value


def _to(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value


class StaleRollouts:
    """Mixed into ``PPOModule``: the training step's rollout with ``max_staleness`` > 0; uses its
    ``ppo``, ``_pending``, ``_sample_batch``, ``_behaviour``, ``_dynamic_sampling`` and ``_finish``."""

    @torch.no_grad()
    def _stale_rollout(self, batch: dict[str, Any]) -> Rollout | None:
        """Sample the batch and send it to the reward; the rollout of the oldest pending batch
        once more than ``max_staleness`` are out (``None`` before: nothing to update on)."""
        sampled = self._sample_batch(batch)
        self._pending.push(sampled, self._behaviour(sampled), self._submit(sampled))
        if len(self._pending) <= self.ppo.max_staleness:
            return None
        oldest = self._pending.pop()
        start = time.perf_counter()
        reward = oldest.scores.wait()
        waited = time.perf_counter() - start
        if oldest.scores.span is not None:  # rank_zero: rank 0 scored every rank's rows
            reward = scatter_scores(reward, oldest.scores.span)
        keep, groups = None, {}
        if self.ppo.dynamic_sampling == "skip":
            _, reward, keep, groups = self._dynamic_sampling(oldest.sampled, reward)
        roll = self._finish(oldest.sampled, oldest.behaviour, reward, keep, groups)
        roll.staleness = self._pending.made - 1 - oldest.born
        roll.reward_wait_s = waited
        return roll

    def _submit(self, sampled: Sampled) -> Scores:
        """Start the batch's reward call; under ``rank_zero``, every rank's texts are gathered
        here (on the main thread) and rank 0 alone asks."""
        if self.hparams.llm_calls == "rank_zero" and self.trainer.world_size > 1:
            records, texts, span = gather_pairs(sampled.records, sampled.texts)
            if self.global_rank != 0:
                return Scores(span=span)
            return Scores.submit(self.reward, records, texts, span)
        return Scores.submit(self.reward, sampled.records, sampled.texts)
