"""What every ``lmcot`` verb shares at its edge: one message for errors the user can act on,
masked credentials in everything printed, and no advertising from the libraries.

``--debug`` (or ``LMCOT_DEBUG=1``) lets the project's own errors through with their traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator

from lm_guided_cot.errors import InputError, LmcotError
from lm_guided_cot.llm.secrets import MaskedStream

DEBUG_ENV = "LMCOT_DEBUG"

# (logger, text a message starts with or contains) pairs that tell the user nothing they can
# act on: Lightning's advertising, and asyncio's complaint about litellm's own logging tasks,
# which it leaves pending when the process ends.
_NOISE: tuple[tuple[str, str], ...] = (
    ("lightning.pytorch.utilities.rank_zero", "💡 Tip"),
    ("lightning.fabric.utilities.rank_zero", "💡 Tip"),
    ("asyncio", "Task was destroyed but it is pending"),
    # The prompt builders are closures over a tokenizer: datasets cannot hash them, which only
    # means that map results are recomputed (they are, on purpose: the prompt config changes).
    ("datasets.fingerprint", "couldn't be hashed properly"),
)
_NOISY_WARNINGS = (
    # The project's own verbs (rationales, demo, reproduce) run LightningCLI with args on
    # purpose, and the warning would repeat argv, keys included.
    r"LightningCLI's args parameter is intended to run from within Python",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning's, about torch's pytree
    # PPOModule says in one line why its checkpoints hold the state after a step's updates
    r"Using ModelCheckpoint with manual optimization and every_n_train_steps",
)


class _DropMessages(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def silence_library_noise() -> None:
    """Drop the library messages of ``_NOISE`` and ``_NOISY_WARNINGS`` (idempotent)."""
    for name, text in _NOISE:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) and f.text == text for f in logger.filters):
            logger.addFilter(_DropMessages(text))
    for message in _NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


@contextlib.contextmanager
def masked_output() -> Iterator[None]:
    """Pass ``sys.stdout``, ``sys.stderr`` and the logging handlers writing to them through
    ``redact``, so no credential leaves the process in printed text."""
    saved = sys.stdout, sys.stderr
    masked = {id(s): MaskedStream(s) for s in saved}
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    # Handlers that hold a stream of their own; those reading sys.stderr on each record
    # (logging.lastResort) are masked by the swap itself.
    handlers = {
        id(h): (h, h.stream)
        for logger in loggers
        for h in getattr(logger, "handlers", ())
        if isinstance(h, logging.StreamHandler)
        and not isinstance(getattr(type(h), "stream", None), property)
        and id(h.stream) in masked
    }.values()
    sys.stdout, sys.stderr = masked[id(saved[0])], masked[id(saved[1])]
    for handler, stream in handlers:
        handler.setStream(masked[id(stream)])
    try:
        yield
    finally:
        for handler, stream in handlers:
            handler.setStream(stream)
        sys.stdout, sys.stderr = saved


def explained(err: BaseException) -> LmcotError | None:
    """The project error behind ``err``: itself, or one it was raised from (config parsers and
    ``datasets`` wrap the errors of the code they call)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, LmcotError):
            return err
        seen.add(id(err))
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
    return None


def debug_requested(args: list[str]) -> tuple[list[str], bool]:
    """``args`` without ``--debug``, and whether it or ``LMCOT_DEBUG`` asks for tracebacks.

    The flag is turned into the variable so that processes the verb starts (DDP ranks) see it.
    """
    if "--debug" in args:
        os.environ[DEBUG_ENV] = "1"
        args = [a for a in args if a != "--debug"]
    return args, os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")


def check_config_files(args: list[str]) -> None:
    """Refuse a ``-c/--config`` file that is not YAML, naming it: the config parsers say only
    where in "<unicode string>" the problem is."""
    import yaml

    for i, arg in enumerate(args):
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        elif arg in ("-c", "--config") and i + 1 < len(args):
            path = args[i + 1]
        else:
            continue
        if not os.path.isfile(path):
            continue  # the parser names a missing file itself
        try:
            with open(path, encoding="utf-8") as f:
                yaml.safe_load(f)
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            problem = " ".join(str(err).split())
            raise InputError(f"{path}: not a YAML config ({problem})") from None


def run_verb(
    name: str, func: Callable[[], None], debug: bool = False, args: list[str] | None = None
) -> None:
    """Run one verb (given ``args``, its arguments) inside the boundary; exits on failure."""
    silence_library_noise()
    with masked_output():
        try:
            check_config_files(args or [])
            func()
            return
        except KeyboardInterrupt:
            print(f"lmcot {name}: interrupted", file=sys.stderr)
            code = 130
        except SystemExit:
            raise  # argument parsers print their own one-line errors
        except BaseException as err:
            known = explained(err)
            if known is None or debug:
                traceback.print_exc()  # a bug: keep the traceback (masked like all output)
                code = known.exit_code if known is not None else 1
            else:
                print(f"lmcot {name}: {known}", file=sys.stderr)
                code = known.exit_code
        sys.stderr.flush()
    raise SystemExit(code)
