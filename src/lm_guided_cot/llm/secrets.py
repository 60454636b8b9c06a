"""Keeping API keys out of everything the project writes."""

from __future__ import annotations

import os
import re

_KEY_VARIABLE = re.compile(r"(API_KEY|_TOKEN|_SECRET|SECRET_ACCESS_KEY)$", re.IGNORECASE)
_MIN_SECRET_LENGTH = 8


def secret_values(extra_variables: tuple[str, ...] = ()) -> list[str]:
    """Values of environment variables that look like credentials (plus the named ones)."""
    names = {n for n in os.environ if _KEY_VARIABLE.search(n)} | {n for n in extra_variables if n}
    values = {os.environ.get(n, "") for n in names}
    return sorted((v for v in values if len(v) >= _MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, extra_variables: tuple[str, ...] = ()) -> str:
    """``text`` with every credential from the environment replaced by ``***``.

    Error messages from providers and servers may echo headers; everything the client logs
    or reports about a failure passes through here first.
    """
    for value in secret_values(extra_variables):
        text = text.replace(value, "***")
    return text
