"""Sending one request within the endpoint's budget: a concurrency slot, the client-side rate
limits, a hard timeout, and retries of 429s, 5xx, timeouts, dropped connections, unreadable
and empty replies with exponential backoff and jitter that honours Retry-After."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from lm_guided_cot.llm.calls import LLMResult
from lm_guided_cot.llm.endpoint import Budget
from lm_guided_cot.llm.errors import LLMConfigurationError
from lm_guided_cot.llm.limits import backoff_delay, retry_after_seconds
from lm_guided_cot.llm.transport import Target, fatal_errors, permanent_errors
from lm_guided_cot.llm.usage import RoleUsage

log = logging.getLogger(__name__)
T = TypeVar("T")


async def send_with_retries(
    target: Target, usage: RoleUsage, budget: Budget, messages, params: dict
) -> LLMResult:
    """The reply, or a failed result once the retries are spent or a retry cannot help; raises
    ``LLMConfigurationError`` for errors that would fail every call alike."""
    cfg = target.config
    request_limit, token_limit = budget.request_limit, budget.token_limit
    reserved = _estimate_tokens(messages) + int(params.get("max_tokens", 0))
    last_error = "no attempt made"
    for attempt in range(cfg.max_retries + 1):
        if attempt:
            usage.retries += 1
        async with budget.semaphore:
            if request_limit:
                await request_limit.acquire(1)
            if token_limit:
                await token_limit.acquire(reserved)
            usage.requests += 1
            retry_after = None
            try:
                # A hard stop in case a provider ignores its own timeout.
                response = await _with_timeout(
                    target.acompletion(messages, params), cfg.timeout * 1.5
                )
                result = target.read(response)
                if token_limit:
                    token_limit.refund(
                        max(reserved - result.prompt_tokens - result.completion_tokens, 0)
                    )
                result.attempts = attempt + 1
                usage.prompt_tokens += result.prompt_tokens
                usage.completion_tokens += result.completion_tokens
                usage.cost += result.cost
                return result
            except fatal_errors() as err:
                raise LLMConfigurationError(target.describe(err)) from None
            except permanent_errors() as err:
                return LLMResult(None, error=target.describe(err), attempts=attempt + 1)
            except (Exception, asyncio.TimeoutError) as err:  # transient: retry
                last_error = target.describe(err)
                retry_after = retry_after_seconds(err)
                log.debug("large-LM call failed (attempt %d): %s", attempt + 1, last_error)
        if attempt < cfg.max_retries:
            await asyncio.sleep(
                backoff_delay(attempt, cfg.backoff_base, cfg.backoff_max, retry_after)
            )
    log.warning("large-LM call failed after %d attempts: %s", cfg.max_retries + 1, last_error)
    return LLMResult(None, error=last_error, attempts=cfg.max_retries + 1)


async def _with_timeout(coro: Coroutine[Any, Any, T], seconds: float) -> T:
    if sys.version_info >= (3, 11):  # asyncio.timeout needs no extra task per call
        async with asyncio.timeout(seconds):
            return await coro
    return await asyncio.wait_for(coro, seconds)


def _estimate_tokens(messages: list[dict[str, str]]) -> int:
    """A cheap upper-ish estimate (4 characters a token) for the token-rate limiter."""
    return sum(len(m.get("content") or "") for m in messages) // 4 + 4 * len(messages)


__all__ = ["send_with_retries"]
