"""The entry point of ``lmcot``. A verb's module (``verbs.VERBS``) is imported only when that
verb runs, so that ``lmcot --help``, ``lmcot score`` and ``lmcot models list`` start without
torch or Lightning; the Trainer verbs go to LightningCLI (``trainer``)."""

from __future__ import annotations

import importlib
import sys

from lm_guided_cot.cli.errors import debug_requested, run_verb
from lm_guided_cot.cli.verbs import TRAINER_VERBS, VERBS
from lm_guided_cot.errors import ConfigurationError

DESCRIPTION = (
    "LM-guided chain-of-thought: a small LM writes the rationales a frozen large LM answers with.\n"
    "Trainer verbs: fit, validate, test (LightningCLI; see `lmcot fit --help`).\n"
    "Add --debug (or set LMCOT_DEBUG=1) to see the traceback behind an error message.\n"
    "Own verbs: " + ", ".join(f"{name} ({verb.summary})" for name, verb in VERBS.items())
)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lmcot`` console script."""
    args, debug = debug_requested(list(sys.argv[1:] if argv is None else argv))
    if args and args[0] in VERBS:
        run_verb(args[0], lambda: _verb_function(args[0])(args[1:]), debug, args)
        return
    if argv is None:
        # LightningCLI reads sys.argv itself (a DDP launcher reruns it): keep them the same
        sys.argv = [sys.argv[0], *args]
    verb = args[0] if args and not args[0].startswith("-") else "fit"
    if verb == "predict":
        run_verb(verb, _no_predict, debug)
        return
    if verb not in TRAINER_VERBS:
        run_verb(verb, lambda: _unknown(verb), debug)
        return
    if verb == "fit" and (not args or args[0] in ("-h", "--help")):
        _print_overview()  # without importing Lightning
        return
    run_verb(verb, lambda: _trainer_cli(None if argv is None else args), debug, args)


def _verb_function(name: str):
    verb = VERBS[name]
    module = importlib.import_module(f"lm_guided_cot.cli.{verb.module}")
    return getattr(module, verb.function)


def _trainer_cli(args: list[str] | None) -> None:
    from lm_guided_cot.cli.trainer import build_cli

    build_cli(args, description=DESCRIPTION)


def _print_overview() -> None:
    try:
        print(f"usage: lmcot VERB ...\n\n{DESCRIPTION}", flush=True)
    except BrokenPipeError:  # `lmcot --help | head`: the reader has what it wanted
        sys.stdout = None  # nothing more to flush at exit


def _unknown(verb: str) -> None:
    raise ConfigurationError(
        f"unknown verb {verb!r}; the verbs are {', '.join([*TRAINER_VERBS, *VERBS])} "
        "(see `lmcot --help`)"
    )


def _no_predict() -> None:
    raise ConfigurationError(
        "the modules have no predict step; the Trainer verbs are "
        f"{', '.join(TRAINER_VERBS)}, and `lmcot evaluate` writes predictions (see `lmcot --help`)"
    )
