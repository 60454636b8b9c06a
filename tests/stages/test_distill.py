"""Stage 1 learns: tiny T5 and tiny causal LMs fit their rationales; validation loss falls."""

from __future__ import annotations

import re

import lightning as L
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.stages import DistillationModule
from tests.helpers import synthetic_rationale
from tests.stage_helpers import distill_datamodule, distill_trainer


@pytest.mark.parametrize(("fixture", "epochs"), [("tiny_causal_dir", 150), ("tiny_t5_dir", 400)])
def test_overfits_four_examples_exactly(request, tmp_path, shared_data, fixture, epochs):
    model_dir = request.getfixturevalue(fixture)
    torch.manual_seed(0)
    datamodule = distill_datamodule(
        tmp_path, shared_data, model_dir, n_train=4, n_val=4, same_split=True
    )
    module = DistillationModule(
        model=str(model_dir),
        learning_rate=3e-3,
        scheduler="constant",
        eval_every_n_epochs=0,
        export_dir=str(tmp_path / "export"),
    )
    distill_trainer(epochs, val_every=epochs).fit(module, datamodule=datamodule)
    assert len(datamodule.targets("train")) == 4  # the unkept rows were left out
    batch = next(iter(datamodule._loader("train", shuffle=False, targets=True)))
    generated = module.policy.decode(
        module.policy.generate(batch["input_ids"], batch["attention_mask"])
    )
    targets = [synthetic_rationale(datamodule.record("train", i)) for i in batch["index"].tolist()]
    assert generated == targets
    # the export loads with plain transformers and writes the same rationales
    auto = AutoModelForSeq2SeqLM if fixture == "tiny_t5_dir" else AutoModelForCausalLM
    exported = auto.from_pretrained(tmp_path / "export")
    module.policy.model = exported
    again = module.policy.decode(
        module.policy.generate(batch["input_ids"], batch["attention_mask"])
    )
    assert again == targets


@pytest.mark.parametrize("fixture", ["tiny_causal_dir", "tiny_t5_dir"])
def test_validation_loss_halves_on_held_out_questions(request, tmp_path, shared_data, fixture):
    model_dir = request.getfixturevalue(fixture)
    torch.manual_seed(0)
    datamodule = distill_datamodule(
        tmp_path, shared_data, model_dir, n_train=32, n_val=32, same_split=False
    )
    module = DistillationModule(
        model=str(model_dir),
        learning_rate=5e-3,
        warmup_steps=5,
        eval_every_n_epochs=0,
        export_dir=str(tmp_path / "export"),
    )
    trainer = distill_trainer(epochs=30, val_every=10)
    before = trainer.validate(module, datamodule=datamodule, verbose=False)[0]["val/loss"]
    trainer.fit(module, datamodule=datamodule)
    after = trainer.callback_metrics["val/loss"].item()
    assert after <= 0.5 * before, (before, after)


def test_gradients_are_freed_before_each_forward_and_checkpointing_still_learns(
    tmp_path, shared_data, tiny_t5_dir
):
    """Stale gradients beside a forward's activations would cost a model's size of memory."""

    class Probe(L.Callback):
        def __init__(self):
            self.grads_at_forward: list[bool] = []
            self.losses: list[float] = []

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.grads_at_forward.append(any(p.grad is not None for p in module.parameters()))

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.losses.append(float(outputs["loss"]))

    torch.manual_seed(0)
    datamodule = distill_datamodule(
        tmp_path, shared_data, tiny_t5_dir, n_train=8, n_val=8, same_split=True
    )
    module = DistillationModule(
        model=str(tiny_t5_dir),
        learning_rate=3e-3,
        scheduler="constant",
        eval_every_n_epochs=0,
        export_dir=str(tmp_path / "export"),
        gradient_checkpointing=True,
    )
    probe = Probe()
    trainer = distill_trainer(epochs=15, val_every=100)
    trainer.callbacks.append(probe)
    trainer.fit(module, datamodule=datamodule)
    assert module.policy.model.is_gradient_checkpointing
    assert len(probe.grads_at_forward) == 30 and not any(probe.grads_at_forward)
    assert sum(probe.losses[-2:]) < 0.75 * sum(probe.losses[:2]), probe.losses


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"learning_rate": 0.0}, "DistillationModule.learning_rate must be positive, got 0.0"),
        ({"weight_decay": -0.01}, "DistillationModule.weight_decay must be at least 0, got -0.01"),
        ({"warmup_steps": -1}, "DistillationModule.warmup_steps must be at least 0, got -1"),
        (
            {"eval_every_n_epochs": -1},
            "DistillationModule.eval_every_n_epochs must be at least 0, got -1",
        ),
        (
            {"num_logged_examples": -2},
            "DistillationModule.num_logged_examples must be at least 0, got -2",
        ),
    ],
)
def test_bad_numbers_are_refused_when_built(kwargs, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        DistillationModule(model="unused", **kwargs)


def test_boundary_numbers_are_accepted():
    DistillationModule(
        model="unused",
        learning_rate=1e-12,
        weight_decay=0.0,
        warmup_steps=0,
        eval_every_n_epochs=0,
        num_logged_examples=0,
    )
