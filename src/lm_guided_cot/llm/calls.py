"""What one call to the large LM is (``LLMRequest``) and what comes back (``LLMResult``), read
from litellm's reply objects."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lm_guided_cot.llm.errors import EmptyReplyError


@dataclass(frozen=True)
class LLMRequest:
    """One call: chat messages and, for the k-th sample of the same prompt, its index.

    The index is part of the cache key, so k samples of one prompt are k replies; when the
    sampling has a ``seed``, sample ``k`` is sent with ``seed + k`` (a provider that honours
    the seed would otherwise return one reply k times).
    """

    messages: tuple[dict[str, str], ...] | list[dict[str, str]]
    sample_index: int = 0


TopLogprobs = tuple[tuple[str, float], ...]
# the most alternatives a request may ask for: OpenAI's limit; llama.cpp takes more
MAX_TOP_LOGPROBS = 20


@dataclass
class LLMResult:
    """A reply (``text``) or a failure (``error``), with where it came from and what it cost.

    ``top_logprobs``: the first generated token's most likely alternatives as (token,
    log-probability), when the request asked for ``logprobs``/``top_logprobs`` and the
    server returned them (``None`` otherwise); kept in the cache with the text.
    """

    text: str | None
    error: str | None = None
    cached: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    attempts: int = 0
    top_logprobs: TopLogprobs | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def read_response(response: Any, retry_on_empty: bool) -> LLMResult:
    """The result in litellm's chat-completion ``response``; raises ``ValueError`` for a reply
    of the wrong shape and ``EmptyReplyError`` for an empty one that ``retry_on_empty`` asks
    to send again."""
    try:
        choice = response.choices[0]
        text = choice.message.content
    except (AttributeError, IndexError, KeyError, TypeError) as err:
        raise ValueError(f"unreadable reply: {err}") from None
    alternatives = first_token_alternatives(getattr(choice, "logprobs", None))
    # A first token's probabilities are the reply a yes/no question asks for, whatever
    # text (a space, a newline) that token decodes to.
    if text is None and (not retry_on_empty or alternatives):
        text = ""
    if text is None or (retry_on_empty and not text.strip() and not alternatives):
        raise EmptyReplyError("the reply has no text")
    usage = getattr(response, "usage", None)
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
    return LLMResult(
        text,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        cost=float(cost or 0.0),
        top_logprobs=alternatives,
    )


def _field(value: Any, name: str) -> Any:
    """An attribute of litellm's reply objects, or a key where a provider left a dict."""
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def first_token_alternatives(logprobs: Any) -> TopLogprobs | None:
    """The first generated token's ``top_logprobs`` as (token, log-probability) pairs, from a
    chat choice's ``logprobs`` (OpenAI's layout: ``content[0].top_logprobs``); ``None`` when
    the reply has none (not asked for, or a server that does not return them)."""
    content = _field(logprobs, "content") if logprobs is not None else None
    if not content:
        return None
    pairs = []
    for alternative in _field(content[0], "top_logprobs") or ():
        token, logprob = _field(alternative, "token"), _field(alternative, "logprob")
        if isinstance(token, str) and isinstance(logprob, (int, float)) and not math.isnan(logprob):
            pairs.append((token, float(logprob)))
    return tuple(pairs) or None


__all__ = [
    "MAX_TOP_LOGPROBS",
    "LLMRequest",
    "LLMResult",
    "TopLogprobs",
    "first_token_alternatives",
    "read_response",
]
