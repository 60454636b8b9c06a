"""The large-LM client's own errors, and a failed call's reason as one redacted line."""

from __future__ import annotations

from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.llm.secrets import redact


class LLMConfigurationError(ConfigurationError, RuntimeError):
    """The large LM refused the client itself (credentials, model name): no call can succeed."""


class EmptyReplyError(RuntimeError):
    """The server answered with no text."""


def describe_error(err: BaseException, api_base: str | None, secret_vars: tuple[str, ...]) -> str:
    """``err`` as the reason a result carries: where the call went, the error's type and its
    message without litellm's traceback, keys redacted, at most 500 characters."""
    message = _without_traceback(str(err) or type(err).__name__)
    # Where it went first: litellm's "Connection error." names no address, and the cut
    # below keeps the head. Redact before cutting, so no partial key survives at the cut.
    where = f"{api_base}: " if api_base else ""
    return redact(f"{where}{type(err).__name__}: {message}", secret_vars)[:500]


_TRACEBACK = "Traceback (most recent call last):"


def _without_traceback(message: str) -> str:
    """litellm's message with the traceback it sometimes carries (a reply of the wrong shape)
    cut down to the error it ends in."""
    head, found, tail = message.partition(_TRACEBACK)
    if not found:
        return message
    lines = tail.split("\n\n", 1)[0].splitlines()  # then come the arguments, reply included
    last = next((line.strip() for line in reversed(lines) if line[:1] not in (" ", "")), "")
    hint = (
        "; the server's reply is not a chat completion: does api_base lead to an "
        "OpenAI-compatible /chat/completions?"
        if "Invalid response object" in head
        else ""
    )
    return f"{head.strip()} ({last}){hint}"


__all__ = ["EmptyReplyError", "LLMConfigurationError", "describe_error"]
