"""The command-line parsers of ``lmcot evaluate`` and ``lmcot judge-check``."""

from __future__ import annotations

from collections.abc import Callable

from jsonargparse import ActionConfigFile, ArgumentParser

from lm_guided_cot.evaluation.runner import evaluate


def function_parser(function: Callable, prog: str) -> ArgumentParser:
    """``function``'s signature as options, plus ``-c/--config`` (repeatable YAML files)."""
    parser = ArgumentParser(
        prog=prog,
        description=function.__doc__.split("\n\n")[0],
        exit_on_error=True,
        usage="%(prog)s [-c CONFIG] [--KEY VALUE ...] (--help lists the options)",
    )
    parser.add_argument(
        "-c", "--config", action=ActionConfigFile, help="a YAML config (repeatable)"
    )
    parser.add_function_arguments(function, fail_untyped=True)
    return parser


def evaluation_parser() -> ArgumentParser:
    """The ``evaluate`` signature plus ``-c/--config``."""
    return function_parser(evaluate, "lmcot evaluate")


def judge_check_parser() -> ArgumentParser:
    """The ``judge_check`` signature plus ``-c/--config``."""
    from lm_guided_cot.evaluation.judge_check import judge_check

    return function_parser(judge_check, "lmcot judge-check")
