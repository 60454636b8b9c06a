"""Progress in a log file: plain lines with the step, the time left and the metrics."""

from __future__ import annotations

import re

import torch
from lightning import LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from lm_guided_cot.cli.progress import LogLineProgressBar, default_progress_bar
from lm_guided_cot.llm.progress import BatchProgress


class _Regression(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _progress_lines(tmp_path, capsys, examples: int, module=None, **limits) -> list[str]:
    """Fit ``module`` (a ``_Regression`` by default) on ``examples`` random pairs in batches of
    2 and return the printed progress lines; a module with a ``clock`` is the bar's clock."""
    module = module or _Regression()
    bar = LogLineProgressBar(every_seconds=0)
    if hasattr(module, "clock"):
        bar._clock = lambda: module.clock
    data = TensorDataset(torch.randn(examples, 2), torch.randn(examples, 1))
    trainer = Trainer(
        callbacks=[bar],
        logger=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        enable_model_summary=False,
        **limits,
    )
    trainer.fit(module, DataLoader(data, batch_size=2))
    return [x for x in capsys.readouterr().out.splitlines() if x.startswith("epoch")]


def test_training_progress_is_printed_as_lines_when_stdout_is_a_file(tmp_path, capsys):
    assert isinstance(default_progress_bar(), LogLineProgressBar)  # pytest captures stdout
    lines = _progress_lines(tmp_path, capsys, 8, max_epochs=2)
    assert lines[0].startswith("epoch 1/2, batch 1/4, step 1/8, ")
    assert "left" in lines[0] and re.search(r"train/loss \d", lines[0])
    assert lines[-1].startswith("epoch 2/2, epoch done, step 8/8, ")
    assert len(lines) == 2 * (4 + 1)  # every batch (every_seconds=0) and each epoch's end


def test_large_lm_batches_print_lines_in_a_log(capsys):
    progress = BatchProgress("reader", total=3, every_seconds=0)
    progress.advance()
    progress.advance(2)
    progress.close()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("reader: 1/3, ") and "left" in out[0]
    assert out[-1].startswith("reader: 3/3, ") and "left" not in out[-1]
    assert len(out) == 2  # the last advance printed 3/3: close() does not print it again


def test_a_log_gets_the_final_count_at_close_when_no_line_was_due(capsys):
    progress = BatchProgress("reader", total=3, every_seconds=3600)
    progress.advance(3)
    progress.close()
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("reader: 3/3, ")


def test_the_batch_total_is_the_epoch_s_plan_when_max_steps_ends_it_early(tmp_path, capsys):
    lines = _progress_lines(tmp_path, capsys, 16, max_steps=3)
    batches = [re.search(r"batch (\d+/\d+)", x).group(1) for x in lines if "batch " in x]
    assert batches == ["1/3", "2/3", "3/3"]


class _TwoStepsABatch(_Regression):
    """Optimized by hand, two optimizer steps a batch (as PPO's passes are); each batch takes
    10 s on the progress bar's clock."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.clock = 0.0

    def training_step(self, batch, batch_idx):
        self.clock += 10.0
        optimizer = self.optimizers()
        for _ in range(2):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()


def test_time_left_counts_batches_when_a_batch_takes_several_optimizer_steps(tmp_path, capsys):
    lines = _progress_lines(tmp_path, capsys, 8, _TwoStepsABatch(), max_epochs=1)
    # Lightning plans 4 steps (one a batch); after batch 1 of 4 the run has taken 2 of its 8
    # and has 3 batches (30 s) to go, not "2 of 4 steps done: 10 s"
    assert lines[0].startswith(
        "epoch 1/1, batch 1/4, step 2, 10.0 s/batch, 0:10 elapsed, 0:30 left"
    )
    assert lines[-1].startswith(
        "epoch 1/1, epoch done, step 8, 10.0 s/batch, 0:40 elapsed, 0:00 left"
    )


def test_time_left_follows_max_steps_when_a_batch_takes_several_steps(tmp_path, capsys):
    lines = _progress_lines(tmp_path, capsys, 16, _TwoStepsABatch(), max_steps=6)
    # the run ends at step 6 after 3 batches: 20 s after the first
    assert ", step 2/6, 10.0 s/batch, 0:10 elapsed, 0:20 left" in lines[0]
