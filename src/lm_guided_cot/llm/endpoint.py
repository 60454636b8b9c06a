"""What the clients of one endpoint share: the cache, managed server, usage counters and, per
event loop, the concurrency budget and rate limits; and the in-process fallback that picks
the endpoint when no llama.cpp server is installed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lm_guided_cot.llm.cache import ReplyCache
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.llm.errors import LLMConfigurationError
from lm_guided_cot.llm.limits import RateLimiter
from lm_guided_cot.llm.loop import LoopThread, acquire_loop, current_loop, release_loop
from lm_guided_cot.llm.secrets import register_secret_variable
from lm_guided_cot.llm.transport import load_litellm
from lm_guided_cot.llm.usage import RoleUsage


@dataclass
class Budget:
    """Concurrency and rate limits of an endpoint on one event loop (asyncio primitives belong
    to the loop they are used on)."""

    loop: asyncio.AbstractEventLoop
    semaphore: asyncio.Semaphore
    request_limit: RateLimiter | None
    token_limit: RateLimiter | None
    server_slots: asyncio.Semaphore | None
    # keys being sent by a batch of this endpoint: another batch waits for them instead of
    # sending them too (the cache's claims only keep other processes out)
    in_flight: dict[str, asyncio.Event] = field(default_factory=dict)


def _check_key_variable(name: str | None) -> None:
    """Stop before the first request when ``api_key_env`` names no key: the provider's 401
    would not name the variable."""
    if not name:
        return
    register_secret_variable(name)
    value = os.environ.get(name)
    if value is None or not value.strip():
        state = "not set" if value is None else "empty"
        raise LLMConfigurationError(
            f"LLMConfig.api_key_env names the environment variable {name}, which is {state}: "
            f"export {name}=<the key> (or drop api_key_env to use the provider's own variable)"
        )


class Endpoint:
    """The cache, managed server, usage counters, concurrency budget and rate limits that every
    client of one endpoint shares."""

    def __init__(self, config: LLMConfig, requested: LLMConfig | None = None) -> None:
        self.config = config
        self.requested = requested or config  # before the in-process fallback, for comparisons
        _check_key_variable(config.api_key_env)
        load_litellm()  # here, not inside the first call, whose timeout would include the import
        if config.model.startswith("local/"):
            from lm_guided_cot.llm.local_provider import register_local_provider
            from lm_guided_cot.model_specs import require_local_model

            require_local_model(config.model)  # not in the first call, retried as a failure
            register_local_provider()
        self.cache = ReplyCache(config.cache_path) if config.cache_path else None
        self.server = None
        self.api_base = config.api_base
        if config.server is not None:
            from lm_guided_cot.llm.server import ensure_server

            cache_dir = Path(config.cache_path).parent if config.cache_path else None
            self.server = ensure_server(config.server, cache_dir or Path(".lmcot_cache"))
            self.api_base = self.server.api_base
        self.group_prefixes = (
            config.group_prefixes
            if config.group_prefixes is not None
            else config.server is not None
        )
        self.usage: dict[str, RoleUsage] = defaultdict(RoleUsage)
        self.retry_on_empty = (
            config.retry_on_empty
            if config.retry_on_empty is not None
            # greedy local models and managed servers would only return the same empty reply
            else not config.model.startswith("local/") and config.server is None
        )
        self.shared = False  # the registry's: closed with the last of its clients
        self.views = 0
        self.on_close: Callable[[Endpoint], None] | None = None
        self._lock = threading.Lock()
        self._held: LoopThread | None = None
        self._budget: Budget | None = None

    def hold_loop(self) -> None:
        """Keep the process's loop running while this endpoint is open."""
        with self._lock:
            if self._held is None:
                self._held = acquire_loop()

    def budget(self) -> Budget:
        """The budget on the running loop, made on first use there."""
        loop = asyncio.get_running_loop()
        budget = self._budget
        if budget is None or budget.loop is not loop:
            cfg = self.config
            managed = self.server is not None and self.group_prefixes
            budget = Budget(
                loop,
                asyncio.Semaphore(cfg.max_concurrency),
                RateLimiter(cfg.requests_per_minute) if cfg.requests_per_minute else None,
                RateLimiter(cfg.tokens_per_minute) if cfg.tokens_per_minute else None,
                # one prompt per server slot: more groups in flight than slots would evict a
                # group's prefix before its next request comes
                asyncio.Semaphore(cfg.server.parallel) if managed else None,
            )
            self._budget = budget
            held = current_loop()
            if held is not None and held.loop is loop:
                self.hold_loop()
        return budget

    def close(self) -> None:
        """Close the cache connections and let go of the process's loop."""
        with self._lock:
            held, self._held = self._held, None
            self._budget = None
        if self.cache is not None:
            if held is not None and threading.current_thread() is not held.thread:
                # the loop thread has a connection of its own (they are per thread)
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(_call(self.cache.close), held.loop).result(5)
            self.cache.close()
        if held is not None:
            release_loop(held)
        if self.on_close is not None:
            self.on_close(self)


async def _call(function: Callable[[], Any]) -> Any:
    return function()


_warned_fallback = False


def without_missing_server(config: LLMConfig) -> LLMConfig:
    """The config itself, or (``server.fallback: in-process`` and no server installed) the same
    GGUF file through the in-process provider."""
    if config.server is None or config.server.fallback != "in-process":
        return config
    from lm_guided_cot.llm.server import ServerError, available_backend

    try:
        available_backend(config.server)
        return config
    except ServerError as err:
        global _warned_fallback
        if not _warned_fallback:
            _warned_fallback = True
            print(
                f"lmcot: {err}; running {config.server.model} in this process instead (slower)",
                file=sys.stderr,
            )
        return dataclasses.replace(
            config,
            model=f"local/{config.server.model}",
            server=None,
            timeout=max(config.timeout, 3600),
        )


__all__ = ["Budget", "Endpoint", "without_missing_server"]
