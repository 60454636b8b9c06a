"""Stage 2, rationale refinement with PPO, for seq2seq and causal small LMs.

README.md, "Stage 2", is the manual, with the table of decisions that keep the estimates
unbiased (each held by a test in tests/modules/test_ppo_correctness.py). Supports: GAE with a
value head or critic-free RLOO over k samples; fixed or adaptive KL (k1 per token, k3 logged);
reward scaling and clipping; exact resume; DDP and DeepSpeed ZeRO 2/3, with large-LM calls
from every rank or from rank 0 (``llm_calls``). One ``training_step``: sample -> rewards ->
reference log-probs -> advantages -> ``ppo_epochs`` of minibatch updates, so
``trainer.global_step`` counts optimizer steps.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.data.targets import IGNORE_INDEX
from lm_guided_cot.errors import ConfigurationError, check_at_least, check_positive
from lm_guided_cot.hparams import as_dataclass, save_hparams
from lm_guided_cot.llm.usage import COUNTERS, RoleUsage, total_usage
from lm_guided_cot.lora import LoRAConfig
from lm_guided_cot.model_card import describe_object
from lm_guided_cot.modules.distributed import (
    gather_floats,
    generation_kwargs,
    mean_across_ranks,
    pretrained_loading,
    rank_zero_reward,
    std_over_ranks,
    sum_over_ranks,
    token_count,
)
from lm_guided_cot.modules.ppo_config import PPOConfig
from lm_guided_cot.modules.reporting import export_at_fit_end, log_text_table
from lm_guided_cot.modules.rng import restore_rng_state, rng_state
from lm_guided_cot.modules.rollout import PPOStats, Rollout, replace_reward_rows, replace_rows
from lm_guided_cot.policy import (
    AdapterFreeReference,
    GenerationConfig,
    SmallLM,
    ValueHead,
    hidden_size,
)
from lm_guided_cot.rewards.base import RewardFunction, RewardOutput, role_usages_of
from lm_guided_cot.rl.control import AdaptiveKLController, FixedKLController, RunningMoments
from lm_guided_cot.rl.core import (
    clipped_policy_loss,
    clipped_value_loss,
    explained_variance,
    generalized_advantages,
    kl_penalty,
    leave_one_out_advantages,
    masked_mean,
    masked_whiten,
    scale_to_unit_std,
    token_rewards,
)
from lm_guided_cot.rl.objectives import (
    constant_groups,
    group_advantages,
    loss_weights,
    overlong_penalty,
)


class PPOModule(L.LightningModule):
    """Stage 2 (see the module docstring).

    Args:
        model: the policy's starting point, normally the stage-1 export folder.
        reward: the reward (``class_path``/``init_args`` in YAML).
        reference: the frozen KL reference (default: ``model``; with ``lora``, ``model`` is
            not loaded twice: the policy with its adapters off is the reference).
        ppo: PPO settings.
        learning_rate: AdamW learning rate (policy and value head; above 0).
        weight_decay: AdamW weight decay (at least 0).
        eval_generation: how rationales are generated in validation and test (greedy default).
        num_logged_examples: rows of the sample tables in the loggers (at least 0).
        export_dir: where ``fit`` writes the policy's ``save_pretrained`` folder (default
            ``<log dir>/export``).
        llm_calls: under several processes, ``every_rank`` asks the large LM about each rank's
            own rationales (the shared cache sends a request two ranks share once), or
            ``rank_zero`` gathers them on rank 0, which asks and scatters the scores back (see
            ``lm_guided_cot.modules.distributed``).
        gradient_checkpointing: recompute the policy's activations in backward instead of
            keeping them (much less memory per minibatch, about a third more time per update).
        lora: train LoRA adapters (and the value head) instead of every weight (``None``: full
            fine-tuning).
        export_adapter_only: with ``lora``, ``fit`` exports peft's adapter folder alone
            instead of the model with the adapters merged in.
    """

    def __init__(
        self,
        model: str,
        reward: RewardFunction,
        reference: str | None = None,
        ppo: PPOConfig = PPOConfig(),  # noqa: B008 (a plain dataclass, copied)
        learning_rate: float = 1e-5,
        weight_decay: float = 0.0,
        eval_generation: GenerationConfig = GenerationConfig(),  # noqa: B008 (copied)
        num_logged_examples: int = 8,
        export_dir: str | None = None,
        llm_calls: Literal["every_rank", "rank_zero"] = "every_rank",
        gradient_checkpointing: bool = False,
        lora: LoRAConfig | None = None,
        export_adapter_only: bool = False,
    ) -> None:
        check_positive("PPOModule.learning_rate", learning_rate)
        if export_adapter_only and lora is None:
            raise ConfigurationError(
                "PPOModule.export_adapter_only needs PPOModule.lora (adapters)"
            )
        check_at_least("PPOModule.weight_decay", weight_decay, 0)
        check_at_least("PPOModule.num_logged_examples", num_logged_examples, 0)
        super().__init__()
        self.ppo = as_dataclass(PPOConfig, ppo)
        self.eval_generation = as_dataclass(GenerationConfig, eval_generation)
        self.lora = as_dataclass(LoRAConfig, lora) if lora is not None else None
        save_hparams(
            self,
            ignore=("reward",),
            ppo=self.ppo,
            eval_generation=self.eval_generation,
            lora=self.lora,
        )
        self.automatic_optimization = False
        self.model_spec = model
        self.reference_spec = reference or model
        # Objects are kept as given: under LightningCLI, hparams hold their config dicts.
        self.reward = reward
        self.policy: SmallLM | None = None
        self.value_head: ValueHead | None = None
        self.kl_controller = (
            AdaptiveKLController(self.ppo.init_kl_coef, self.ppo.target_kl, self.ppo.kl_horizon)
            if self.ppo.target_kl is not None
            else FixedKLController(self.ppo.init_kl_coef)
        )
        self.reward_stats = RunningMoments()
        self._eval_rows: list[tuple[Any, ...]] = []

    # ---- model -------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        # Loaded here, before configure_model: under ZeRO 3 that hook runs inside a context
        # that shards every new parameter, and the frozen reference must stay whole.
        self._load_reference()
        # DeepSpeed clips inside its engine and ignores clip_gradients: hand it max_grad_norm.
        config = getattr(self.trainer.strategy, "config", None)
        if isinstance(config, dict) and self.ppo.max_grad_norm is not None:
            config.setdefault("gradient_clipping", self.ppo.max_grad_norm)

    def configure_model(self) -> None:
        if self.policy is not None:
            return
        with pretrained_loading(self._trainer):
            self.policy = SmallLM.from_pretrained(self.model_spec)
        if self.lora is not None:
            self.policy.add_adapters(self.lora)
        # No dropout (the adapters' too), so that train mode (Lightning's, and what gradient checkpointing needs)
        # gives the rollout's log-probs again in every update; generation runs in eval mode.
        self.policy.disable_dropout()
        self.policy.model.train()
        if self.hparams.gradient_checkpointing:
            self.policy.enable_gradient_checkpointing()
        # RLOO has no value loss: a head it never used would still be in the optimizer, and
        # DDP (find_unused_parameters=False) would wait forever for its gradients.
        if self.ppo.advantage == "gae":
            self.value_head = ValueHead(hidden_size(self.policy.model))

    def _reference_is_base(self) -> bool:
        """Whether the reference is the policy's own base weights (adapters off)."""
        return self.lora is not None and self.reference_spec == self.model_spec

    def _load_reference(self) -> SmallLM | None:
        if self._reference_is_base():
            return None
        if "_reference" not in self.__dict__:
            reference = SmallLM.from_pretrained(self.reference_spec).requires_grad_(False).eval()
            # Outside the module tree: not in state_dict, the optimizer or a DeepSpeed engine.
            object.__setattr__(self, "_reference", reference)
        return self.__dict__["_reference"]

    @property
    def reference(self) -> SmallLM | AdapterFreeReference:
        if self._reference_is_base():
            return AdapterFreeReference(self.policy)
        ref = self._load_reference()
        if next(ref.parameters()).device != self.device:
            ref.to(self.device)
        return ref

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(
            params, lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay
        )

    # ---- rollout -------------------------------------------------------------------------------

    def _reward(self, records: list[QARecord], texts: list[str]) -> RewardOutput:
        if self.hparams.llm_calls == "rank_zero":
            return rank_zero_reward(self.reward, records, texts)
        return self.reward(records, texts)

    def _scores(self, raw: torch.Tensor) -> torch.Tensor:
        cfg = self.ppo
        scores = raw
        if cfg.reward_scaling != "none":
            self.reward_stats.update(gather_floats(self, raw))
            std = max(self.reward_stats.std, cfg.reward_std_floor)
            shift = self.reward_stats.mean if cfg.reward_scaling == "running_zscore" else 0.0
            scores = (raw - shift) / std
        if cfg.reward_clip is not None:
            scores = scores.clamp(-cfg.reward_clip, cfg.reward_clip)
        return scores

    def _sample(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, records: list[QARecord]
    ) -> tuple[torch.Tensor, list[str], RewardOutput]:
        """Rationales for the given prompt rows, their texts and their rewards."""
        labels = self.policy.generate(
            input_ids, attention_mask, self.ppo.rollout, **generation_kwargs(self.trainer)
        )
        labels = _nonempty(labels, self.policy.tokenizer.eos_token_id)
        texts = self.policy.decode(labels)
        return labels, texts, self._reward(records, texts)

    @torch.no_grad()
    def rollout(self, batch: dict[str, Any]) -> Rollout:
        """Sample rationales for a batch of questions and score everything PPO needs.

        ``batch["records"]`` holds the rows' ``QARecord`` objects, in batch order."""
        cfg = self.ppo
        k = cfg.samples_per_question
        input_ids = batch["input_ids"].repeat_interleave(k, dim=0)
        attention_mask = batch["attention_mask"].repeat_interleave(k, dim=0)
        # in repeat_interleave's order: each question's k samples consecutive
        records = [record for record in batch["records"] for _ in range(k)]
        labels, texts, reward = self._sample(input_ids, attention_mask, records)
        keep, groups = None, {}
        if cfg.dynamic_sampling != "off":
            labels, texts, reward, keep, groups = self._dynamic_sampling(
                input_ids, attention_mask, records, labels, texts, reward
            )
        eos = self.policy.tokenizer.eos_token_id
        mask = (labels != IGNORE_INDEX).float()
        raw_scores = reward.total.to(self.device)
        scores = self._scores(raw_scores)
        if cfg.missing_eos_penalty:
            cut = ~(labels == eos).any(dim=1)
            scores = scores - cfg.missing_eos_penalty * cut.to(scores.dtype)
        if cfg.overlong_buffer is not None:
            penalty = overlong_penalty(
                mask.sum(dim=1), cfg.rollout.max_new_tokens, cfg.overlong_buffer
            )
            scores = scores + cfg.overlong_penalty * penalty.to(scores.dtype)

        temperature = cfg.rollout.temperature  # score with the distribution sampled from
        current = self.policy.rationale_forward(
            input_ids, attention_mask, labels, self.value_head, temperature=temperature
        )
        ref_logprobs = self.reference.token_logprobs(
            input_ids, attention_mask, labels, temperature=temperature
        )
        kl = kl_penalty(current.logprobs, ref_logprobs, cfg.kl_estimator) * mask
        kl_k3 = kl_penalty(current.logprobs, ref_logprobs, "k3") * mask
        beta = self.kl_controller.value
        summed = functools.partial(sum_over_ranks, self.trainer.strategy)
        if cfg.advantage == "gae":
            rewards = token_rewards(scores, kl, mask, beta)
            advantages, returns = generalized_advantages(
                rewards, current.values, mask, cfg.gamma, cfg.lam
            )
            if cfg.whiten:
                # by the statistics of every rank's tokens, as one process would over the batch
                advantages = masked_whiten(advantages, mask, all_reduce=summed)
        else:
            sequence = scores - beta * kl.sum(dim=1)
            if cfg.advantage == "rloo":
                per_rationale = leave_one_out_advantages(sequence, k)
            else:
                per_rationale = group_advantages(sequence, k, scale=cfg.advantage == "grpo")
            if cfg.whiten:
                # per rationale and by scale only, never per token (see PPOConfig)
                per_rationale = scale_to_unit_std(per_rationale, all_reduce=summed)
            advantages = per_rationale[:, None] * mask
            returns = torch.zeros_like(advantages)
        return Rollout(
            input_ids=input_ids,
            attention_mask=attention_mask,
            labels=labels,
            mask=mask,
            logprobs=current.logprobs,
            values=current.values,
            advantages=advantages,
            returns=returns,
            kl=kl,
            kl_k3=kl_k3,
            raw_scores=raw_scores,
            reward=reward,
            texts=texts,
            records=records,
            keep=keep,
            groups=groups,
        )

    def _dynamic_sampling(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        records: list[QARecord],
        labels: torch.Tensor,
        texts: list[str],
        reward: RewardOutput,
    ) -> tuple[torch.Tensor, list[str], RewardOutput, torch.Tensor, dict[str, int]]:
        """Sample the questions whose k rewards are all equal again (``resample``), then mark
        the rows of the groups still constant as skipped; returns the rollout's rows and
        ``keep`` [B], with the counts.

        Every rank takes the same number of rounds (while any rank has a constant group), so
        ``rank_zero`` reward calls and ZeRO 3's synced generation stay in step; a rank with
        nothing left to sample draws one throw-away group when ZeRO 3 needs it generating.
        """
        k = self.ppo.samples_per_question
        constant = constant_groups(reward.total, k)
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
            still = constant_groups(reward.total, k)
            counts["groups_resampled"] += int((constant & ~still).sum())
            constant = still
        counts["groups_skipped"] = int(constant.sum())
        keep = ~constant.repeat_interleave(k).to(self.device)
        return labels, texts, reward, keep, counts

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

    # ---- training ----------------------------------------------------------------------------

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        cfg = self.ppo
        roll = self.rollout(batch)
        optimizer = self.optimizers()
        n = roll.labels.shape[0]
        rows = n
        if roll.keep is not None:  # every rank takes as many minibatches as the fullest one
            rows = int(self.all_gather(roll.keep.sum()).max())
        stats = PPOStats()
        for _ in range(cfg.ppo_epochs):
            order = roll.update_order()
            for start in range(0, rows, cfg.minibatch_size):
                mb = order[start : start + cfg.minibatch_size]
                self._minibatch_step(roll, mb, optimizer, stats)
        sequence_kl = roll.kl.sum(dim=1).mean()
        self.kl_controller.update(mean_across_ranks(self, sequence_kl), n * self.trainer.world_size)
        self._log_step(roll, stats, sequence_kl)

    def _minibatch_step(
        self, roll: Rollout, mb: torch.Tensor, optimizer: LightningOptimizer, stats: PPOStats
    ) -> None:
        """One update on the rollout's rows ``mb``: losses, backward, step, statistics."""
        cfg = self.ppo
        mask = roll.update_mask(mb)
        strategy = self.trainer.strategy
        count = token_count(strategy, mask)
        weights = None
        if cfg.aggregation != "token":
            sequences = token_count(strategy, (mask.sum(dim=1) > 0).float())
            weights = loss_weights(mask, cfg.aggregation, cfg.rollout.max_new_tokens, sequences)
        out = self.policy.rationale_forward(
            roll.input_ids[mb],
            roll.attention_mask[mb],
            roll.labels[mb],
            self.value_head,
            with_entropy=True,
            entropy_grad=bool(cfg.entropy_coef),
            temperature=cfg.rollout.temperature,
        )
        low, high = cfg.clip_bounds
        policy = clipped_policy_loss(
            out.logprobs, roll.logprobs[mb], roll.advantages[mb], mask, low, count, high, weights
        )
        loss = policy.loss
        entropy = masked_mean(out.entropy, mask, count=count)
        if cfg.entropy_coef:
            loss = loss - cfg.entropy_coef * entropy
        if cfg.advantage == "gae":
            value = clipped_value_loss(
                out.values,
                roll.values[mb],
                roll.returns[mb],
                mask,
                cfg.clip_range_value,
                count,
            )
            loss = loss + cfg.vf_coef * value.loss
            stats.value_loss.append(value.loss.detach())
            stats.vf_clipfrac.append(value.clipfrac.detach())
        self.manual_backward(loss)
        optimizer.step()  # clips in on_before_optimizer_step
        # Freed here rather than before the next backward: the next forward's
        # activations then peak without a model-sized set of stale gradients beside them.
        optimizer.zero_grad(set_to_none=True)
        stats.policy_loss.append(policy.loss.detach())
        stats.clipfrac.append(policy.clipfrac.detach())
        stats.approx_kl.append(policy.approx_kl.detach())
        stats.entropy.append(entropy.detach())

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Here, not before optimizer.step(): under 16-mixed Lightning unscales the gradients
        # inside step, just before this hook (Lightning-AI/pytorch-lightning#18089).
        if self.ppo.max_grad_norm is not None:
            self.clip_gradients(
                optimizer, gradient_clip_val=self.ppo.max_grad_norm, gradient_clip_algorithm="norm"
            )

    def _log_step(self, roll: Rollout, stats: PPOStats, sequence_kl: torch.Tensor) -> None:
        mask = roll.mask
        n = mask.shape[0]
        log = {
            "reward/total_mean": roll.raw_scores.float().mean(),
            "reward/total_std": std_over_ranks(self, roll.raw_scores),
            "kl/mean": sequence_kl,
            "kl/k3": roll.kl_k3.sum(dim=1).mean(),
            "kl/coef": torch.tensor(self.kl_controller.value),
            "rationale/length": mask.sum(dim=1).mean(),
            "rationale/eos_rate": _eos_rate(roll.labels, self.policy.tokenizer.eos_token_id),
        }
        for name, values in roll.reward.components.items():
            values = values.float()
            log[f"reward/{name}_mean"] = values.mean()
            log[f"reward/{name}_std"] = std_over_ranks(self, values)
        for name, value in stats.means().items():
            log[f"ppo/{name}"] = value
        if self.ppo.advantage == "gae":
            log["ppo/explained_variance"] = explained_variance(
                roll.values,
                roll.returns,
                mask,
                all_reduce=functools.partial(sum_over_ranks, self.trainer.strategy),
            )
        log = {k: v.detach().float().to(self.device) for k, v in log.items()}
        self.log_dict(log, on_step=True, on_epoch=False, sync_dist=True, batch_size=n)
        self.log(
            "reward",
            log["reward/total_mean"],
            prog_bar=True,
            on_step=True,
            logger=False,
            batch_size=n,
        )
        counters = {f"ppo/{name}": count for name, count in roll.groups.items()}
        for key, value in {**roll.reward.logs, **_llm_usage(self.reward), **counters}.items():
            self.log(
                key,
                float(value),
                on_step=True,
                on_epoch=False,
                reduce_fx="sum",
                sync_dist=True,
                batch_size=n,
            )
        if self.global_rank == 0 and self.hparams.num_logged_examples:
            k = self.hparams.num_logged_examples
            log_text_table(
                self,
                "train/samples",
                ["question", "rationale", "reward", "gold"],
                [
                    (r.question, t, f"{s:.3f}", r.answer)
                    for r, t, s in zip(
                        roll.records[:k], roll.texts[:k], roll.raw_scores[:k].tolist()
                    )
                ],
            )

    # ---- evaluation ----------------------------------------------------------------------------

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
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
        reward = self.reward(records, texts)
        n = len(texts)
        self.log(
            f"{prefix}/reward",
            reward.total.float().mean().to(self.device),
            sync_dist=True,
            batch_size=n,
        )
        for name, values in reward.components.items():
            self.log(  # not {prefix}/reward/...: MLflow's file store keeps a name as a file
                f"{prefix}/rewards/{name}_mean",
                values.float().mean().to(self.device),
                sync_dist=True,
                batch_size=n,
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

    # ---- checkpoints and export --------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["kl_controller"] = self.kl_controller.state_dict()
        checkpoint["reward_stats"] = self.reward_stats.state_dict()
        checkpoint["reward"] = describe_object(self.reward)  # for the model card of lmcot export
        checkpoint["rng"] = rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.ppo.advantage != "gae":
            _drop_unused_value_head(checkpoint)
        self.kl_controller.load_state_dict(checkpoint["kl_controller"])
        self.reward_stats.load_state_dict(checkpoint["reward_stats"])
        self._pending_rng = checkpoint.get("rng")

    def on_train_start(self) -> None:
        # Restored here, after Lightning's own seeding, so sampling continues where it stopped.
        rng = getattr(self, "_pending_rng", None)
        if rng:
            restore_rng_state(rng)
            self._pending_rng = None

    def on_fit_end(self) -> None:
        export_at_fit_end(self, "the PPO policy")


def _drop_unused_value_head(checkpoint: dict[str, Any]) -> None:
    """Let an RLOO checkpoint from before RLOO lost its value head resume: drop the head's
    weights and its two parameters, the last ones registered, from the optimizer state."""
    state = checkpoint.get("state_dict", {})
    head = [key for key in state if key.startswith("value_head.")]
    if not head:
        return
    for key in head:
        del state[key]
    for optimizer in checkpoint.get("optimizer_states", []):
        group = optimizer["param_groups"][-1]
        for param_id in group["params"][-len(head) :]:
            optimizer["state"].pop(param_id, None)
        group["params"] = group["params"][: -len(head)]


def _nonempty(labels: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """Give a rationale that ended at once (width 0) one EOS token, so every row has a last token."""
    if labels.shape[1] == 0:
        return torch.full(
            (labels.shape[0], 1), eos_token_id, dtype=labels.dtype, device=labels.device
        )
    return labels


def _eos_rate(labels: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    return (labels == eos_token_id).any(dim=1).float().mean()


def _llm_usage(reward: RewardFunction) -> dict[str, float]:
    """The reward's large-LM counters worth a chart (totals; none for a reward without a large
    LM), with a cache hit rate."""
    usages = role_usages_of(reward)
    if usages is None:
        total, out = RoleUsage(), {}
    else:
        total = total_usage(usages.values())
        out = {f"llm/total/{n}": getattr(total, n) for n in COUNTERS if n != "parse_failures"}
    # every rank logs the same keys (a rank that asked nothing reports 0), or a synced log hangs
    hits, requests = total.cache_hits, total.requests
    out["llm/total/cache_hit_rate"] = hits / (requests + hits) if requests or hits else 0.0
    return out
