"""PPOModule's validation and test: the guide's greedy rationales scored by the reward
(``validation_reward``: one reply per rationale where the training reward samples), logged per
reward component, with a table of samples."""

from __future__ import annotations

from typing import Any

import torch

from lm_guided_cot.rewards.base import validation_reward
from lm_guided_cot.stages.distributed import generation_kwargs
from lm_guided_cot.stages.run_logs import log_text_table


class RationaleEvaluation:
    """Mixed into ``PPOModule``: uses its ``policy``, ``reward``, ``eval_generation`` and
    ``_eval_rows``."""

    def validation_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        # A data module configured for stage 1 as well (the recipes' data.yaml) adds a loader of
        # the validation questions with distillation targets: stage 2 has no use for them.
        if "labels" not in batch:
            self._evaluate_batch(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate_batch(batch, "test")

    @torch.no_grad()
    def _evaluate_batch(self, batch: dict[str, Any], prefix: str) -> None:
        labels = self.policy.generate(
            batch["input_ids"],
            batch["attention_mask"],
            self.eval_generation,
            **generation_kwargs(self.trainer),
        )
        texts = self.policy.decode(labels)
        records = batch["records"]
        reward = validation_reward(self.reward)(records, texts)
        n = len(texts)
        self.log(
            f"{prefix}/reward",
            reward.total.float().mean().to(self.device),
            sync_dist=True,
            batch_size=n,
            add_dataloader_idx=False,
        )
        for name, values in reward.components.items():
            self.log(  # not {prefix}/reward/...: MLflow's file store keeps a name as a file
                f"{prefix}/rewards/{name}_mean",
                values.float().mean().to(self.device),
                sync_dist=True,
                batch_size=n,
                add_dataloader_idx=False,
            )
        self._eval_rows.extend(
            zip(
                [r.question for r in records],
                texts,
                reward.total.tolist(),
                [r.answer for r in records],
            )
        )

    def on_validation_epoch_end(self) -> None:
        self._flush_eval_rows("val")

    def on_test_epoch_end(self) -> None:
        self._flush_eval_rows("test")

    def _flush_eval_rows(self, prefix: str) -> None:
        rows, self._eval_rows = self._eval_rows, []
        if self.global_rank == 0 and not self.trainer.sanity_checking:
            k = self.hparams.num_logged_examples
            log_text_table(
                self, f"{prefix}/samples", ["question", "rationale", "reward", "gold"], rows[:k]
            )
