"""Paths in configs: ``~`` and environment variables expanded; ``$LMCOT_DATA`` has a default."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "LMCOT_DATA"


def expand_path(path: str) -> str:
    """Expand ``~`` and ``$VARS``; ``$LMCOT_DATA`` defaults to ``../shared/data`` (from the CWD)."""
    if DATA_ENV not in os.environ:
        default = str(Path.cwd().parent / "shared" / "data")
        path = path.replace("${" + DATA_ENV + "}", default).replace("$" + DATA_ENV, default)
    return os.path.expanduser(os.path.expandvars(path))
