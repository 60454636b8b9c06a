"""What the advantages see of a batch's rewards (``ppo.reward_scaling``, the penalties,
``ppo.reward_clip``) and, under ``advantage: scst``, the greedy rationale each sample is judged
against."""

from __future__ import annotations

from typing import Any

import torch

from lm_guided_cot.data.targets import IGNORE_INDEX
from lm_guided_cot.rewards.base import RewardOutput
from lm_guided_cot.rl.objectives import overlong_penalty
from lm_guided_cot.stages.distributed import gather_floats, generation_kwargs
from lm_guided_cot.stages.ppo.rollout import Greedy, Sampled, nonempty, split_reward_rows


class Scoring:
    """Mixed into ``PPOModule``: uses its ``ppo``, ``policy``, ``reward_stats``,
    ``eval_generation``, ``_sample_batch`` and ``_reward``."""

    def _scores(
        self, raw: torch.Tensor, penalties: torch.Tensor | None = None, update: bool = True
    ) -> torch.Tensor:
        """The scores the advantages see: the reward totals scaled, plus the penalties, clipped
        (inside ``reward_clip``, so nothing escapes the bound). ``update``: add ``raw`` to the
        running statistics first (not for the ``scst`` baseline, which is scaled as its
        batch's samples are)."""
        cfg = self.ppo
        scores = raw
        if cfg.reward_scaling != "none":
            if update:
                self.reward_stats.update(gather_floats(self, raw))
            std = max(self.reward_stats.std, cfg.reward_std_floor)
            shift = self.reward_stats.mean if cfg.reward_scaling == "running_zscore" else 0.0
            scores = (raw - shift) / std
        if penalties is not None:
            scores = scores + penalties.to(scores.dtype)
        if cfg.reward_clip is not None:
            scores = scores.clamp(-cfg.reward_clip, cfg.reward_clip)
        return scores

    def _penalties(self, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B] what the missing-EOS and overlong penalties add to each score (0 or less)."""
        cfg = self.ppo
        penalties = torch.zeros(labels.shape[0], device=self.device)
        if cfg.missing_eos_penalty:
            cut = ~(labels == self.policy.tokenizer.eos_token_id).any(dim=1)
            penalties = penalties - cfg.missing_eos_penalty * cut.to(penalties.dtype)
        if cfg.overlong_buffer is not None:
            penalty = overlong_penalty(
                mask.sum(dim=1), cfg.rollout.max_new_tokens, cfg.overlong_buffer
            )
            penalties = penalties + cfg.overlong_penalty * penalty.to(penalties.device)
        return penalties

    def _sample_with_greedy(self, batch: dict[str, Any]) -> tuple[Sampled, RewardOutput, Greedy]:
        """``scst``'s steps 1 and 2: the k samples and the greedy rationale of each question
        (decoded as ``eval_generation`` says, as validation and test decode), scored in one
        reward call."""
        sampled = self._sample_batch(batch)
        labels = self.policy.generate(
            batch["input_ids"],
            batch["attention_mask"],
            self.eval_generation,
            **generation_kwargs(self.trainer),
        )
        labels = nonempty(labels, self.policy.tokenizer.eos_token_id)
        texts = self.policy.decode(labels)
        both = self._reward(sampled.records + list(batch["records"]), sampled.texts + texts)
        reward, greedy_scores = split_reward_rows(both, len(sampled.texts))
        return sampled, reward, Greedy(labels, texts, greedy_scores)

    def _greedy_baseline(
        self, greedy: Greedy | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The greedy rationales' reward totals [Q] and their scores [Q], scaled (without
        joining the running statistics) and penalised as the samples are; ``None`` without."""
        if greedy is None:
            return None, None
        totals = greedy.scores.to(self.device)
        mask = (greedy.labels != IGNORE_INDEX).float()
        return totals, self._scores(totals, self._penalties(greedy.labels, mask), update=False)
