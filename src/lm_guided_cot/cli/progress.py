"""Progress as plain log lines, for runs whose output is a file (nohup, SLURM, CI).

Rich's live bars draw nothing until they stop when stdout is not a terminal, so a week-long
job's log would say nothing about how far it got. ``LogLineProgressBar`` prints one line
every ``every_seconds`` (and at each epoch's end) instead; the CLI picks it when stdout is
not a terminal.
"""

from __future__ import annotations

import math
import sys
import time

from lightning.pytorch.callbacks import ProgressBar


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class LogLineProgressBar(ProgressBar):
    """One line of training progress every ``every_seconds``: epoch, batch, optimizer step of
    the planned total, seconds per batch, time left, and the logged metrics.

    Args:
        every_seconds: least time between two lines (epoch ends always print one).
    """

    def __init__(self, every_seconds: float = 30.0) -> None:
        super().__init__()
        self.every_seconds = every_seconds
        self._enabled = True
        self._start = 0.0
        self._last = 0.0
        self._batches = 0
        self._epoch_batches: float = math.inf

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = self._last = time.monotonic()
        self._batches = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # read once: with max_steps, Lightning's count shrinks to the steps left as they run
        self._epoch_batches = self.total_train_batches

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._batches += 1
        now = time.monotonic()
        if now - self._last >= self.every_seconds:
            self._last = now
            self._print(trainer, pl_module, batch_idx + 1)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._last = time.monotonic()
        self._print(trainer, pl_module, None)

    def line(self, trainer, pl_module, batch: int | None) -> str:
        """The progress line (``batch``: batches done this epoch; ``None`` at its end)."""
        elapsed = time.monotonic() - self._start
        per_batch = elapsed / max(self._batches, 1)
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        parts = [f"epoch {trainer.current_epoch + 1}{epochs}"]
        total = self._epoch_batches
        if batch is not None:
            parts.append(f"batch {batch}/{total}" if math.isfinite(total) else f"batch {batch}")
        else:
            parts.append("epoch done")
        planned = trainer.estimated_stepping_batches
        if math.isfinite(planned):
            parts.append(f"step {trainer.global_step}/{int(planned)}")
            left = max(planned - trainer.global_step, 0) / max(trainer.global_step, 1) * elapsed
            parts.append(
                f"{per_batch:.1f} s/batch, {_duration(elapsed)} elapsed, {_duration(left)} left"
            )
        else:
            parts.append(f"step {trainer.global_step}, {per_batch:.1f} s/batch")
        metrics = self.get_metrics(trainer, pl_module)
        shown = [f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float)]
        return " | ".join([", ".join(parts), *shown])

    def _print(self, trainer, pl_module, batch: int | None) -> None:
        if self._enabled and trainer.is_global_zero and not trainer.sanity_checking:
            print(self.line(trainer, pl_module, batch), file=sys.stdout, flush=True)


def default_progress_bar() -> ProgressBar:
    """Rich's bar on a terminal, plain log lines otherwise."""
    from lightning.pytorch.callbacks import RichProgressBar

    return RichProgressBar() if sys.stdout.isatty() else LogLineProgressBar()
