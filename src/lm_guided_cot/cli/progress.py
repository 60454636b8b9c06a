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
        self._start_step = 0
        self._epoch_batches: float = math.inf
        self._clock = time.monotonic

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = self._last = self._clock()
        self._batches = 0
        self._start_step = trainer.global_step  # a resumed run's rate counts its own steps

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # read once: with max_steps, Lightning's count shrinks to the steps left as they run
        self._epoch_batches = self.total_train_batches

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._batches += 1
        now = self._clock()
        if now - self._last >= self.every_seconds:
            self._last = now
            self._print(trainer, pl_module, batch_idx + 1)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._last = self._clock()
        self._print(trainer, pl_module, None)

    def line(self, trainer, pl_module, batch: int | None) -> str:
        """The progress line (``batch``: batches done this epoch; ``None`` at its end)."""
        elapsed = self._clock() - self._start
        per_batch = elapsed / max(self._batches, 1)
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        parts = [f"epoch {trainer.current_epoch + 1}{epochs}"]
        total = self._epoch_batches
        if batch is not None:
            parts.append(f"batch {batch}/{total}" if math.isfinite(total) else f"batch {batch}")
        else:
            parts.append("epoch done")
        planned = self._planned_steps(trainer, pl_module)
        parts.append(
            f"step {trainer.global_step}/{planned}" if planned else f"step {trainer.global_step}"
        )
        parts.append(f"{per_batch:.1f} s/batch")
        left = self._time_left(trainer, batch, elapsed, per_batch)
        if left is not None:
            parts[-1] += f", {_duration(elapsed)} elapsed, {_duration(left)} left"
        metrics = self.get_metrics(trainer, pl_module)
        shown = [f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float)]
        return " | ".join([", ".join(parts), *shown])

    @staticmethod
    def _planned_steps(trainer, pl_module) -> int | None:
        """The optimizer steps the run will take, where they are known. Lightning counts one a
        batch; a manually optimized module (PPO: several minibatches and passes a batch) takes
        more, so only its ``max_steps`` is a plan."""
        if pl_module.automatic_optimization:
            planned = trainer.estimated_stepping_batches
            return int(planned) if math.isfinite(planned) else None
        return trainer.max_steps if trainer.max_steps > 0 else None

    def _time_left(self, trainer, batch, elapsed: float, per_batch: float) -> float | None:
        """The sooner of the ends the step limit and the epoch limit predict at this run's rate."""
        estimates = []
        steps_run = trainer.global_step - self._start_step
        if trainer.max_steps > 0 and steps_run > 0:
            estimates.append(max(trainer.max_steps - trainer.global_step, 0) / steps_run * elapsed)
        epochs = trainer.max_epochs
        if epochs and epochs > 0 and math.isfinite(self._epoch_batches) and self._batches:
            this_epoch = self._epoch_batches if batch is None else batch
            done = trainer.current_epoch * self._epoch_batches + this_epoch
            estimates.append(max(epochs * self._epoch_batches - done, 0) * per_batch)
        return min(estimates) if estimates else None

    def _print(self, trainer, pl_module, batch: int | None) -> None:
        if self._enabled and trainer.is_global_zero and not trainer.sanity_checking:
            print(self.line(trainer, pl_module, batch), file=sys.stdout, flush=True)


def default_progress_bar() -> ProgressBar:
    """Rich's bar on a terminal, plain log lines otherwise."""
    from lightning.pytorch.callbacks import RichProgressBar

    return RichProgressBar() if sys.stdout.isatty() else LogLineProgressBar()
