"""DAPO's dynamic sampling (``ppo.dynamic_sampling``): a question whose k rationales all get the
same reward gives RLOO nothing to learn from; its group is sampled again (``resample``) or left
out of the update (``skip``)."""

from __future__ import annotations

import torch

from lm_guided_cot.rewards.base import RewardOutput
from lm_guided_cot.rl.objectives import constant_groups
from lm_guided_cot.stages.distributed import generation_kwargs, sum_over_ranks
from lm_guided_cot.stages.ppo.rollout import Sampled, replace_reward_rows, replace_rows


class DynamicSampling:
    """Mixed into ``PPOModule``: uses its ``ppo``, ``policy``, ``_sample`` and ``_reward``."""

    def _dynamic_sampling(
        self, sampled: Sampled, reward: RewardOutput, baseline: torch.Tensor | None = None
    ) -> tuple[Sampled, RewardOutput, torch.Tensor, dict[str, int]]:
        """Sample the questions whose k rewards are all equal (and equal to their ``baseline``
        [Q] reward, the greedy rationale's under ``scst``) again (``resample``), then mark the
        rows of the groups still constant as skipped; returns the rollout's rows and ``keep``
        [B], with the counts.

        Every rank takes the same number of rounds (while any rank has a constant group), so
        ``rank_zero`` reward calls and ZeRO 3's synced generation stay in step; a rank with
        nothing left to sample draws one throw-away group when ZeRO 3 needs it generating.
        """
        k = self.ppo.samples_per_question
        input_ids, attention_mask = sampled.input_ids, sampled.attention_mask
        labels, texts, records = sampled.labels, list(sampled.texts), sampled.records
        constant = constant_groups(reward.total, k, baseline=baseline)
        counts = {"groups_constant": int(constant.sum()), "groups_resampled": 0}
        rounds = self.ppo.max_resample_rounds if self.ppo.dynamic_sampling == "resample" else 0
        for _ in range(rounds):
            if not int(sum_over_ranks(self.trainer.strategy, constant.sum().to(self.device))):
                break
            rows = constant.repeat_interleave(k).nonzero().squeeze(1).to(input_ids.device)
            if not len(rows):
                logs = self._idle_round(input_ids[:k], attention_mask[:k])
                logs = {key: reward.logs.get(key, 0.0) + logs.get(key, 0.0) for key in logs}
                reward = RewardOutput(reward.total, reward.components, {**reward.logs, **logs})
                continue
            new_labels, new_texts, new_reward = self._sample(
                input_ids[rows], attention_mask[rows], [records[i] for i in rows.tolist()]
            )
            labels = replace_rows(labels, rows, new_labels)
            for row, text in zip(rows.tolist(), new_texts):
                texts[row] = text
            reward = replace_reward_rows(reward, rows, new_reward)
            still = constant_groups(reward.total, k, baseline=baseline)
            counts["groups_resampled"] += int((constant & ~still).sum())
            constant = still
        counts["groups_skipped"] = int(constant.sum())
        keep = ~constant.repeat_interleave(k).to(self.device)
        sampled = Sampled(input_ids, attention_mask, labels, texts, records)
        return sampled, reward, keep, counts

    def _idle_round(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        """A resampling round for a rank with nothing to resample: take part in what other
        ranks wait for (ZeRO 3's synced generation, the gathering of ``rank_zero`` calls)."""
        if generation_kwargs(self.trainer):
            self.policy.generate(
                input_ids, attention_mask, self.ppo.rollout, **generation_kwargs(self.trainer)
            )
        if self.hparams.llm_calls == "rank_zero":  # rank 0's counters count every rank's calls
            return self._reward([], []).logs
        return {}
