"""The learning curve of a fit: one row per validation, as a CSV and a PNG beside the run.

README.md, "Stage 2", "Where stage 2 stops helping: the learning curve", is the manual.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.files import write_atomically
from lm_guided_cot.plots import new_figure, save_png
from lm_guided_cot.stages.run_logs import run_dir

# the columns every row starts with: where in the fit the validation ran
STEP_COLUMNS = ("epoch", "global_step", "batches")
Row = dict[str, float | None]


class StepHistory(Callback):
    """The scalar metrics of every training batch, kept in memory as ``steps`` (one dict per
    batch, as ``trainer.callback_metrics`` held them): what a caller in the same process, such
    as the quickstart, reports after ``fit`` without reading the logger's files."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append(
            {
                name: float(value)
                for name, value in trainer.callback_metrics.items()
                if value.numel() == 1 and not name.startswith("val")
            }
        )


class LearningCurve(Callback):
    """At each validation end during ``fit``, one row added to ``<dirpath>/<filename>.csv``
    and the curve redrawn as ``<dirpath>/<filename>.png`` (rank 0 only).

    A row holds ``epoch``, ``global_step`` (optimizer steps), ``batches`` (training batches
    done: PPO steps, each a rollout and its updates), the validation metrics (``val/*``:
    ``val/reward``, ``val/rewards/<component>_mean``, e.g. the reader's answer F1) and the
    latest training metrics (``reward/*_mean``, ``kl/mean``) as the logger got them. The
    validation itself is Lightning's (``trainer.val_check_interval``,
    ``check_val_every_n_epoch``, ``limit_val_batches`` for a fixed slice of questions): the
    callback adds no evaluation of its own. A resumed fit appends: the rows already in the CSV
    up to the checkpoint's step are kept (or, when the run writes to a new folder, the rows the
    checkpoint holds); a fit that starts at step 0 starts a new curve.

    Args:
        dirpath: the folder of the two files (default: the run's folder, beside its
            checkpoints and ``hparams.yaml``).
        filename: the files' name without extension.
        val_metrics: patterns (``fnmatch``) of the validation metrics to record.
        train_metrics: patterns of the training metrics to record.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        filename: str = "learning_curve",
        val_metrics: Sequence[str] = ("val/*",),
        train_metrics: Sequence[str] = ("reward/*_mean", "kl/mean"),
    ) -> None:
        if not filename or "/" in filename:
            raise ConfigurationError(
                f"LearningCurve.filename {filename!r}: a file name without folder or extension"
            )
        self.dirpath = dirpath
        self.filename = filename
        self.val_metrics = list(val_metrics)
        self.train_metrics = list(train_metrics)
        self.rows: list[Row] = []
        self._folder: Path | None = None
        self._written: str | None = None  # the CSV of the run a checkpoint came from

    # ---- where ----------------------------------------------------------------------------

    def csv_path(self, trainer: L.Trainer) -> Path:
        return self._dir(trainer) / f"{self.filename}.csv"

    def png_path(self, trainer: L.Trainer) -> Path:
        return self._dir(trainer) / f"{self.filename}.png"

    def _dir(self, trainer: L.Trainer) -> Path:
        if self._folder is None:
            self._folder = Path(self.dirpath or run_dir(trainer))
        return self._folder

    # ---- hooks ----------------------------------------------------------------------------

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after a checkpoint's state is restored: global_step is where the fit goes on from
        self._folder = None  # this trainer's run folder
        if not trainer.is_global_zero:
            return
        self._dir(trainer)
        step = trainer.global_step
        if step == 0:
            self.rows = []
            return
        # The CSV holds the rows of validations that ran after the checkpoint was saved at
        # the end of a training batch: this run's file, or the one the checkpoint's run wrote.
        for path in (self.csv_path(trainer), self._written):
            if path is not None and Path(path).is_file():
                self.rows = read_curve(path)
                break
        # rows past the checkpoint belong to steps this fit does again
        self.rows = [r for r in self.rows if (r.get("global_step") or 0) <= step]

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit" or not trainer.is_global_zero:
            return
        metrics = {
            name: _number(value)
            for name, value in trainer.callback_metrics.items()
            if _number(value) is not None
        }
        row: Row = {
            "epoch": float(trainer.current_epoch),
            "global_step": float(trainer.global_step),
            "batches": float(trainer.fit_loop.epoch_loop.batch_progress.total.completed),
        }
        for patterns in (self.val_metrics, self.train_metrics):
            row.update({k: metrics[k] for k in sorted(metrics) if _matches(k, patterns)})
        self.rows.append(row)
        write_atomically(self.csv_path(trainer), curve_csv(self.rows))
        plot_learning_curve(self.rows, self.png_path(trainer))

    # ---- checkpoints ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        path = str(self._folder / f"{self.filename}.csv") if self._folder else None
        return {"rows": [dict(r) for r in self.rows], "csv": path}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state_dict.get("rows", [])]
        self._written = state_dict.get("csv")


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _number(value: Any) -> float | None:
    """A logged scalar as a float (``None`` for anything else)."""
    if hasattr(value, "numel"):
        if value.numel() != 1:
            return None
        value = value.item()
    return float(value) if isinstance(value, (int, float)) else None


def columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The step columns, then every other column in the order it first appeared."""
    seen = dict.fromkeys(STEP_COLUMNS)
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def curve_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as CSV, a column per metric any row has (an empty cell where a row lacks it)."""
    header = columns(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _cell(c, row[c]) for c in header])
    return buffer.getvalue()


def _cell(column: str, value: float) -> str:
    return str(int(value)) if column in STEP_COLUMNS else repr(float(value))


def read_curve(path: Path | str) -> list[Row]:
    """The rows of a CSV that ``curve_csv`` wrote (empty cells: ``None``)."""
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return [
            {k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]


def plot_learning_curve(rows: Sequence[Mapping[str, Any]], path: Path | str) -> Path:
    """The curve as a PNG at ``path``: validation metrics against ``global_step`` above;
    training rewards (left axis) and ``kl/mean`` (right axis) against it below."""
    figure, axes = new_figure(2, 1, figsize=(8, 7), sharex=True)
    top, bottom = axes[0][0], axes[1][0]
    names = columns(rows)

    def series(name: str) -> tuple[list[float], list[float]]:
        points = [
            (r["global_step"], r[name])
            for r in rows
            if r.get(name) is not None and r.get("global_step") is not None
        ]
        points = [(x, y) for x, y in points if math.isfinite(y)]
        return [x for x, _ in points], [y for _, y in points]

    val = [n for n in names if n.startswith("val/")]
    for name in val:
        top.plot(*series(name), marker="o", label=name)
    top.set_title("validation")
    top.set_ylabel("reward / score")
    _legend(top, "no validation metric yet")

    for name in (n for n in names if n.startswith("reward/")):
        bottom.plot(*series(name), marker=".", label=name)
    bottom.set_title("training")
    bottom.set_ylabel("reward")
    bottom.set_xlabel("global_step (optimizer steps)")
    kl_axis = None
    if "kl/mean" in names:
        kl_axis = bottom.twinx()
        kl_axis.plot(*series("kl/mean"), color="grey", linestyle="--", label="kl/mean")
        kl_axis.set_ylabel("KL to the reference")
    handles, labels = bottom.get_legend_handles_labels()
    if kl_axis is not None:
        more = kl_axis.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    if handles:
        bottom.legend(handles, labels, loc="best", fontsize="small")
    else:
        _legend(bottom, "no training metric yet")
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
    return save_png(figure, path)


def _legend(axis: Any, empty: str) -> None:
    if axis.get_legend_handles_labels()[0]:
        axis.legend(loc="best", fontsize="small")
    else:
        axis.text(0.5, 0.5, empty, ha="center", va="center", transform=axis.transAxes)
