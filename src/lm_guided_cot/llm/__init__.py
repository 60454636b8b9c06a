"""Everything that talks to the large LM: one client, its cache, the local provider, the roles."""

from lm_guided_cot.llm.client import (
    LLMClient,
    LLMConfigurationError,
    LLMRequest,
    LLMResult,
    RoleUsage,
)
from lm_guided_cot.llm.config import LLMConfig, SamplingParams
from lm_guided_cot.llm.registry import client_for
from lm_guided_cot.llm.roles import (
    DEFAULT_ASPECTS,
    Aspect,
    Judge,
    JudgeConfig,
    Reader,
    ReaderConfig,
    Teacher,
    TeacherConfig,
)
from lm_guided_cot.llm.usage import flat_usage

__all__ = [
    "DEFAULT_ASPECTS",
    "Aspect",
    "Judge",
    "JudgeConfig",
    "LLMClient",
    "LLMConfig",
    "LLMConfigurationError",
    "LLMRequest",
    "LLMResult",
    "Reader",
    "ReaderConfig",
    "RoleUsage",
    "SamplingParams",
    "Teacher",
    "TeacherConfig",
    "client_for",
    "flat_usage",
]
