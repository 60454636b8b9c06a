"""The stage modules need nothing but their batches: they run with plain DataLoaders over a
DataModule's datasets, no DataModule attached to the Trainer."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from lm_guided_cot.data import PromptConfig, QARecord
from lm_guided_cot.data.batches import PromptCollator
from lm_guided_cot.data.readers import read_split
from lm_guided_cot.datamodules import HotpotQADataModule
from lm_guided_cot.policy import GenerationConfig
from lm_guided_cot.rationales import RationaleConfig
from lm_guided_cot.stages import DistillationModule, PPOConfig, PPOModule
from tests.helpers import VowelShareReward, synthetic_rationale, write_rationales
from tests.stage_helpers import quiet_trainer


class SeenRecords(VowelShareReward):
    """The scripted reward, remembering which questions it was asked about, in order."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, records, rationales):
        self.ids.extend(r.id for r in records)
        return super().__call__(records, rationales)


def _datamodule(shared_data, model_dir, tmp_path, rationales: bool) -> HotpotQADataModule:
    train = shared_data / "hotpotqa/train.jsonl"
    if rationales:
        rows = read_split(train, "hotpotqa").dataset.select(range(6))
        records = [QARecord.from_row(r) for r in rows]
        write_rationales(
            tmp_path / "rationales", "train", [(r.id, synthetic_rationale(r)) for r in records]
        )
    return HotpotQADataModule(
        tokenizer=str(model_dir),
        train=str(train),
        max_examples=6,
        batch_size=3,
        prompt=PromptConfig(max_tokens=96),
        rationales=RationaleConfig(dir=str(tmp_path / "rationales")) if rationales else None,
    )


def test_distillation_learns_from_a_plain_dataloader(shared_data, tiny_causal_dir, tmp_path):
    dm = _datamodule(shared_data, tiny_causal_dir, tmp_path, rationales=True)
    collate = PromptCollator(dm.tokenizer)
    train = DataLoader(dm.targets("train"), batch_size=3, shuffle=False, collate_fn=collate)
    questions = DataLoader(dm.tokenized("train"), batch_size=3, collate_fn=collate)
    torch.manual_seed(0)
    module = DistillationModule(
        model=str(tiny_causal_dir),
        learning_rate=3e-3,
        scheduler="constant",
        eval_every_n_epochs=1,
        generation=GenerationConfig(max_new_tokens=8),
        export_dir=str(tmp_path / "export"),
    )
    losses = []

    class Losses(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = quiet_trainer(
        max_epochs=15, limit_val_batches=1.0, num_sanity_val_steps=0, callbacks=[Losses()]
    )
    trainer.fit(module, train_dataloaders=train, val_dataloaders=questions)
    assert trainer.datamodule is None
    assert losses[-1] < 0.6 * losses[0], losses
    assert "val/rationale_words" in trainer.callback_metrics  # generation saw the records


def test_ppo_runs_on_a_plain_dataloader(shared_data, tiny_causal_dir, tmp_path):
    dm = _datamodule(shared_data, tiny_causal_dir, tmp_path, rationales=False)
    loader = DataLoader(
        dm.tokenized("train"), batch_size=3, shuffle=False, collate_fn=PromptCollator(dm.tokenizer)
    )
    reward = SeenRecords()
    module = PPOModule(
        model=str(tiny_causal_dir),
        reward=reward,
        ppo=PPOConfig(
            rollout=GenerationConfig(max_new_tokens=8, do_sample=True),
            samples_per_question=2,
            ppo_epochs=1,
            minibatch_size=6,
        ),
        num_logged_examples=0,
        export_dir=str(tmp_path / "export"),
    )
    trainer = quiet_trainer(max_steps=2)
    trainer.fit(module, train_dataloaders=loader)
    assert trainer.datamodule is None
    ids = list(dm.records("train")["id"])
    # each question's k rationales are scored with its own record, in batch order
    assert reward.ids == [i for i in ids for _ in range(2)]
    assert "reward/total_mean" in trainer.callback_metrics
