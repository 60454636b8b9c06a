"""Client-side pacing: a token bucket for requests or tokens per minute, and retry delays."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from typing import Any


class RateLimiter:
    """A token bucket holding up to one minute's allowance, refilled continuously.

    ``acquire(n)`` waits until ``n`` units are available; a request larger than the whole
    allowance waits for a full bucket instead of forever.
    """

    def __init__(self, per_minute: float) -> None:
        if per_minute <= 0:
            raise ValueError(f"a rate limit must be positive, got {per_minute}")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    async def acquire(self, amount: float = 1.0) -> None:
        amount = min(amount, self.capacity)
        async with self._lock:  # first come, first served
            self._refill()
            while self.level < amount:
                await asyncio.sleep((amount - self.level) / self.rate)
                self._refill()
            self.level -= amount

    def refund(self, amount: float) -> None:
        """Give back an over-estimate (e.g. fewer tokens used than reserved)."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)


def retry_after_seconds(error: BaseException) -> float | None:
    """The server's Retry-After (or retry-after-ms) on an error's HTTP response, in seconds."""
    headers: Any = None
    response = getattr(error, "response", None)
    if response is not None:
        headers = getattr(response, "headers", None)
    if not headers:
        headers = getattr(error, "litellm_response_headers", None)
    if not headers:
        return None
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            return max(float(millis) / 1000.0, 0.0)
        value = headers.get("retry-after")
    except AttributeError:
        return None
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(when.timestamp() - time.time(), 0.0) if when else None


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter (AWS style); a server's Retry-After is a floor."""
    delay = random.uniform(0.0, min(cap, base * (2**attempt)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
