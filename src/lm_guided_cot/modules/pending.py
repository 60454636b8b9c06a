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

import asyncio
import concurrent.futures
from collections import deque
from dataclasses import dataclass, fields
from typing import Any

import torch

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.llm.loop import LoopThread, acquire_loop, release_loop
from lm_guided_cot.rewards.base import RewardOutput, ascore_of


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
