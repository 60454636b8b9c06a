"""Stage 1, rationale distillation: fine-tune the small LM on the large LM's kept rationales.

README.md, "Stage 1: rationale distillation", is the manual. The loss is cross-entropy on the
rationale tokens only (a causal model's prompt is context, never a target); validation adds
generated rationales and the reader's answers every ``eval_every_n_epochs``; ``fit`` ends by
exporting a ``save_pretrained`` folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torchmetrics import MeanMetric
from transformers import get_scheduler

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.data.targets import IGNORE_INDEX
from lm_guided_cot.errors import ConfigurationError, check_at_least, check_positive
from lm_guided_cot.evaluation.results import ExampleResult, SettingResult, write_setting_files
from lm_guided_cot.hparams import as_dataclass, save_hparams
from lm_guided_cot.llm.client import LLMClient
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.llm.registry import client_for
from lm_guided_cot.llm.usage import total_usage
from lm_guided_cot.lora import LoRAConfig
from lm_guided_cot.metrics import best_inclusion
from lm_guided_cot.metrics.torch_metrics import AnswerScores
from lm_guided_cot.policy import GenerationConfig, SmallLM
from lm_guided_cot.roles import Reader, ReaderConfig
from lm_guided_cot.stages.distributed import (
    gather_objects,
    generation_kwargs,
    mean_over_ranks,
    pretrained_loading,
)
from lm_guided_cot.stages.export import check_export_at_fit_start, export_at_fit_end
from lm_guided_cot.stages.run_logs import log_text_table, run_dir


class DistillationModule(L.LightningModule):
    """Stage 1 (see the module docstring).

    Args:
        model: the small LM: a hub id, a folder, ``folder#file.gguf`` or ``smollm2``.
        learning_rate: peak AdamW learning rate (above 0).
        weight_decay: AdamW weight decay (at least 0; not applied to biases and norms).
        warmup_steps: optimizer steps of linear warmup (at least 0).
        scheduler: decay after warmup: ``linear`` or ``cosine`` to 0, or ``constant``.
        generation: how rationales are generated for evaluation.
        eval_every_n_epochs: generate and ask the reader every N validation epochs (0: never;
            at least 0).
        reader_llm: the large LM that answers with the generated rationales (the reader
            role); ``None`` skips answer metrics and only logs rationales.
        reader: the reader's prompt and parsing.
        num_logged_examples: rows of the sample table in the loggers per evaluation (at least 0).
        export_dir: where ``fit`` writes the ``save_pretrained`` folder (default
            ``<log dir>/export``).
        gradient_checkpointing: recompute activations in backward instead of keeping them
            (much less memory per batch, about a third more time per step).
        lora: train LoRA adapters instead of every weight (``None``: full fine-tuning).
        export_adapter_only: with ``lora``, ``fit`` exports peft's adapter folder alone
            instead of the model with the adapters merged in.
    """

    def __init__(
        self,
        model: str,
        learning_rate: float = 5e-5,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        scheduler: Literal["linear", "cosine", "constant"] = "linear",
        generation: GenerationConfig = GenerationConfig(),  # noqa: B008 (a plain dataclass, copied)
        eval_every_n_epochs: int = 1,
        reader_llm: LLMConfig | None = None,
        reader: ReaderConfig = ReaderConfig(),  # noqa: B008 (a plain dataclass, copied)
        num_logged_examples: int = 8,
        export_dir: str | None = None,
        gradient_checkpointing: bool = False,
        lora: LoRAConfig | None = None,
        export_adapter_only: bool = False,
    ) -> None:
        check_positive("DistillationModule.learning_rate", learning_rate)
        if export_adapter_only and lora is None:
            raise ConfigurationError(
                "DistillationModule.export_adapter_only needs DistillationModule.lora (adapters)"
            )
        check_at_least("DistillationModule.weight_decay", weight_decay, 0)
        check_at_least("DistillationModule.warmup_steps", warmup_steps, 0)
        check_at_least("DistillationModule.eval_every_n_epochs", eval_every_n_epochs, 0)
        check_at_least("DistillationModule.num_logged_examples", num_logged_examples, 0)
        super().__init__()
        self.model_spec = model
        self.generation = as_dataclass(GenerationConfig, generation)
        self.reader_config = as_dataclass(ReaderConfig, reader)
        self.reader_llm = as_dataclass(LLMConfig, reader_llm) if reader_llm is not None else None
        self.lora = as_dataclass(LoRAConfig, lora) if lora is not None else None
        save_hparams(
            self,
            generation=self.generation,
            reader=self.reader_config,
            reader_llm=self.reader_llm,
            lora=self.lora,
        )
        self.policy: SmallLM | None = None
        self._client: LLMClient | None = None
        self._generated: list[tuple[QARecord, str]] = []
        self.answer_scores = AnswerScores()
        self.val_loss = MeanMetric()

    # ---- model -------------------------------------------------------------------------------

    def configure_model(self) -> None:
        # Loaded here, not in __init__, so that the CLI can parse a config without loading
        # weights and so that sharded strategies can build the model in their own context.
        if self.policy is None:
            with pretrained_loading(self._trainer):
                self.policy = SmallLM.from_pretrained(self.model_spec)
            if self.lora is not None:
                self.policy.add_adapters(self.lora)
            # from_pretrained returns eval mode; Lightning keeps a submodule's mode as found,
            # and fine-tuning wants the model's own dropout.
            self.policy.model.train()
            if self.hparams.gradient_checkpointing:
                self.policy.enable_gradient_checkpointing()

    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for name, param in self.policy.named_parameters():
            if not param.requires_grad:
                continue
            # ZeRO 3 leaves an empty placeholder in a sharded parameter, its shape in ds_shape
            ndim = len(getattr(param, "ds_shape", param.shape))
            (no_decay if ndim < 2 or "norm" in name.lower() else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": self.hparams.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(
            [g for g in groups if g["params"]], lr=self.hparams.learning_rate
        )
        name = {"constant": "constant_with_warmup"}.get(
            self.hparams.scheduler, self.hparams.scheduler
        )
        scheduler = get_scheduler(
            name,
            optimizer,
            num_warmup_steps=self.hparams.warmup_steps,
            num_training_steps=max(int(self.trainer.estimated_stepping_batches), 1),
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # ---- training ---------------------------------------------------------------------------

    def optimizer_step(
        self,
        epoch: int,
        batch_idx: int,
        optimizer: torch.optim.Optimizer,
        optimizer_closure: Callable[[], Any] | None = None,
    ) -> None:
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        # Lightning zeroes gradients after the next forward, just before backward: the
        # forward's activation peak would hold a model-sized set of stale gradients. Freed
        # now, they cost nothing until backward makes new ones (the later zeroing is a no-op).
        optimizer.zero_grad(set_to_none=True)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # Divided by the mean token count over ranks: the ranks' averaged gradients are then
        # those of one process over all their tokens (not a mean of per-rank means).
        tokens = (batch["labels"] != IGNORE_INDEX).sum()
        loss = self.policy.sft_loss(batch, mean_over_ranks(self.trainer.strategy, tokens.float()))
        self.log(
            "train/loss",
            loss,
            prog_bar=True,
            sync_dist=True,
            batch_size=batch["labels"].shape[0],
        )
        return loss

    # ---- evaluation ---------------------------------------------------------------------------

    def _is_eval_epoch(self) -> bool:
        every = self.hparams.eval_every_n_epochs
        if self.trainer.sanity_checking or every <= 0:
            return False
        # after every N-th epoch, and always after the last one
        return (
            self.current_epoch + 1
        ) % every == 0 or self.current_epoch + 1 == self.trainer.max_epochs

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if "labels" in batch:
            # a token-weighted mean over the epoch and the ranks, the same however it is split
            tokens = (batch["labels"] != IGNORE_INDEX).sum()
            self.val_loss.update(self.policy.sft_loss(batch), tokens)
            self.log("val/loss", self.val_loss, prog_bar=True, add_dataloader_idx=False)
        elif self._is_eval_epoch():
            self._generate(batch)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._generate(batch)

    def _generate(self, batch: dict[str, torch.Tensor]) -> None:
        ids = self.policy.generate(
            batch["input_ids"],
            batch["attention_mask"],
            self.generation,
            **generation_kwargs(self.trainer),
        )
        self._generated.extend(zip(batch["records"], self.policy.decode(ids)))

    def on_validation_epoch_start(self) -> None:
        # Fresh states made in this loop's grad mode: after `validate` (inference mode), states
        # left as inference tensors cannot be updated by fit's validation (no_grad).
        self.val_loss.reset()

    def on_validation_epoch_end(self) -> None:
        self._evaluate("val")

    def on_test_epoch_end(self) -> None:
        self._evaluate("test")

    def _evaluate(self, prefix: str) -> None:
        generated, self._generated = self._generated, []
        if not generated and not self.trainer.sanity_checking and prefix == "test":
            raise RuntimeError("the test split produced no batches")
        if not generated:
            return
        records = [record for record, _ in generated]
        rationales = [text for _, text in generated]
        lengths = torch.tensor([len(r.split()) for r in rationales], dtype=torch.float32)
        self.log(f"{prefix}/rationale_words", lengths.mean(), sync_dist=True)
        answers: list[str] = [""] * len(records)
        if self.reader_llm is not None:
            client = self._reader_client()
            outputs = Reader(client, self.reader_config).answer(records, rationales)
            answers = [o.answer for o in outputs]
            self.answer_scores.update(answers, [r.gold_answers for r in records])
            scores = self.answer_scores.compute()
            self.answer_scores.reset()
            self.log(f"{prefix}/answer_em", scores["em"].float())
            self.log(f"{prefix}/answer_f1", scores["f1"].float(), prog_bar=True)
            inclusion = [best_inclusion(a, r.gold_answers) for a, r in zip(answers, records)]
            self.log(
                f"{prefix}/answer_inclusion",
                torch.tensor(inclusion, dtype=torch.float32).mean(),
                sync_dist=True,
            )
            if prefix == "test":
                self._write_test_files(records, rationales, answers)
            total = total_usage(client.role_usages().values())
            for name in ("requests", "cost", "cache_hits", "failures"):
                self.log(
                    f"llm/total/{name}",
                    float(getattr(total, name)),
                    reduce_fx="sum",
                    sync_dist=True,
                )
        if self.global_rank == 0:
            n = self.hparams.num_logged_examples
            log_text_table(
                self,
                f"{prefix}/examples",
                ["question", "rationale", "answer", "gold"],
                [
                    (r.question, x, a, r.answer)
                    for r, x, a in zip(records[:n], rationales[:n], answers[:n])
                ],
            )

    def _write_test_files(
        self, records: list[QARecord], rationales: list[str], answers: list[str]
    ) -> None:
        """Per-question JSON lines and an official prediction file, like ``lmcot evaluate``'s."""
        examples = [
            ExampleResult.scored(r, a, rationales=[x], answers=[a])
            for r, x, a in zip(records, rationales, answers)
        ]
        examples = gather_objects(examples)  # every rank's shard, for rank 0 to write
        if self.global_rank == 0:
            folder = Path(run_dir(self.trainer)) / "test"  # not log_dir: it broadcasts
            result = SettingResult("lm_guided", examples, seconds=0.0)
            for path in write_setting_files(folder, result).values():
                print(f"wrote {path}")

    def _reader_client(self) -> LLMClient:
        if self._client is None:
            self._client = client_for(self.reader_llm)
        return self._client

    # ---- export ------------------------------------------------------------------------------

    def on_fit_start(self) -> None:
        check_export_at_fit_start(self)  # not after hours of training

    def on_fit_end(self) -> None:
        export_at_fit_end(self, "the small LM")
