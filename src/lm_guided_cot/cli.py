"""The ``lmcot`` command.

``lmcot fit|validate|test|predict`` are LightningCLI (YAML configs, ``--print_config``);
the project's own verbs that are not Trainer methods live in ``lm_guided_cot.commands`` and
are dispatched here before LightningCLI sees the arguments.
"""

from __future__ import annotations

import sys

from lightning import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from lm_guided_cot.commands import COMMANDS
from lm_guided_cot.modules.progress import default_progress_bar

_DESCRIPTION = (
    "LM-guided chain-of-thought: a small LM writes the rationales a frozen large LM answers with.\n"
    "Trainer verbs: fit, validate, test, predict (LightningCLI; see `lmcot fit --help`).\n"
    "Own verbs: "
    + ", ".join(
        f"{name} ({func.__doc__.splitlines()[0].rstrip('.')})" for name, func in COMMANDS.items()
    )
)


class LmcotCLI(LightningCLI):
    """LightningCLI with the project's defaults: the data's tokenizer is the small LM's."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("model.init_args.model", "data.init_args.tokenizer")


def build_cli(args: list[str] | None, run: bool = True) -> LmcotCLI:
    """The LightningCLI of ``lmcot`` (``run=False``: parse and instantiate only)."""
    return LmcotCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [default_progress_bar()]},
        parser_kwargs={"description": _DESCRIPTION} if run else {},
        run=run,
        args=args,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lmcot`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        COMMANDS[args[0]](args[1:])
        return
    build_cli(argv)  # None: LightningCLI reads sys.argv itself


if __name__ == "__main__":
    main()
