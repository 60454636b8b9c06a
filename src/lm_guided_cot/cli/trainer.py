"""The LightningCLI behind ``lmcot fit|validate|test`` (YAML configs, ``--print_config``)."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import typing
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from lightning import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningCLI

from lm_guided_cot.cli.loggers import allow_mlflow_file_store, missing_logger_package, with_root
from lm_guided_cot.cli.progress import default_progress_bar
from lm_guided_cot.cli.verbs import TRAINER_VERBS
from lm_guided_cot.errors import ConfigurationError, InputError, MissingFileError
from lm_guided_cot.files import check_writable
from lm_guided_cot.hparams import as_dataclass, dataclass_in
from lm_guided_cot.paths import expand_path

_CKPT_KEYWORDS = ("last", "best", "hpc")  # names Lightning resolves itself
# where classes a saved checkpoint may name have moved (issue 34 put the training stages under
# lm_guided_cot.stages): old prefix -> new prefix
MOVED_CLASS_PATHS = {"lm_guided_cot.modules.": "lm_guided_cot.stages."}


class LmcotCLI(LightningCLI):
    """LightningCLI with the project's defaults: the data's tokenizer is the small LM's."""

    def init_parser(self, **kwargs):
        parser = super().init_parser(**kwargs)
        if "prog" not in kwargs:  # a verb's parser (the main one is given its prog)
            # argparse's usage lists all ~60 options, and prints them above each error
            parser.usage = "%(prog)s [-c CONFIG] [--KEY VALUE ...] (--help lists the options)"
        return parser

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # the modules have no predict_step: `lmcot predict` is refused in cli.main
        return {k: v for k, v in LightningCLI.subcommands().items() if k in TRAINER_VERBS}

    def _parse_ckpt_path(self) -> None:
        # Lightning's own reading, plus: a bad file is one message before the models are built
        # (Lightning would find a missing one only after reading the data), a checkpoint saved
        # under a since-moved class path resumes, and the config values the checkpoint's
        # hyperparameters replace are named instead of dropped silently
        command = self.config.get("subcommand")
        ckpt = self.config[command].get("ckpt_path") if command else None
        special = ckpt in _CKPT_KEYWORDS or str(ckpt).startswith("registry")
        if not ckpt or special:
            return super()._parse_ckpt_path()
        _check_checkpoint(Path(ckpt))
        if not Path(ckpt).is_file():
            return None  # a DeepSpeed folder: Lightning reads no hyperparameters from it either
        try:
            # mmap: only the hyperparameters are read, not gigabytes of weights (zip format only)
            mmap = zipfile.is_zipfile(ckpt)
            saved = torch.load(ckpt, weights_only=True, map_location="cpu", mmap=mmap)
        except Exception as err:  # whatever the bytes make torch.load raise
            problem = " ".join(str(err).split())[:200] or type(err).__name__
            raise InputError(
                f"--ckpt_path {ckpt}: not a checkpoint that torch.load reads ({problem})"
            ) from None
        hparams = checkpoint_model_hparams(saved.get("hyper_parameters") or {})
        if not hparams:
            return None
        model = self.config[command].get("model")
        given = model.get("init_args") if isinstance(model, Namespace) else None
        replaced = replaced_values(given.as_dict() if given is not None else {}, hparams)
        if replaced:
            print(
                f"lmcot: --ckpt_path {ckpt}: the model is built with the checkpoint's "
                f"hyperparameters, which replace the config's {'; '.join(replaced)}",
                file=sys.stderr,
            )
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        try:
            self.config = self.parser.parse_object({command: {"model": hparams}}, self.config)
        except SystemExit:
            sys.stderr.write(f"lmcot: --ckpt_path {ckpt}: its hyperparameters do not parse\n")
            raise

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        if config is not None:
            for key in ("model", "data"):
                _check_dataclass_arguments(config.get(key), f"--{key}.init_args")
        if config is not None and config.get("trainer") is not None:
            _prepare_loggers(config.trainer)
            if self.subcommand == "fit":
                _check_outputs(config)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Trainer:
        if config.get("enable_progress_bar") is not False:
            return super()._instantiate_trainer(config, callbacks)
        # no bar asked for: leave out the default one, which Lightning would refuse beside it
        bars = [c for c in config.get("callbacks") or [] if isinstance(c, ProgressBar)]
        if bars:
            raise ConfigurationError(
                "--trainer.enable_progress_bar false, but trainer.callbacks holds a progress bar "
                f"({type(bars[0]).__name__}): drop one of the two"
            )
        defaults = self.trainer_defaults.get("callbacks")
        self.trainer_defaults["callbacks"] = [
            c for c in defaults or [] if not isinstance(c, ProgressBar)
        ]
        try:
            return super()._instantiate_trainer(config, callbacks)
        finally:
            self.trainer_defaults["callbacks"] = defaults

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("model.init_args.model", "data.init_args.tokenizer")


def checkpoint_model_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """The model hyperparameters a checkpoint saved, as the parser takes them: Lightning's
    private keys dropped, class paths that have moved since (``MOVED_CLASS_PATHS``) renamed."""

    def renamed(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: renamed(item) for key, item in value.items()}
        if isinstance(value, list):
            return [renamed(item) for item in value]
        if isinstance(value, str):
            for old, new in MOVED_CLASS_PATHS.items():
                if value.startswith(old):
                    return new + value[len(old) :]
        return value

    return renamed({k: v for k, v in hparams.items() if k != "_instantiator"})


def replaced_values(given: dict[str, Any], saved: dict[str, Any], prefix: str = "") -> list[str]:
    """``key (config X, checkpoint Y)`` for each value of ``given`` (the config's model
    arguments) that ``saved`` (the checkpoint's hyperparameters) sets differently; a dataclass
    argument is compared field by field, and keys only one side has are left out."""
    found = []
    for key, value in saved.items():
        if key.startswith("_") or key not in given:
            continue
        mine = given[key]
        if isinstance(value, dict) and isinstance(mine, dict):
            found += replaced_values(mine, value, f"{prefix}{key}.")
        elif mine != value and not (isinstance(mine, tuple) and list(mine) == value):
            found.append(f"{prefix}{key} (config {mine!r}, checkpoint {value!r})")
    return found


def _check_checkpoint(path: Path) -> None:
    """Refuse a ``--ckpt_path`` that cannot be a checkpoint, before the models are built: a
    missing path, a folder that is not a DeepSpeed checkpoint, an empty or cut-off file."""
    if not path.exists():
        raise MissingFileError(f"--ckpt_path {path}: no such checkpoint")
    if path.is_dir():
        if (path / "latest").is_file():
            return  # a DeepSpeed checkpoint folder
        found = sorted(p.name for p in path.glob("*.ckpt"))[:3]
        hint = f"; it holds {', '.join(found)}" if found else ""
        raise InputError(
            f"--ckpt_path {path}: a folder, not a checkpoint (nor a DeepSpeed checkpoint folder, "
            f"which has a 'latest' file): pass a .ckpt file{hint}"
        )
    with path.open("rb") as handle:
        head = handle.read(4)
    if not head:
        raise InputError(f"--ckpt_path {path}: the file is empty; pass a .ckpt file that fit saved")
    if head.startswith(b"PK") and not zipfile.is_zipfile(path):
        raise InputError(
            f"--ckpt_path {path}: the checkpoint is cut off (its zip archive has no end): a copy "
            "or a save that did not finish; pass another checkpoint"
        )
    if not head.startswith((b"PK", b"\x80")):  # torch.save writes a zip; old torch a pickle
        raise InputError(f"--ckpt_path {path}: not a PyTorch checkpoint (it starts with {head!r})")


def _check_dataclass_arguments(component: Any, option: str) -> None:
    """Refuse a value that is not a mapping where the class takes a dataclass (such as a list
    as ``prompt``): jsonargparse would fail to build it with a wall of Union errors."""
    class_path = getattr(component, "class_path", None)
    init_args = getattr(component, "init_args", None)
    if not isinstance(class_path, str) or not isinstance(init_args, Namespace):
        return
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # the parser reports classes it cannot find or read
        return
    for arg, hint in hints.items():
        target = dataclass_in(hint)
        value = init_args.get(arg) if arg in init_args else None
        if target is None or value is None or isinstance(value, (Namespace, dict, target)):
            continue
        as_dataclass(target, value, f"{option}.{arg}")  # raises ConfigurationError, naming it


def _check_outputs(config: Namespace) -> None:
    """Refuse, before the models are built, a run folder or export folder that ``fit`` could
    not write to (a file in the way, a read-only file system, a full disk)."""
    root = config.trainer.get("default_root_dir") or os.getcwd()
    check_writable(Path(expand_path(str(root))), "--trainer.default_root_dir")
    init_args = (config.get("model") or Namespace()).get("init_args") or Namespace()
    export = init_args.get("export_dir") if isinstance(init_args, Namespace) else None
    if export:
        check_writable(Path(expand_path(str(export))), "--model.init_args.export_dir")


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
