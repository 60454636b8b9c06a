"""Run by test_datamodule.py under DDP on 2 CPU processes: which records each rank trains on,
and the answer metric reduced across ranks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch

from lm_guided_cot.datamodules import HotpotQADataModule
from lm_guided_cot.metrics.torch_metrics import AnswerScores


class Probe(L.LightningModule):
    def __init__(self, out: str) -> None:
        super().__init__()
        self.out = Path(out)
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[int] = []
        self.scores = AnswerScores()

    def training_step(self, batch, batch_idx):
        self.seen.extend(batch["index"].tolist())
        return (self.weight * batch["input_ids"].float().mean()).sum()

    def validation_step(self, batch, batch_idx):
        dm = self.trainer.datamodule
        indices = batch["index"].tolist()
        records = [dm.record("validation", i) for i in indices]
        # fixed "predictions" that score differently per record: exact, partial, wrong
        preds = [
            [r.answer, r.answer + " and more words", r.question][i % 3]
            for i, r in zip(indices, records)
        ]
        self.scores.update(preds, [r.gold_answers for r in records])

    def on_validation_epoch_end(self):
        result = {k: v.item() for k, v in self.scores.compute().items()}
        if self.global_rank == 0:
            (self.out / "metrics.json").write_text(json.dumps(result))
        self.scores.reset()

    def on_train_epoch_end(self):
        (self.out / f"seen_rank{self.global_rank}.json").write_text(json.dumps(self.seen))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def main(out: str, train: str, validation: str, tokenizer: str, devices: int) -> None:
    L.seed_everything(7)
    dm = HotpotQADataModule(
        tokenizer=tokenizer, train=train, validation=validation, batch_size=4, max_examples=24
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(Probe(out), datamodule=dm)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
