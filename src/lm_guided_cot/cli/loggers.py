"""The loggers a run is configured with: the packages they need, their folders under the run's root."""

from __future__ import annotations

import importlib
import os
from typing import Any

# Lightning imports these loggers' packages only when one is built: (package, preset)
LOGGER_PACKAGES = {
    "WandbLogger": ("wandb", "configs/logger/wandb.yaml"),
    "MLFlowLogger": ("mlflow", "configs/logger/mlflow.yaml"),
}


INSTALL_LOGGERS = "pip install 'lm-guided-cot[loggers]'"


ROOT = "${trainer.default_root_dir}"


def missing_logger_package(class_path: str) -> str | None:
    """Why the logger ``class_path`` cannot be built (its package is not installed), or ``None``."""
    name = class_path.rsplit(".", 1)[-1]
    if name not in LOGGER_PACKAGES:
        return None
    package, preset = LOGGER_PACKAGES[name]
    try:
        importlib.import_module(package)
    except ImportError:
        return (
            f"trainer.logger {name} ({preset}) needs the {package} package, which is not "
            f"installed: {INSTALL_LOGGERS}"
        )
    return None


def with_root(init_args: dict[str, Any], root: str) -> dict[str, str]:
    """The logger arguments that name ``${trainer.default_root_dir}``, with it filled in.

    The presets of configs/logger/ write under the stage's ``trainer.default_root_dir`` this
    way, so one preset fits every stage (the parser itself does no interpolation).
    """
    return {
        key: value.replace(ROOT, root)
        for key, value in init_args.items()
        if isinstance(value, str) and ROOT in value
    }


def allow_mlflow_file_store(init_args: dict[str, Any]) -> None:
    """Let an MLflow logger with a local store run: MLflow 3 keeps its file store in
    maintenance mode and refuses it unless ``MLFLOW_ALLOW_FILE_STORE`` says yes; and no
    progress bar each time a sample table is appended (MLflow downloads the table first).
    A value the user set wins."""
    uri = init_args.get("tracking_uri")
    if not uri or str(uri).startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
