"""Paths in configs, one rule for all: ``$LMCOT_DATA`` has a default, then ``$VARS`` and ``~``
are expanded. Everything that reads or writes a configured path goes through ``expand_path``,
so that a folder written under one spelling is found under the same one."""

from __future__ import annotations

import os
import re
from pathlib import Path

DATA_ENV = "LMCOT_DATA"
# $LMCOT_DATA or ${LMCOT_DATA}, not the start of a longer name such as $LMCOT_DATA_DIR
_DATA_VAR = re.compile(r"\$(?:\{" + DATA_ENV + r"\}|" + DATA_ENV + r"(?![A-Za-z0-9_]))")


def expand_path(path: str) -> str:
    """Expand ``$VARS``, then ``~`` (a variable may hold ``~/...``); ``$LMCOT_DATA`` defaults to
    ``../shared/data`` (from the CWD) when it is not set."""
    if DATA_ENV not in os.environ:
        default = str(Path.cwd().parent / "shared" / "data")
        path = _DATA_VAR.sub(lambda _: default, path)
    return os.path.expanduser(os.path.expandvars(path))


def repository_configs(config_dir: str | None = None) -> Path:
    """``config_dir``, or the ``configs/`` folder of the clone this package runs from (an
    editable install: ``src/lm_guided_cot`` two levels below the clone's root)."""
    return Path(config_dir) if config_dir else Path(__file__).resolve().parents[2] / "configs"
