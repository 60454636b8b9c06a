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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.llm.cache import CachedReply, ReplyCache, cache_key
from lm_guided_cot.llm.config import LLMConfig, SamplingParams, check_no_credentials
from lm_guided_cot.llm.limits import RateLimiter, backoff_delay, retry_after_seconds
from lm_guided_cot.llm.loop import LoopThread, acquire_loop, current_loop, release_loop, run_sync
from lm_guided_cot.llm.progress import BatchProgress
from lm_guided_cot.llm.secrets import redact, register_secret_variable
from lm_guided_cot.llm.usage import RoleUsage, flat_usage

log = logging.getLogger(__name__)
T = TypeVar("T")


def _litellm():
    """litellm, imported on first use: it costs ~200 MB and ~5 s, which runs that never ask a
    large LM (scripted rewards, benchmarks, export) should not pay."""
    import litellm

    litellm.suppress_debug_info = True  # no "Give Feedback" banners on stdout for failed calls
    return litellm


def _fatal_errors() -> tuple[type[Exception], ...]:
    """Errors that would fail every call alike: stop the run instead of filling it with fallbacks."""
    lib = _litellm()
    return (lib.AuthenticationError, lib.NotFoundError, lib.PermissionDeniedError)


def _permanent_errors() -> tuple[type[Exception], ...]:
    """Errors that a retry cannot fix either, but that concern one request only."""
    lib = _litellm()
    return (lib.BadRequestError, lib.ContextWindowExceededError, lib.UnprocessableEntityError)


_CLAIM_POLL_SECONDS = 0.05
_OPENAI_COMPATIBLE = ("openai/", "hosted_vllm/", "text-completion-openai/")


class LLMConfigurationError(ConfigurationError, RuntimeError):
    """The large LM refused the client itself (credentials, model name): no call can succeed."""


class EmptyReplyError(RuntimeError):
    """The server answered with no text."""


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


@dataclass
class _Batch:
    role: str
    params: dict[str, Any]
    usage: RoleUsage
    results: list[LLMResult | None] = field(default_factory=list)


# ---- what the clients of one endpoint share -----------------------------------------------------


@dataclass
class _Budget:
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


class _Endpoint:
    """The cache, managed server, usage counters, concurrency budget and rate limits that every
    client of one endpoint shares."""

    def __init__(self, config: LLMConfig, requested: LLMConfig | None = None) -> None:
        self.config = config
        self.requested = requested or config  # before the in-process fallback, for comparisons
        _check_key_variable(config.api_key_env)
        _litellm()  # here, not inside the first call, whose timeout would include the import
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
        self.on_close: Callable[[_Endpoint], None] | None = None
        self._lock = threading.Lock()
        self._held: LoopThread | None = None
        self._budget: _Budget | None = None

    def hold_loop(self) -> None:
        """Keep the process's loop running while this endpoint is open."""
        with self._lock:
            if self._held is None:
                self._held = acquire_loop()

    def budget(self) -> _Budget:
        """The budget on the running loop, made on first use there."""
        loop = asyncio.get_running_loop()
        budget = self._budget
        if budget is None or budget.loop is not loop:
            cfg = self.config
            managed = self.server is not None and self.group_prefixes
            budget = _Budget(
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


class LLMClient:
    """Batched, cached, rate-limited, retrying access to one large LM (see the module docstring).

    ``LLMClient(config)`` owns its endpoint (cache, budget, limits); the clients that
    ``lm_guided_cot.llm.registry.client_for`` returns share one per endpoint, each with its own
    sampling and ``extra_params`` defaults.
    """

    def __init__(self, config: LLMConfig | None = None, *, _endpoint: _Endpoint | None = None):
        requested = config or LLMConfig()
        self.config = _without_missing_server(requested)
        self._endpoint = _endpoint or _Endpoint(self.config, requested)
        self._endpoint.views += 1
        self._closed = False
        endpoint = self._endpoint
        self.cache = endpoint.cache
        self.server = endpoint.server
        self._api_base = endpoint.api_base
        self._group_prefixes = endpoint.group_prefixes
        self._usage = endpoint.usage
        self._retry_on_empty = endpoint.retry_on_empty
        self._secret_vars = (self.config.api_key_env,) if self.config.api_key_env else ()
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
        batch = _Batch(role, params, self._usage[role], [None] * len(requests))
        budget = self._endpoint.budget()
        # The same request twice in one batch is sent once; the copies share its result.
        first_of: dict[str, int] = {}
        copies: list[tuple[int, int]] = []
        jobs = []
        for i, request in enumerate(requests):
            messages = [dict(m) for m in request.messages]
            key = cache_key(self.config.model, messages, params, request.sample_index)
            if key in first_of:
                copies.append((i, first_of[key]))
                continue
            first_of[key] = i
            jobs.append((i, key, messages, _sample_params(params, request.sample_index)))
        bar = self._progress_bar(len(requests))
        if bar is not None:
            bar.advance(len(copies))
        if self._group_prefixes:
            groups = prefix_groups([_prompt_text(job[2]) for job in jobs])
        else:
            groups = [[j] for j in range(len(jobs))]
        slots = budget.server_slots or contextlib.nullcontext()

        async def run_in_order(members: list[int]) -> None:
            # One after another: each reuses the server's KV cache of the shared prefix.
            async with slots:
                for j in members:
                    await self._one(batch, *jobs[j], budget)
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
        for i, original in copies:
            result = batch.results[original]
            batch.results[i] = dataclasses.replace(result, cached=result.ok)
            if result.ok:
                batch.usage.replies += 1
                batch.usage.cache_hits += 1
                batch.usage.cached_tokens += result.prompt_tokens + result.completion_tokens
            else:
                batch.usage.failures += 1
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

    # ---- one request -----------------------------------------------------------------------

    async def _one(
        self, batch: _Batch, index: int, key: str, messages, params: dict, budget: _Budget
    ) -> None:
        while True:
            if self.cache is not None:
                while (other := budget.in_flight.get(key)) is not None:
                    await other.wait()  # then the cache has its reply, or the key is free again
            result = await self._from_cache_or_claim(key, batch)
            if result is not None or self.cache is None or key not in budget.in_flight:
                break  # (another batch of this process took the key while this one polled)
        if result is None:
            sent = None
            if self.cache is not None:
                sent = budget.in_flight[key] = asyncio.Event()
            try:
                result = await self._send(batch, messages, params, budget)
                if result.ok and self.cache is not None:
                    self.cache.put(
                        key,
                        self.config.model,
                        CachedReply(
                            result.text,
                            result.prompt_tokens,
                            result.completion_tokens,
                            result.cost,
                            result.top_logprobs,
                        ),
                    )
            finally:
                if self.cache is not None and (result is None or not result.ok):
                    self.cache.release(key)
                if sent is not None:
                    del budget.in_flight[key]
                    sent.set()
        usage = batch.usage
        if result.ok:
            usage.replies += 1
        else:
            usage.failures += 1
        batch.results[index] = result

    async def _from_cache_or_claim(self, key: str, batch: _Batch) -> LLMResult | None:
        """A cached result, or None once this process holds the claim to send the key."""
        if self.cache is None:
            return None
        while True:
            state = self.cache.claim(key, self._lease)
            if state == "claimed":
                return None
            if state == "done":
                reply = self.cache.get(key)
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

    async def _send(self, batch: _Batch, messages, params: dict, budget: _Budget) -> LLMResult:
        cfg = self.config
        request_limit, token_limit = budget.request_limit, budget.token_limit
        reserved = _estimate_tokens(messages) + int(params.get("max_tokens", 0))
        last_error = "no attempt made"
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                batch.usage.retries += 1
            async with budget.semaphore:
                if request_limit:
                    await request_limit.acquire(1)
                if token_limit:
                    await token_limit.acquire(reserved)
                batch.usage.requests += 1
                retry_after = None
                try:
                    # A hard stop in case a provider ignores its own timeout.
                    response = await _with_timeout(self._call(messages, params), cfg.timeout * 1.5)
                    result = self._read_response(response)
                    if token_limit:
                        token_limit.refund(
                            max(reserved - result.prompt_tokens - result.completion_tokens, 0)
                        )
                    result.attempts = attempt + 1
                    batch.usage.prompt_tokens += result.prompt_tokens
                    batch.usage.completion_tokens += result.completion_tokens
                    batch.usage.cost += result.cost
                    return result
                except _fatal_errors() as err:
                    raise LLMConfigurationError(self._describe(err)) from None
                except _permanent_errors() as err:
                    return LLMResult(None, error=self._describe(err), attempts=attempt + 1)
                except (Exception, asyncio.TimeoutError) as err:  # transient: retry
                    last_error = self._describe(err)
                    retry_after = retry_after_seconds(err)
                    log.debug("large-LM call failed (attempt %d): %s", attempt + 1, last_error)
            if attempt < cfg.max_retries:
                await asyncio.sleep(
                    backoff_delay(attempt, cfg.backoff_base, cfg.backoff_max, retry_after)
                )
        log.warning("large-LM call failed after %d attempts: %s", cfg.max_retries + 1, last_error)
        return LLMResult(None, error=last_error, attempts=cfg.max_retries + 1)

    async def _call(self, messages: list[dict[str, str]], params: dict[str, Any]):
        cfg = self.config
        kwargs: dict[str, Any] = {
            "model": cfg.model,
            "messages": messages,
            "timeout": cfg.timeout,
            "num_retries": 0,  # retries are ours: jittered, Retry-After aware, counted
            **params,
        }
        if self._api_base:
            kwargs["api_base"] = self._api_base
        if cfg.api_key_env:
            kwargs["api_key"] = os.environ.get(cfg.api_key_env)
        elif (
            self._api_base
            and cfg.model.startswith(_OPENAI_COMPATIBLE)
            and not os.environ.get("OPENAI_API_KEY")
        ):
            # A vLLM or other self-hosted server takes any key, but the OpenAI SDK sends none
            # at all without one (vLLM's documented placeholder).
            kwargs["api_key"] = "EMPTY"
        return await _litellm().acompletion(**kwargs)

    def _read_response(self, response: Any) -> LLMResult:
        try:
            choice = response.choices[0]
            text = choice.message.content
        except (AttributeError, IndexError, KeyError, TypeError) as err:
            raise ValueError(f"unreadable reply: {err}") from None
        alternatives = first_token_alternatives(getattr(choice, "logprobs", None))
        # A first token's probabilities are the reply a yes/no question asks for, whatever
        # text (a space, a newline) that token decodes to.
        if text is None and (not self._retry_on_empty or alternatives):
            text = ""
        if text is None or (self._retry_on_empty and not text.strip() and not alternatives):
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

    def _describe(self, err: BaseException) -> str:
        message = _without_traceback(str(err) or type(err).__name__)
        # Where it went first: litellm's "Connection error." names no address, and the cut
        # below keeps the head. Redact before cutting, so no partial key survives at the cut.
        where = f"{self._api_base}: " if self._api_base else ""
        return redact(f"{where}{type(err).__name__}: {message}", self._secret_vars)[:500]


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


async def _with_timeout(coro: Coroutine[Any, Any, T], seconds: float) -> T:
    if sys.version_info >= (3, 11):  # asyncio.timeout needs no extra task per call
        async with asyncio.timeout(seconds):
            return await coro
    return await asyncio.wait_for(coro, seconds)


_warned_fallback = False


def _without_missing_server(config: LLMConfig) -> LLMConfig:
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


def _sample_params(params: dict[str, Any], sample_index: int) -> dict[str, Any]:
    """The parameters sample ``sample_index`` is sent with (see ``LLMRequest``): the cache key
    keeps the configured seed, the request gets its own."""
    if not sample_index or params.get("seed") is None:
        return params
    return {**params, "seed": int(params["seed"]) + sample_index}


def _prompt_text(messages: list[dict[str, str]]) -> str:
    return "\x1e".join(f"{m.get('role', '')}\x1f{m.get('content') or ''}" for m in messages)


def prefix_groups(texts: Sequence[str], min_shared: float = 0.5) -> list[list[int]]:
    """Indices grouped by shared prompt prefix, in order of first appearance.

    A prompt joins the first group whose first prompt shares at least ``min_shared`` of the
    shorter of the two (the k samples of a question, the with- and without-rationale calls
    of one question); prompts that share only a few-shot header stay apart.
    """
    groups: list[list[int]] = []
    # Bucketed by a head every two prompts of one group share: at least min_shared of the
    # shortest prompt. (The first 64 characters alone are one bucket when every prompt opens
    # with the same system message, and grouping 10k prompts became quadratic.)
    width = max(64, math.ceil(min_shared * min((len(t) for t in texts), default=0)))
    heads: dict[str, list[int]] = defaultdict(list)  # head -> group indices
    for i, text in enumerate(texts):
        for g in heads[text[:width]]:
            first = texts[groups[g][0]]
            shared = math.ceil(min_shared * min(len(first), len(text)))
            if first[:shared] == text[:shared]:
                groups[g].append(i)
                break
        else:
            heads[text[:width]].append(len(groups))
            groups.append([i])
    return groups


def _estimate_tokens(messages: list[dict[str, str]]) -> int:
    """A cheap upper-ish estimate (4 characters a token) for the token-rate limiter."""
    return sum(len(m.get("content") or "") for m in messages) // 4 + 4 * len(messages)


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
