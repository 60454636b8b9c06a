"""One client per endpoint: every role and reward naming the same large LM shares its event
loop, concurrency budget, rate limits, cache and managed server.

``client_for(config)`` returns a client that carries that config's sampling and
``extra_params`` defaults on the endpoint's shared state. Two configs of one endpoint must
agree on everything that budget or transport depend on; otherwise one of them would silently
lose, so ``client_for`` refuses.
"""

from __future__ import annotations

import threading

from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.llm.client import LLMClient
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.llm.endpoint import Endpoint

# Fields that the clients of one endpoint share: they must agree.
SHARED_FIELDS = (
    "timeout",
    "max_concurrency",
    "requests_per_minute",
    "tokens_per_minute",
    "max_retries",
    "backoff_base",
    "backoff_max",
    "retry_on_empty",
    "cache_path",
    "group_prefixes",
)

_lock = threading.Lock()
_endpoints: dict[tuple, Endpoint] = {}


def endpoint_key(config: LLMConfig) -> tuple:
    """What names an endpoint: the model, where it is, its key's variable, its managed server."""
    # repr: ServerConfig holds a list, so it is not hashable itself
    return (config.model, config.api_base, config.api_key_env, repr(config.server))


def client_for(config: LLMConfig | None = None) -> LLMClient:
    """The shared client of ``config``'s endpoint, with ``config``'s sampling defaults."""
    config = config or LLMConfig()
    key = endpoint_key(config)
    with _lock:
        endpoint = _endpoints.get(key)
        if endpoint is None:
            client = LLMClient(config)
            endpoint = client._endpoint
            endpoint.shared = True
            endpoint.on_close = lambda closed: _forget(key, closed)
            _endpoints[key] = endpoint
            return client
        _check_shared_fields(endpoint.requested, config)
        return LLMClient(config, _endpoint=endpoint)


def _check_shared_fields(first: LLMConfig, other: LLMConfig) -> None:
    differ = [
        f"{name} ({getattr(first, name)!r} vs {getattr(other, name)!r})"
        for name in SHARED_FIELDS
        if getattr(first, name) != getattr(other, name)
    ]
    if differ:
        where = f"{first.model}" + (f" at {first.api_base}" if first.api_base else "")
        raise ConfigurationError(
            f"two large-LM configs of one endpoint ({where}) differ in {', '.join(differ)}: "
            "the roles of one endpoint share its client, budget and cache, so give them the "
            "same values"
        )


def _forget(key: tuple, endpoint: Endpoint) -> None:
    with _lock:
        if _endpoints.get(key) is endpoint:
            del _endpoints[key]


def close_all() -> None:
    """Close every shared client (tests between cases; the process at exit)."""
    with _lock:
        endpoints = list(_endpoints.values())
        _endpoints.clear()
    for endpoint in endpoints:
        endpoint.on_close = None
        endpoint.close()


__all__ = ["SHARED_FIELDS", "client_for", "close_all", "endpoint_key"]
