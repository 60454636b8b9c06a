"""Keeping API keys out of everything the project writes or prints."""

from __future__ import annotations

import os
import re
from typing import TextIO

# WANDB_API_KEY, MLFLOW_TRACKING_TOKEN and _PASSWORD, AZURE_STORAGE_ACCESS_KEY and _CONNECTION_STRING
_KEY_VARIABLE = re.compile(
    r"(API_KEY|_TOKEN|_SECRET|SECRET_ACCESS_KEY|_ACCESS_KEY|_PASSWORD|_CONNECTION_STRING)$",
    re.IGNORECASE,
)
_MIN_SECRET_LENGTH = 8
# Variables named by an ``api_key_env`` of this process: their values are masked too.
_REGISTERED: set[str] = set()

# Text that carries a credential whatever its value: a key-named field of a config echo
# (``'api_key': 'sk-...'``, ``api_key: ...``, ``api_key=...``), a bearer header, and the
# shapes of the common providers' keys. Config parsers print refused values back; these
# catch a key that is in no environment variable.
_SECRET_FIELD = re.compile(
    r"""(?ix)
    ( ["']?\b(?:api_key|apikey|api_token|access_token|auth_token|secret|password|
              azure_ad_token|aws_secret_access_key|aws_session_token|vertex_credentials)\b["']?
      \s*[:=]\s*["']? )
    ( [^\s"',}\]\)]+ )
    """
)
_SECRET_SHAPES = re.compile(
    r"\b(?:Bearer\s+[A-Za-z0-9._~+/=-]{8,}|sk-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{16,}"
    r"|gsk_[A-Za-z0-9]{16,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{30,})"
)
# The user-info of a URL (``http://user:PASSWORD@host``, ``https://TOKEN@host``): the whole
# of it goes, since a lone user name may be a token.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@\"'<>]+@")


def register_secret_variable(name: str) -> None:
    """Mask the value of environment variable ``name`` from now on (an ``api_key_env``)."""
    if name:
        _REGISTERED.add(name)


def secret_values(extra_variables: tuple[str, ...] = ()) -> list[str]:
    """Values of environment variables that look like credentials (plus the named ones)."""
    names = {n for n in os.environ if _KEY_VARIABLE.search(n)}
    names |= {n for n in (*extra_variables, *_REGISTERED) if n}
    values = {os.environ.get(n, "") for n in names}
    return sorted((v for v in values if len(v) >= _MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, extra_variables: tuple[str, ...] = ()) -> str:
    """``text`` with every credential replaced by ``***``: the values of key variables of the
    environment, key-named fields, key-shaped strings and the user-info of URLs.

    Error messages from providers and servers may echo headers; everything the client logs
    or reports about a failure passes through here first, and so does the CLI's output.
    """
    for value in secret_values(extra_variables):
        text = text.replace(value, "***")
    text = _URL_USERINFO.sub(r"\1***@", text)
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + "***", text)
    return _SECRET_SHAPES.sub("***", text)


class MaskedStream:
    """A text stream that writes through ``redact`` to another (``sys.stdout``, ``sys.stderr``).

    Everything else (``isatty``, ``fileno``, ``encoding``) is the wrapped stream's, so progress
    bars and colour detection behave as before.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)
