"""The transport to the large LM: one client per endpoint, its cache, limits, providers and
reply parsers. It knows nothing of QA records; the roles (``lm_guided_cot.roles``) do.

The names below are imported on first use: ``lm_guided_cot.llm.secrets`` and ``.config`` must
stay cheap to import (the CLI's error boundary needs ``MaskedStream`` at start-up), and the
client pulls in asyncio, rich and, on its first call, litellm.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that defines it
_HOMES = {
    "LLMClient": "lm_guided_cot.llm.client",
    "LLMConfig": "lm_guided_cot.llm.config",
    "LLMConfigurationError": "lm_guided_cot.llm.errors",
    "LLMRequest": "lm_guided_cot.llm.calls",
    "LLMResult": "lm_guided_cot.llm.calls",
    "RoleUsage": "lm_guided_cot.llm.usage",
    "SamplingParams": "lm_guided_cot.llm.config",
    "client_for": "lm_guided_cot.llm.registry",
    "flat_usage": "lm_guided_cot.llm.usage",
}

if TYPE_CHECKING:
    from lm_guided_cot.llm.calls import LLMRequest, LLMResult
    from lm_guided_cot.llm.client import LLMClient
    from lm_guided_cot.llm.config import LLMConfig, SamplingParams
    from lm_guided_cot.llm.errors import LLMConfigurationError
    from lm_guided_cot.llm.registry import client_for
    from lm_guided_cot.llm.usage import RoleUsage, flat_usage


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once looked up, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "LLMClient",
    "LLMConfig",
    "LLMConfigurationError",
    "LLMRequest",
    "LLMResult",
    "RoleUsage",
    "SamplingParams",
    "client_for",
    "flat_usage",
]
