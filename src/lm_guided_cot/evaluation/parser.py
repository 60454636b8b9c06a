"""The command-line parser of ``lmcot evaluate``."""

from __future__ import annotations

from jsonargparse import ActionConfigFile, ArgumentParser

from lm_guided_cot.evaluation.runner import evaluate


def evaluation_parser() -> ArgumentParser:
    """The ``evaluate`` signature plus ``-c/--config`` (repeatable YAML files)."""
    parser = ArgumentParser(
        prog="lmcot evaluate",
        description=evaluate.__doc__.split("\n\n")[0],
        exit_on_error=True,
        usage="%(prog)s [-c CONFIG] [--KEY VALUE ...] (--help lists the options)",
    )
    parser.add_argument(
        "-c", "--config", action=ActionConfigFile, help="a YAML config (repeatable)"
    )
    parser.add_function_arguments(evaluate, fail_untyped=True)
    return parser
