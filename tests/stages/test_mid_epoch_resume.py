"""A run resumed from a checkpoint taken inside an epoch goes on with that epoch's next
questions (it used to replay the epoch's first ones), in stage 1 and stage 2."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lm_guided_cot.data import PromptConfig, QARecord
from lm_guided_cot.data.loaders import EpochPosition, ResumableDataLoader
from lm_guided_cot.data.readers import read_split
from lm_guided_cot.datamodules import HotpotQADataModule
from lm_guided_cot.policy import GenerationConfig
from lm_guided_cot.rationales import RationaleConfig
from lm_guided_cot.stages import DistillationModule, PPOConfig, PPOModule
from tests.helpers import VowelShareReward, write_rationales
from tests.stage_helpers import quiet_trainer

QUESTIONS, BATCH = 8, 2  # 4 batches an epoch; one optimizer step a batch in both stages


def test_the_loader_continues_where_its_state_says():
    order = list(range(10))
    first = ResumableDataLoader(order, batch_size=3)
    batches = iter(first)
    taken = [next(batches), next(batches)]
    assert first.state_dict() == {"batches_yielded": 2}
    second = ResumableDataLoader(order, batch_size=3, position=EpochPosition())
    second.load_state_dict(first.state_dict())
    rest = [b.tolist() for b in second]
    assert [b.tolist() for b in taken] + rest == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert second.state_dict() == {"batches_yielded": 4}
    assert len(list(second)) == 4  # the next epoch is whole
    ended = ResumableDataLoader(order, batch_size=3)
    ended.load_state_dict({"batches_yielded": 4})  # saved at the epoch's end
    assert len(list(ended)) == 4


class Seen(Callback):
    """The question indices of every training batch, and the step metrics logged after it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.metrics: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.batches.append(batch["index"].tolist())

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.metrics.append(
            {k: v.item() for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        )


class StopAfter(Callback):
    """Ends the run after a number of batches, as a killed job would (the schedule still plans
    the whole run, so the resumed one must follow it)."""

    def __init__(self, batches: int) -> None:
        self.batches = batches

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step >= self.batches:
            trainer.should_stop = True


def _fit(make_module, datamodule, folder, ckpt_path=None, stop_after=None):
    L.seed_everything(0)
    seen = Seen()
    checkpoints = ModelCheckpoint(
        dirpath=folder, save_top_k=-1, every_n_train_steps=1, filename="{step}"
    )
    module = make_module()
    quiet_trainer(
        enable_checkpointing=True,
        num_sanity_val_steps=0,
        callbacks=[seen, checkpoints] + ([StopAfter(stop_after)] if stop_after else []),
        max_epochs=2,
    ).fit(module, datamodule=datamodule(), ckpt_path=ckpt_path)
    return module, seen


def _resume_matches(make_module, datamodule, tmp_path, stop_at: int, keys=()):
    full, full_seen = _fit(make_module, datamodule, tmp_path / "full")
    assert len(full_seen.batches) == 2 * QUESTIONS // BATCH
    _, part_seen = _fit(make_module, datamodule, tmp_path / "part", stop_after=stop_at)
    assert part_seen.batches == full_seen.batches[:stop_at]
    resumed, resumed_seen = _fit(
        make_module,
        datamodule,
        tmp_path / "part",
        ckpt_path=str(tmp_path / f"part/step={stop_at}.ckpt"),
    )
    assert resumed_seen.batches == full_seen.batches[stop_at:]
    for a, b in zip(full_seen.metrics[stop_at:], resumed_seen.metrics, strict=True):
        for key in keys:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key
    for (name, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), name


@pytest.mark.parametrize("stop_at", [2, 6])  # inside epoch 0 and inside epoch 1
def test_ppo_resumed_inside_an_epoch_sees_the_rest_of_it(
    tiny_causal_dir, shared_data, tmp_path, stop_at
):
    def datamodule():
        return HotpotQADataModule(
            tokenizer=str(tiny_causal_dir),
            train=str(shared_data / "hotpotqa/train.jsonl"),
            max_examples=QUESTIONS,
            batch_size=BATCH,
            prompt=PromptConfig(max_tokens=96),
            seed=3,
        )

    def module():
        return PPOModule(
            model=str(tiny_causal_dir),
            reward=VowelShareReward(),
            learning_rate=1e-3,
            ppo=PPOConfig(
                rollout=GenerationConfig(max_new_tokens=12, do_sample=True),
                samples_per_question=4,
                advantage="rloo",
                ppo_epochs=1,
                minibatch_size=BATCH * 4,
            ),
            num_logged_examples=0,
            export_dir=str(tmp_path / "export"),
        )

    _resume_matches(
        module, datamodule, tmp_path, stop_at, keys=("reward/total_mean", "ppo/policy_loss")
    )


def test_distillation_resumed_inside_an_epoch_sees_the_rest_of_it(
    tiny_causal_dir, shared_data, tmp_path
):
    # The linear schedule asks for trainer.estimated_stepping_batches in configure_optimizers,
    # which makes Lightning drop the loader's saved state: the data module's copy restores it.
    train = shared_data / "hotpotqa/train.jsonl"
    records = [QARecord.from_row(r) for r in read_split(train, "hotpotqa").dataset]
    write_rationales(
        tmp_path / "rationales", "train", [(r.id, f"Answer: {r.answer}") for r in records[:8]]
    )

    def datamodule():
        return HotpotQADataModule(
            tokenizer=str(tiny_causal_dir),
            train=str(train),
            max_examples=QUESTIONS,
            batch_size=BATCH,
            prompt=PromptConfig(max_tokens=96),
            rationales=RationaleConfig(dir=str(tmp_path / "rationales")),
            cache_dir=str(tmp_path / "hf"),
        )

    def module():
        return DistillationModule(
            model=str(tiny_causal_dir),
            learning_rate=1e-3,
            scheduler="linear",
            eval_every_n_epochs=0,
            export_dir=str(tmp_path / "export"),
        )

    _resume_matches(module, datamodule, tmp_path, stop_at=5, keys=("train/loss",))
