"""What the stage tests share: a quiet CPU trainer, a callback that records each step's
metrics, a fit that checkpoints every epoch (to resume from), the tiny data modules and the
PPO and distillation setups built on them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lm_guided_cot.data import PromptConfig, QARecord
from lm_guided_cot.data.readers import read_split
from lm_guided_cot.data.targets import IGNORE_INDEX
from lm_guided_cot.datamodules import HotpotQADataModule
from lm_guided_cot.policy import GenerationConfig, SmallLM
from lm_guided_cot.rationales import RationaleConfig
from lm_guided_cot.rewards.base import RewardOutput
from lm_guided_cot.stages import PPOConfig, PPOModule
from tests.helpers import VowelShareReward, synthetic_rationale, write_rationales


class Recorder(Callback):
    """Collects the logged step metrics of every training step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.steps.append(
            {k: v.item() for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        )


def quiet_trainer(**kwargs) -> L.Trainer:
    """A CPU trainer that logs, saves, prints and validates nothing unless ``kwargs`` say so."""
    defaults = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    return L.Trainer(**{**defaults, **kwargs})


def fit_with_epoch_checkpoints(
    make_module: Callable[[], L.LightningModule],
    make_datamodule: Callable[[], L.LightningDataModule],
    folder: Path,
    epochs: int,
    ckpt_path: str | None = None,
) -> tuple[L.LightningModule, list[dict[str, float]]]:
    """Fits a fresh module from seed 0 for ``epochs`` epochs (from ``ckpt_path`` if given),
    saving ``folder/ckpt/epoch={n}.ckpt`` after each; returns the module and its logged steps.
    A run of 2 epochs, then one resumed to 4 from ``epoch=1.ckpt``, ends as a 4-epoch run."""
    L.seed_everything(0)  # before the module is built: its fresh weights are drawn from it
    recorder = Recorder()
    checkpoint = ModelCheckpoint(
        dirpath=folder / "ckpt", save_top_k=-1, every_n_epochs=1, filename="{epoch}"
    )
    module = make_module()
    trainer = quiet_trainer(
        max_epochs=epochs, callbacks=[recorder, checkpoint], enable_checkpointing=True
    )
    trainer.fit(module, datamodule=make_datamodule(), ckpt_path=ckpt_path)
    return module, recorder.steps


# Stage 2


def ppo_datamodule(shared_data: Path, model_dir: Path) -> HotpotQADataModule:
    """8 HotpotQA training questions in batches of 4, prompts cut at 96 tokens."""
    return HotpotQADataModule(
        tokenizer=str(model_dir),
        train=str(shared_data / "hotpotqa/train.jsonl"),
        max_examples=8,
        batch_size=4,
        prompt=PromptConfig(max_tokens=96),
        seed=3,
    )


def vowel_ppo(model_dir: Path, tmp_path: Path, **ppo) -> PPOModule:
    """A PPOModule that learns the vowel reward fast: 4 samples of 24 tokens a question,
    4 PPO epochs of minibatches of 8; ``ppo`` replaces any of these settings."""
    settings = dict(
        rollout=GenerationConfig(max_new_tokens=24, do_sample=True),
        samples_per_question=4,
        ppo_epochs=4,
        minibatch_size=8,
        init_kl_coef=0.01,
        target_kl=None,
    )
    settings.update(ppo)
    return PPOModule(
        model=str(model_dir),
        reward=VowelShareReward(),
        learning_rate=1e-3,
        ppo=PPOConfig(**settings),
        num_logged_examples=0,
        export_dir=str(tmp_path / "ppo_export"),
    )


class FixedReward:
    """Scores given in advance, one per rationale of the batch."""

    name = "fixed"

    def __init__(self, scores: list[float]) -> None:
        self.scores = torch.tensor(scores)

    def __call__(self, records, rationales):
        return RewardOutput(self.scores.clone(), {self.name: self.scores.clone()})

    def usage(self):
        return {}


def attached_ppo(model_dir, reward, **ppo) -> PPOModule:
    """A PPOModule with its models loaded and a one-process trainer, outside ``fit``."""
    settings = dict(samples_per_question=4, init_kl_coef=0.0, target_kl=None)
    module = PPOModule(
        model=str(model_dir),
        reward=reward,
        ppo=PPOConfig(**{**settings, **ppo}),
        num_logged_examples=0,
    )
    module.trainer = quiet_trainer()
    module.configure_model()
    return module


def one_question(policy: SmallLM) -> dict[str, torch.Tensor]:
    """A batch of one tokenized question, as a rollout takes it (no record behind it)."""
    batch = policy.tokenizer(["Question: which one came first?"], return_tensors="pt")
    return {**batch, "index": torch.tensor([0]), "records": [None]}


def rationale_labels(
    policy: SmallLM, lengths: list[int], ended: list[bool] | None = None
) -> torch.Tensor:
    """Right-padded rationales of the given lengths, ending in EOS unless ``ended`` says not."""
    eos = policy.tokenizer.eos_token_id
    word = next(t for t in range(5, 100) if t not in policy.tokenizer.all_special_ids)
    labels = torch.full((len(lengths), max(lengths)), IGNORE_INDEX)
    for i, n in enumerate(lengths):
        labels[i, :n] = word
        if ended is None or ended[i]:
            labels[i, n - 1] = eos
    return labels


# Stage 1


def hotpot_records(path: Path, n: int) -> list[QARecord]:
    """The first ``n`` records of a HotpotQA file."""
    return [QARecord.from_row(r) for r in read_split(path, "hotpotqa").dataset.select(range(n))]


def distill_datamodule(tmp_path, shared_data, model_dir, n_train, n_val, same_split):
    """HotpotQA questions with synthetic rationales to learn (two rejected rows beside them):
    ``n_train`` training ones, ``n_val`` validation ones (the training file's if
    ``same_split``)."""
    train = shared_data / "hotpotqa/train.jsonl"
    validation = train if same_split else shared_data / "hotpotqa/validation.jsonl"
    rationale_dir = tmp_path / "rationales"
    write_rationales(
        rationale_dir,
        "train",
        [(r.id, synthetic_rationale(r)) for r in hotpot_records(train, n_train)],
        extra_unkept=2,
    )
    write_rationales(
        rationale_dir,
        "validation",
        [(r.id, synthetic_rationale(r)) for r in hotpot_records(validation, n_val)],
    )
    datamodule = HotpotQADataModule(
        tokenizer=str(model_dir),
        train=str(train),
        validation=str(validation),
        max_examples=max(n_train, n_val),
        batch_size=4,
        eval_batch_size=8,
        prompt=PromptConfig(max_tokens=192),
        rationales=RationaleConfig(dir=str(rationale_dir)),
        cache_dir=str(tmp_path / "hf"),
    )
    return datamodule


def distill_trainer(epochs: int, val_every: int = 1) -> L.Trainer:
    """A quiet CPU trainer for stage 1 that validates (all batches, Lightning's default)
    every ``val_every`` epochs, with no sanity check first."""
    return quiet_trainer(
        max_epochs=epochs,
        limit_val_batches=None,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=val_every,
    )
