"""The transport to the large LM: one client per endpoint, its cache, limits, providers and
reply parsers. It knows nothing of QA records; the roles (``lm_guided_cot.roles``) do."""

from lm_guided_cot.llm.client import (
    LLMClient,
    LLMConfigurationError,
    LLMRequest,
    LLMResult,
    RoleUsage,
)
from lm_guided_cot.llm.config import LLMConfig, SamplingParams
from lm_guided_cot.llm.registry import client_for
from lm_guided_cot.llm.usage import flat_usage

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
