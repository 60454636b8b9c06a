"""The LightningCLI behind ``lmcot fit|validate|test|predict`` (YAML configs, ``--print_config``)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from jsonargparse import Namespace
from lightning import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from lm_guided_cot.errors import ConfigurationError, MissingFileError
from lm_guided_cot.modules.loggers import (
    allow_mlflow_file_store,
    missing_logger_package,
    with_root,
)
from lm_guided_cot.modules.progress import default_progress_bar

_CKPT_KEYWORDS = ("last", "best", "hpc")  # names Lightning resolves itself


class LmcotCLI(LightningCLI):
    """LightningCLI with the project's defaults: the data's tokenizer is the small LM's."""

    def init_parser(self, **kwargs):
        parser = super().init_parser(**kwargs)
        if "prog" not in kwargs:  # a verb's parser (the main one is given its prog)
            # argparse's usage lists all ~60 options, and prints them above each error
            parser.usage = "%(prog)s [-c CONFIG] [--KEY VALUE ...] (--help lists the options)"
        return parser

    def before_instantiate_classes(self) -> None:
        # Lightning finds out only after the models are built and the data is read
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        ckpt = config.get("ckpt_path") if config is not None else None
        special = ckpt in _CKPT_KEYWORDS or str(ckpt).startswith("registry")
        if ckpt and not special and not Path(ckpt).exists():
            raise MissingFileError(f"--ckpt_path {ckpt}: no such checkpoint")
        if config is not None and config.get("trainer") is not None:
            _prepare_loggers(config.trainer)

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("model.init_args.model", "data.init_args.tokenizer")


def _prepare_loggers(trainer) -> None:
    """Refuse a logger whose package is missing in one line; fill in the
    ``${trainer.default_root_dir}`` of the logger presets (configs/logger/)."""
    loggers = trainer.get("logger")
    loggers = loggers if isinstance(loggers, list) else [loggers]
    root = trainer.get("default_root_dir") or os.getcwd()
    for logger in loggers:
        class_path = getattr(logger, "class_path", None)
        if not isinstance(class_path, str):
            continue  # True, False, None: Lightning's default or none
        problem = missing_logger_package(class_path)
        if problem:
            raise ConfigurationError(problem)
        init_args = logger.get("init_args") or Namespace()
        for key, value in with_root(init_args.as_dict(), str(root)).items():
            init_args[key] = value
        if class_path.endswith(".MLFlowLogger"):
            allow_mlflow_file_store(init_args.as_dict())


def build_cli(args: list[str] | None, run: bool = True, description: str | None = None) -> LmcotCLI:
    """The LightningCLI of ``lmcot`` (``run=False``: parse and instantiate only)."""
    return LmcotCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [default_progress_bar()]},
        parser_kwargs={"prog": "lmcot", **({"description": description} if description else {})},
        run=run,
        args=args,
    )


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved, sys.argv = sys.argv, argv
    try:
        yield
    finally:
        sys.argv = saved


def run_trainer(args: list[str]) -> LmcotCLI:
    """``lmcot ARGS`` from Python (the demo, the recipe), ``args[0]`` the Trainer verb.

    ``sys.argv`` says the same for the call: a DDP launcher starts the other ranks by running
    ``sys.argv`` again.
    """
    with _argv(["lmcot", *args]):
        return build_cli(args)
