"""What a PPO checkpoint holds beyond the weights and the optimizer: the KL controller, the reward
statistics, the RNG states (restored after Lightning's seeding, so sampling continues where it
stopped) and, with ``max_staleness``, the pending rollouts of every rank."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities import rank_zero_warn

from lm_guided_cot.model_card import describe_object
from lm_guided_cot.stages.distributed import gather_objects
from lm_guided_cot.stages.ppo.rng import restore_rng_state, rng_state
from lm_guided_cot.stages.ppo.rollout import drop_unused_value_head


class CheckpointState:
    """Mixed into ``PPOModule``: uses its ``ppo``, ``kl_controller``, ``reward_stats``,
    ``reward``, ``_pending`` and the ``_restored_*`` fields its ``__init__`` sets."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["kl_controller"] = self.kl_controller.state_dict()
        checkpoint["reward_stats"] = self.reward_stats.state_dict()
        checkpoint["reward"] = describe_object(self.reward)  # for the model card of lmcot export
        checkpoint["rng"] = rng_state()
        if self.ppo.max_staleness:
            # held, not drained: every rank's pending rollouts, scored (see staleness.py)
            checkpoint["pending_rollouts"] = gather_objects([self._pending.state_dict()])

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.ppo.advantage != "gae":
            drop_unused_value_head(checkpoint)
        self.kl_controller.load_state_dict(checkpoint["kl_controller"])
        self.reward_stats.load_state_dict(checkpoint["reward_stats"])
        self._restored_rng = checkpoint.get("rng")
        self._restored_rollouts = checkpoint.get("pending_rollouts")

    def on_train_start(self) -> None:
        # Restored here, after Lightning's own seeding, so sampling continues where it stopped.
        if self._restored_rng:
            restore_rng_state(self._restored_rng)
            self._restored_rng = None
        self._restore_pending()
        self._say_what_checkpoints_hold()

    def _say_what_checkpoints_hold(self) -> None:
        """In place of Lightning's warning (and code sample) for ModelCheckpoint's
        ``every_n_train_steps`` under manual optimization (``cli.errors`` drops it): a PPO step
        is a whole rollout and its updates, so the state after the updates, with ``global_step``
        counting them, is what a resumed run must continue from; the state before them would
        repeat the step."""
        steps = [
            c._every_n_train_steps
            for c in self.trainer.checkpoint_callbacks
            if getattr(c, "_every_n_train_steps", 0)
        ]
        if steps and self.trainer.is_global_zero:
            print(
                f"lmcot: checkpoints every {f'{steps[0]} steps' if steps[0] > 1 else 'step'} hold "
                "the state after that step's PPO updates, which is where a resumed run continues",
                flush=True,
            )

    def _restore_pending(self) -> None:
        parts, self._restored_rollouts = self._restored_rollouts, None
        if not parts or not any(part["items"] for part in parts):
            return
        bound = self.ppo.max_staleness
        if len(parts) != self.trainer.world_size:
            rank_zero_warn(
                f"the checkpoint holds pending rollouts of {len(parts)} processes, this run "
                f"has {self.trainer.world_size}: they are dropped (their batches get no update)"
            )
            return
        self._pending.load_state_dict(parts[self.global_rank], self.device)
        held = len(self._pending)
        if held > bound:
            # the oldest go: updating on them would break the bound this run was given
            self._pending.drop_oldest(held - bound)
            rank_zero_warn(
                f"the checkpoint holds {held} pending batches of rationales and this run has "
                f"ppo.max_staleness={bound}: the {held - bound} oldest are dropped (never "
                f"updated on), so that no update is more than {bound} steps stale"
            )
