"""Fixtures of the stage tests: the tiny models after a short stage 1."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lm_guided_cot.data import PromptConfig
from lm_guided_cot.datamodules import HotpotQADataModule
from lm_guided_cot.rationales import RationaleConfig
from lm_guided_cot.stages import DistillationModule
from tests.helpers import write_rationales
from tests.stage_helpers import hotpot_records, quiet_trainer


@pytest.fixture(scope="module")
def warm_started(tmp_path_factory, shared_data, tiny_causal_dir, tiny_t5_dir) -> dict[str, Path]:
    """Each tiny model after a short stage 1 on 8 questions, so that it writes text-like output."""
    out = {}
    train = shared_data / "hotpotqa/train.jsonl"
    records = hotpot_records(train, 8)
    for name, model_dir in (("causal", tiny_causal_dir), ("seq2seq", tiny_t5_dir)):
        folder = tmp_path_factory.mktemp(f"kd_{name}")
        write_rationales(
            folder / "rationales", "train", [(r.id, f"Answer: {r.answer}") for r in records]
        )
        datamodule = HotpotQADataModule(
            tokenizer=str(model_dir),
            train=str(train),
            max_examples=8,
            batch_size=4,
            prompt=PromptConfig(max_tokens=96),
            rationales=RationaleConfig(dir=str(folder / "rationales")),
        )
        torch.manual_seed(0)
        module = DistillationModule(
            model=str(model_dir),
            learning_rate=3e-3,
            scheduler="constant",
            eval_every_n_epochs=0,
            export_dir=str(folder / "export"),
        )
        quiet_trainer(max_epochs=80).fit(module, datamodule=datamodule)
        out[name] = folder / "export"
    return out
