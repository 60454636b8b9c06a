"""The one door to the large LM: every teacher, reader and judge call goes through ``LLMClient``.

For each request of a batch the client
1. looks the reply up in the shared cache (model, messages, sampling and further request
   parameters such as ``logprobs`` or ``response_format``, sample index);
2. claims the key, so no other process sharing the cache sends it too (it waits instead; so
   does another batch of this process sending it);
3. waits for a concurrency slot and the client-side rate limits (of the endpoint: shared by
   every batch in flight and, through ``llm.registry``, by every role that names it);
4. calls ``litellm.acompletion`` with a per-call timeout, retrying 429s, 5xx, timeouts,
   dropped connections, unreadable and empty replies with exponential backoff and jitter
   that honours Retry-After;
5. commits the reply to the cache at once (a killed batch keeps what it got), and counts
   requests, retries, failures, tokens, cost and cache hits per role.

A request that still fails is returned as a failed ``LLMResult`` (counted, with a redacted
reason); it never raises, except for configuration errors (bad key, unknown model) that
would fail every call alike.

Where each part lives: ``batching`` (copies, prefix groups), ``cached_call`` (steps 1, 2, 5),
``retries`` (steps 3, 4), ``transport`` (litellm), ``endpoint`` (what clients share),
``calls`` (``LLMRequest``, ``LLMResult``), ``errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from lm_guided_cot.llm.batching import Batch, fill_copies, job_groups, plan_jobs, prefix_groups
from lm_guided_cot.llm.cached_call import answer_through_cache
from lm_guided_cot.llm.calls import LLMRequest, LLMResult, TopLogprobs, first_token_alternatives
from lm_guided_cot.llm.config import LLMConfig, SamplingParams, check_no_credentials
from lm_guided_cot.llm.endpoint import Endpoint, without_missing_server
from lm_guided_cot.llm.errors import EmptyReplyError, LLMConfigurationError
from lm_guided_cot.llm.loop import run_sync
from lm_guided_cot.llm.progress import BatchProgress
from lm_guided_cot.llm.secrets import redact
from lm_guided_cot.llm.transport import Target
from lm_guided_cot.llm.usage import RoleUsage, flat_usage

T = TypeVar("T")


class LLMClient:
    """Batched, cached, rate-limited, retrying access to one large LM (see the module docstring).

    ``LLMClient(config)`` owns its endpoint (cache, budget, limits); the clients that
    ``lm_guided_cot.llm.registry.client_for`` returns share one per endpoint, each with its own
    sampling and ``extra_params`` defaults.
    """

    def __init__(self, config: LLMConfig | None = None, *, _endpoint: Endpoint | None = None):
        requested = config or LLMConfig()
        self.config = without_missing_server(requested)
        self._endpoint = _endpoint or Endpoint(self.config, requested)
        self._endpoint.views += 1
        self._closed = False
        endpoint = self._endpoint
        self.cache = endpoint.cache
        self.server = endpoint.server
        self._api_base = endpoint.api_base
        self._group_prefixes = endpoint.group_prefixes
        self._usage = endpoint.usage
        self._target = Target(self.config, endpoint.api_base, endpoint.retry_on_empty)
        self._secret_vars = self._target.secret_vars
        self._progress_description: str | None = None
        self._lease = self.config.timeout * (self.config.max_retries + 1) + self.config.backoff_max

    # ---- public API ----------------------------------------------------------------------

    def complete(
        self,
        requests: Sequence[LLMRequest],
        role: str = "default",
        sampling: SamplingParams | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> list[LLMResult]:
        """Answer a batch of requests (blocking); results come in request order.

        Runs on the process's large-LM event loop (a background thread that lives while a
        client is open), so HTTP connections and rate limits carry over from one batch to the
        next and batches of several clients can run at once.
        """
        return self.run(self.acomplete(requests, role, sampling, params))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine that awaits this client (``acomplete``) on the process's large-LM
        event loop, blocking until it is done."""
        self._endpoint.hold_loop()
        return run_sync(coroutine)

    @property
    def endpoint(self) -> object:
        """What this client shares with the other clients of its endpoint (cache, budget, rate
        limits, usage counters): the same object for all of them."""
        return self._endpoint

    @property
    def where(self) -> str:
        """The endpoint in words, for messages: the model, and the server it is asked at."""
        where = f"{self.config.model} at {self._api_base}" if self._api_base else self.config.model
        return redact(where, self._secret_vars)

    @contextlib.contextmanager
    def progress(self, description: str) -> Iterator[None]:
        """Show a progress bar for each batch sent inside this block.

        For code outside a Trainer loop (teacher rationales, ``lmcot evaluate``): Lightning's
        own progress bar owns the terminal inside ``fit``/``test``.
        """
        previous, self._progress_description = self._progress_description, description
        try:
            yield
        finally:
            self._progress_description = previous

    def _progress_bar(self, total: int) -> BatchProgress | None:
        if self._progress_description is None or total < 2:
            return None
        return BatchProgress(self._progress_description, total)

    def close(self) -> None:
        """Close the cache connection and let go of the event loop.

        A client of the registry closes the endpoint it shares with the last of its clients
        (the loop itself stops when no client of any endpoint holds it).
        """
        endpoint = self._endpoint
        if not endpoint.shared:
            endpoint.close()  # a client of its own: closing it again after more use is fine
            return
        if not self._closed:
            self._closed = True
            endpoint.views -= 1
            if endpoint.views <= 0:
                endpoint.close()

    async def acomplete(
        self,
        requests: Sequence[LLMRequest],
        role: str = "default",
        sampling: SamplingParams | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> list[LLMResult]:
        """Answer a batch of requests concurrently; results come in request order.

        ``params``: further request parameters for this batch (``logprobs``, ``top_logprobs``,
        ``response_format``, ...), over the sampling and ``extra_params``; like them, part of
        the cache key. Batches in flight at once (on one loop) share the endpoint's
        concurrency budget and rate limits.
        """
        check_no_credentials("the request parameters", dict(params or {}))
        params = {
            **(sampling or self.config.sampling).to_params(),
            **self.config.extra_params,
            **(params or {}),
        }
        batch = Batch(role, params, self._usage[role], [None] * len(requests))
        budget = self._endpoint.budget()
        jobs, copies = plan_jobs(requests, self.config.model, params)
        bar = self._progress_bar(len(requests))
        if bar is not None:
            bar.advance(len(copies))
        groups = job_groups(jobs, self._group_prefixes)
        slots = budget.server_slots or contextlib.nullcontext()

        async def run_in_order(members: list[int]) -> None:
            # One after another: each reuses the server's KV cache of the shared prefix.
            async with slots:
                for j in members:
                    await answer_through_cache(
                        self._target, self.cache, self._lease, batch, jobs[j], budget
                    )
                    if bar is not None:
                        bar.advance()

        tasks = [asyncio.ensure_future(run_in_order(members)) for members in groups]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # A configuration error (or a cancelled caller) ends the batch: stop the rest
            # instead of letting them go on sending on the long-lived loop.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            if bar is not None:
                bar.close()
        fill_copies(batch, copies)
        return list(batch.results)

    def role_usages(self) -> dict[str, RoleUsage]:
        """A snapshot of the counters per role (of every client of this endpoint)."""
        return {role: dataclasses.replace(u) for role, u in sorted(self._usage.items())}

    def usage(self, prefix: str = "llm") -> dict[str, float]:
        """Counters per role and in total, as flat ``{prefix}/{role}/{counter}`` numbers for loggers."""
        return flat_usage(self.role_usages(), prefix)

    def role_usage(self, role: str) -> RoleUsage:
        return self._usage[role]

    def count_parse_failure(self, role: str, n: int = 1) -> None:
        """Roles call this when a reply could not be parsed and a fallback was used."""
        self._usage[role].parse_failures += n


# Names that lived here before the client was split up, still importable from here.
__all__ = [
    "EmptyReplyError",
    "LLMClient",
    "LLMConfigurationError",
    "LLMRequest",
    "LLMResult",
    "RoleUsage",
    "TopLogprobs",
    "first_token_alternatives",
    "prefix_groups",
]
