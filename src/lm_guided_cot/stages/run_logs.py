"""The sample tables in every logger of a run (TensorBoard, W&B, MLflow, CSV) and the folder a
run keeps its files in, whichever logger comes first."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import (
    CSVLogger,
    Logger,
    MLFlowLogger,
    TensorBoardLogger,
    WandbLogger,
)

from lm_guided_cot.files import write_atomically
from lm_guided_cot.markdown import markdown_table


def table_file_stem(tag: str) -> str:
    """``train/samples`` -> ``train_samples``: one file per tag in a flat ``samples/`` folder."""
    return tag.strip("/").replace("/", "_")


def log_table(
    loggers: Iterable[Logger],
    step: int,
    tag: str,
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """The table ``tag`` at ``step`` in each logger, the way its UI shows tables.

    TensorBoard: Markdown in the Text tab. W&B: a ``wandb.Table`` under ``tag``. MLflow: the
    table artifact ``samples/<tag>.json``, and CSV: ``<log_dir>/samples/<tag>.csv``, one per
    tag whose rows accumulate with a ``step`` column. Other loggers are left alone.
    """
    if not rows:
        return
    rows = [list(row) for row in rows]
    stepped = [[step, *row] for row in rows]
    columns = ["step", *header]
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(tag, markdown_table(header, rows), global_step=step)
        elif isinstance(logger, WandbLogger):
            logger.log_table(key=tag, columns=list(header), data=rows, step=step)
        elif isinstance(logger, MLFlowLogger):
            logger.experiment.log_table(
                run_id=logger.run_id,
                data={c: [r[i] for r in stepped] for i, c in enumerate(columns)},
                artifact_file=f"samples/{table_file_stem(tag)}.json",
            )
        elif isinstance(logger, CSVLogger):
            path = Path(logger.log_dir) / "samples" / f"{table_file_stem(tag)}.csv"
            append_csv(path, columns, stepped)


def append_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """``rows`` added to the CSV ``path`` (its header first when it is new), rewritten whole."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if not old:
        writer.writerow(header)
    writer.writerows(rows)
    write_atomically(path, old + buffer.getvalue())


def run_dir(trainer: Any) -> str:
    """This run's own folder, beside its checkpoints, whichever logger comes first.

    ``trainer.log_dir`` is that for TensorBoard and CSV, but the whole store for W&B and MLflow
    (``<root>/mlruns``), where every run's export would land on the last one's. Lightning's
    checkpoints go to ``<save_dir>/<name>/<version>``: the run's folder is that. Not broadcast:
    every rank that calls it must get the same logger state (``trainer.strategy.broadcast``).
    """
    loggers = trainer.loggers
    if not loggers:
        return trainer.default_root_dir
    first = loggers[0]
    if isinstance(first, (TensorBoardLogger, CSVLogger)):
        return first.log_dir
    version = first.version
    version = version if isinstance(version, str) else f"version_{version}"
    return os.path.join(first.save_dir or trainer.default_root_dir, str(first.name), version)


def log_text_table(
    module: Any, tag: str, header: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """The table in every logger of the run (``loggers.log_table``: TensorBoard, W&B, MLflow, CSV)."""
    log_table(module.loggers, module.global_step, tag, header, rows)
