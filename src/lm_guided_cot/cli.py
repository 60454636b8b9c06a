"""The ``lmcot`` command: Trainer verbs go to LightningCLI (``trainer_cli``), the project's
own verbs (``commands``, ``demo``, ``reproduce``) are dispatched before it sees the arguments."""

from __future__ import annotations

import sys
from collections.abc import Callable

from lm_guided_cot import commands, demo, reproduce
from lm_guided_cot.boundary import debug_requested, run_verb
from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.trainer_cli import TRAINER_VERBS, build_cli

COMMANDS: dict[str, Callable[[list[str]], None]] = {
    **commands.COMMANDS,
    "demo": demo.main,
    "reproduce": reproduce.main,
}

_DESCRIPTION = (
    "LM-guided chain-of-thought: a small LM writes the rationales a frozen large LM answers with.\n"
    "Trainer verbs: fit, validate, test (LightningCLI; see `lmcot fit --help`).\n"
    "Add --debug (or set LMCOT_DEBUG=1) to see the traceback behind an error message.\n"
    "Own verbs: "
    + ", ".join(
        f"{name} ({func.__doc__.splitlines()[0].rstrip('.')})" for name, func in COMMANDS.items()
    )
)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lmcot`` console script."""
    args, debug = debug_requested(list(sys.argv[1:] if argv is None else argv))
    if args and args[0] in COMMANDS:
        run_verb(args[0], lambda: COMMANDS[args[0]](args[1:]), debug, args)
        return
    if argv is None:
        # LightningCLI reads sys.argv itself (a DDP launcher reruns it): keep them the same
        sys.argv = [sys.argv[0], *args]
    verb = args[0] if args and not args[0].startswith("-") else "fit"
    if verb == "predict":
        run_verb(verb, _no_predict, debug)
        return
    run_verb(
        verb,
        lambda: build_cli(None if argv is None else args, description=_DESCRIPTION),
        debug,
        args,
    )


def _no_predict() -> None:
    raise ConfigurationError(
        "the modules have no predict step; the Trainer verbs are "
        f"{', '.join(TRAINER_VERBS)}, and `lmcot evaluate` writes predictions (see `lmcot --help`)"
    )


if __name__ == "__main__":
    main()
