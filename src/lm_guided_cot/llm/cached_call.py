"""One request through the shared reply cache: wait while another batch of this process sends
the same key, take the cached reply or claim the key (so no other process sends it too),
send it, and commit the reply at once (a killed batch keeps what it got) or free the key."""

from __future__ import annotations

import asyncio

from lm_guided_cot.llm.batching import Batch, Job
from lm_guided_cot.llm.cache import CachedReply, ReplyCache
from lm_guided_cot.llm.calls import LLMResult
from lm_guided_cot.llm.endpoint import Budget
from lm_guided_cot.llm.retries import send_with_retries
from lm_guided_cot.llm.transport import Target

_CLAIM_POLL_SECONDS = 0.05


async def answer_through_cache(
    target: Target,
    cache: ReplyCache | None,
    lease: float,
    batch: Batch,
    job: Job,
    budget: Budget,
) -> None:
    """Put ``job``'s result into ``batch.results`` and count it; ``lease``: how long a claim
    holds before another process may take the key over."""
    key = job.key
    while True:
        if cache is not None:
            while (other := budget.in_flight.get(key)) is not None:
                await other.wait()  # then the cache has its reply, or the key is free again
        result = await _from_cache_or_claim(cache, lease, key, batch)
        if result is not None or cache is None or key not in budget.in_flight:
            break  # (another batch of this process took the key while this one polled)
    if result is None:
        sent = None
        if cache is not None:
            sent = budget.in_flight[key] = asyncio.Event()
        try:
            result = await send_with_retries(target, batch.usage, budget, job.messages, job.params)
            if result.ok and cache is not None:
                cache.put(
                    key,
                    target.config.model,
                    CachedReply(
                        result.text,
                        result.prompt_tokens,
                        result.completion_tokens,
                        result.cost,
                        result.top_logprobs,
                    ),
                )
        finally:
            if cache is not None and (result is None or not result.ok):
                cache.release(key)
            if sent is not None:
                del budget.in_flight[key]
                sent.set()
    usage = batch.usage
    if result.ok:
        usage.replies += 1
    else:
        usage.failures += 1
    batch.results[job.index] = result


async def _from_cache_or_claim(
    cache: ReplyCache | None, lease: float, key: str, batch: Batch
) -> LLMResult | None:
    """A cached result, or None once this process holds the claim to send the key."""
    if cache is None:
        return None
    while True:
        state = cache.claim(key, lease)
        if state == "claimed":
            return None
        if state == "done":
            reply = cache.get(key)
            if reply is not None:
                batch.usage.cache_hits += 1
                batch.usage.cached_tokens += reply.prompt_tokens + reply.completion_tokens
                return LLMResult(
                    reply.text,
                    cached=True,
                    prompt_tokens=reply.prompt_tokens,
                    completion_tokens=reply.completion_tokens,
                    cost=0.0,
                    top_logprobs=reply.top_logprobs,
                )
        await asyncio.sleep(_CLAIM_POLL_SECONDS)  # another process is sending it


__all__ = ["answer_through_cache"]
