"""Stage 2, rationale refinement with PPO, for seq2seq and causal small LMs.

README.md, "Stage 2", is the manual, with the table of decisions that keep the estimates
unbiased (each held by a test in tests/stages/test_ppo_correctness.py). Supports: GAE with a
value head or critic-free (RLOO, the GRPO family, the self-critical ``scst``) over k samples;
fixed or adaptive KL (k1 per token, k3 logged); reward scaling and clipping; exact resume; DDP
and DeepSpeed ZeRO 2/3, with large-LM calls from every rank or from rank 0 (``llm_calls``).

One ``training_step`` is five numbered steps (``rollout`` holds 1-4): 1 sample k rationales a
question (``scst``: and decode its greedy one, the baseline); 2 their rewards (constant groups
resampled or skipped: ``dynamic_sampling.py``); 3 the behaviour numbers (the sampling
policy's log-probs and values, the reference's log-probs); 4 KL-penalised advantages and
returns; 5 ``ppo_epochs`` of minibatch updates, so ``trainer.global_step`` counts optimizer
steps. With ``ppo.max_staleness`` N > 0, step 3 follows step 1 at once and step 2 runs in the
background: a step updates on the batch sampled N steps before (``staleness.py``). Scores and
the ``scst`` baseline: ``scoring.py``; validation: ``evaluation.py``; what checkpoints hold:
``checkpoints.py``.
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
from lm_guided_cot.lora import LoRAConfig
from lm_guided_cot.policy import (
    AdapterFreeReference,
    GenerationConfig,
    SmallLM,
    ValueHead,
    hidden_size,
)
from lm_guided_cot.rewards.base import RewardFunction, RewardOutput
from lm_guided_cot.rl.control import AdaptiveKLController, FixedKLController, RunningMoments
from lm_guided_cot.rl.core import (
    clipped_policy_loss,
    clipped_value_loss,
    kl_penalty,
    masked_mean,
)
from lm_guided_cot.rl.objectives import (
    kl_loss,
    loss_weights,
)
from lm_guided_cot.stages.distributed import (
    generation_kwargs,
    mean_across_ranks,
    pretrained_loading,
    rank_zero_reward,
    sum_over_ranks,
    token_count,
)
from lm_guided_cot.stages.export import check_export_at_fit_start, export_at_fit_end
from lm_guided_cot.stages.ppo.checkpoints import CheckpointState
from lm_guided_cot.stages.ppo.config import PPOConfig
from lm_guided_cot.stages.ppo.dynamic_sampling import DynamicSampling
from lm_guided_cot.stages.ppo.evaluation import RationaleEvaluation
from lm_guided_cot.stages.ppo.logs import log_step
from lm_guided_cot.stages.ppo.rollout import (
    Behaviour,
    Greedy,
    PPOStats,
    Rollout,
    Sampled,
    advantages_and_returns,
    nonempty,
)
from lm_guided_cot.stages.ppo.scoring import Scoring
from lm_guided_cot.stages.ppo.staleness import PendingQueue, StaleRollouts


class PPOModule(
    RationaleEvaluation,
    CheckpointState,
    DynamicSampling,
    StaleRollouts,
    Scoring,
    L.LightningModule,
):
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
            ``lm_guided_cot.stages.distributed``).
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
        self._pending = PendingQueue()  # max_staleness > 0: the rollouts whose rewards are out
        self._eval_rows: list[tuple[Any, ...]] = []
        self._restored_rng: dict[str, Any] | None = None  # from a checkpoint, for on_train_start
        self._restored_rollouts: list[dict[str, Any]] | None = None

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

    def _generate(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, list[str]]:
        """Rationales for the given prompt rows, and their texts."""
        labels = self.policy.generate(
            input_ids, attention_mask, self.ppo.rollout, **generation_kwargs(self.trainer)
        )
        labels = nonempty(labels, self.policy.tokenizer.eos_token_id)
        return labels, self.policy.decode(labels)

    def _sample(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, records: list[QARecord]
    ) -> tuple[torch.Tensor, list[str], RewardOutput]:
        """Rationales for the given prompt rows, their texts and their rewards."""
        labels, texts = self._generate(input_ids, attention_mask)
        return labels, texts, self._reward(records, texts)

    def _sample_batch(self, batch: dict[str, Any]) -> Sampled:
        """k rationales per question of the batch (``batch["records"]``: its ``QARecord``s)."""
        k = self.ppo.samples_per_question
        input_ids = batch["input_ids"].repeat_interleave(k, dim=0)
        attention_mask = batch["attention_mask"].repeat_interleave(k, dim=0)
        # in repeat_interleave's order: each question's k samples consecutive
        records = [record for record in batch["records"] for _ in range(k)]
        labels, texts = self._generate(input_ids, attention_mask)
        return Sampled(input_ids, attention_mask, labels, texts, records)

    def _behaviour(self, sampled: Sampled) -> Behaviour:
        """What the current policy (the one that sampled) and the reference say of the rows."""
        temperature = self.ppo.rollout.temperature  # score with the distribution sampled from
        args = (sampled.input_ids, sampled.attention_mask, sampled.labels)
        current = self.policy.rationale_forward(*args, self.value_head, temperature=temperature)
        ref_logprobs = self.reference.token_logprobs(*args, temperature=temperature)
        return Behaviour(current.logprobs, current.values, ref_logprobs)

    @torch.no_grad()
    def rollout(self, batch: dict[str, Any]) -> Rollout:
        """Sample rationales for a batch of questions and score everything PPO needs.

        ``batch["records"]`` holds the rows' ``QARecord`` objects, in batch order."""
        greedy = None
        if self.ppo.advantage == "scst":  # 1-2 with each question's greedy rationale beside
            sampled, reward, greedy = self._sample_with_greedy(batch)
        else:
            sampled = self._sample_batch(batch)  # 1. k rationales a question
            reward = self._reward(sampled.records, sampled.texts)  # 2. their rewards
        keep, groups = None, {}
        if self.ppo.dynamic_sampling != "off":
            baseline = None if greedy is None else greedy.scores
            sampled, reward, keep, groups = self._dynamic_sampling(sampled, reward, baseline)
        behaviour = self._behaviour(sampled)  # 3. the sampling policy's and reference's numbers
        # 4. advantages, returns
        return self._finish(sampled, behaviour, reward, keep, groups, greedy)

    def _finish(
        self,
        sampled: Sampled,
        behaviour: Behaviour,
        reward: RewardOutput,
        keep: torch.Tensor | None,
        groups: dict[str, int],
        greedy: Greedy | None = None,
    ) -> Rollout:
        """The rollout of a scored batch: scaled and penalised scores, KL-penalised advantages
        (with the KL coefficient of now) and value targets."""
        cfg = self.ppo
        labels = sampled.labels
        mask = (labels != IGNORE_INDEX).float()
        raw_scores = reward.total.to(self.device)
        scores = self._scores(raw_scores, self._penalties(labels, mask))
        greedy_scores, baseline = self._greedy_baseline(greedy)
        logprobs, values = behaviour.logprobs, behaviour.values
        kl = kl_penalty(logprobs, behaviour.ref_logprobs, cfg.estimator) * mask
        kl_k3 = kl_penalty(logprobs, behaviour.ref_logprobs, "k3") * mask
        summed = functools.partial(sum_over_ranks, self.trainer.strategy)
        advantages, returns = advantages_and_returns(
            cfg, scores, kl, values, mask, self.kl_controller.value, summed, keep, baseline
        )
        return Rollout(
            input_ids=sampled.input_ids,
            attention_mask=sampled.attention_mask,
            labels=labels,
            mask=mask,
            logprobs=logprobs,
            values=values,
            advantages=advantages,
            returns=returns,
            kl=kl,
            kl_k3=kl_k3,
            ref_logprobs=behaviour.ref_logprobs,
            raw_scores=raw_scores,
            reward=reward,
            texts=sampled.texts,
            records=sampled.records,
            keep=keep,
            groups=groups,
            greedy_scores=greedy_scores,
        )

    # ---- training ----------------------------------------------------------------------------

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        cfg = self.ppo
        if cfg.max_staleness:  # steps 1-4, with step 2 in the background
            roll = self._stale_rollout(batch)
            if roll is None:  # the first max_staleness steps only fill the queue
                return
        else:
            roll = self.rollout(batch)  # steps 1-4
        # 5. ppo_epochs of minibatch updates over the rollout's rows
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
        log_step(self, roll, stats, sequence_kl)

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
        if cfg.kl_in_loss:
            kl = kl_loss(out.logprobs, roll.ref_logprobs[mb], mask, weights, count)
            if self.kl_controller.value:
                loss = loss + self.kl_controller.value * kl
            stats.kl_loss.append(kl.detach())
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

    # ---- checkpoints and export --------------------------------------------------------------------

    def on_train_end(self) -> None:
        # What is still out is waited for (no call outlives the fit) and dropped: at most
        # max_staleness batches that were sampled but never updated on.
        self._pending.drain()

    def on_fit_start(self) -> None:
        check_export_at_fit_start(self)  # not after hours of training

    def on_fit_end(self) -> None:
        export_at_fit_end(self, "the PPO policy")
