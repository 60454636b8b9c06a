"""The litellm side of a call: litellm imported on first use, its errors sorted by what a
retry can do about them, and ``Target``, which sends one request and reads its reply."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from lm_guided_cot.llm.calls import LLMResult, read_response
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.llm.errors import describe_error

_OPENAI_COMPATIBLE = ("openai/", "hosted_vllm/", "text-completion-openai/")


def load_litellm():
    """litellm, imported on first use: it costs ~200 MB and ~5 s, which runs that never ask a
    large LM (scripted rewards, benchmarks, export) should not pay."""
    import litellm

    litellm.suppress_debug_info = True  # no "Give Feedback" banners on stdout for failed calls
    return litellm


def fatal_errors() -> tuple[type[Exception], ...]:
    """Errors that would fail every call alike: stop the run instead of filling it with fallbacks."""
    lib = load_litellm()
    return (lib.AuthenticationError, lib.NotFoundError, lib.PermissionDeniedError)


def permanent_errors() -> tuple[type[Exception], ...]:
    """Errors that a retry cannot fix either, but that concern one request only."""
    lib = load_litellm()
    return (lib.BadRequestError, lib.ContextWindowExceededError, lib.UnprocessableEntityError)


@dataclass(frozen=True)
class Target:
    """Where one client's requests go and how: its config (model, key variable, timeout), the
    server's address, and whether an empty reply is sent again."""

    config: LLMConfig
    api_base: str | None
    retry_on_empty: bool

    @property
    def secret_vars(self) -> tuple[str, ...]:
        return (self.config.api_key_env,) if self.config.api_key_env else ()

    async def acompletion(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Any:
        """One ``litellm.acompletion`` call, without litellm's own retries."""
        cfg = self.config
        kwargs: dict[str, Any] = {
            "model": cfg.model,
            "messages": messages,
            "timeout": cfg.timeout,
            "num_retries": 0,  # retries are ours: jittered, Retry-After aware, counted
            **params,
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if cfg.api_key_env:
            kwargs["api_key"] = os.environ.get(cfg.api_key_env)
        elif (
            self.api_base
            and cfg.model.startswith(_OPENAI_COMPATIBLE)
            and not os.environ.get("OPENAI_API_KEY")
        ):
            # A vLLM or other self-hosted server takes any key, but the OpenAI SDK sends none
            # at all without one (vLLM's documented placeholder).
            kwargs["api_key"] = "EMPTY"
        return await load_litellm().acompletion(**kwargs)

    def read(self, response: Any) -> LLMResult:
        return read_response(response, self.retry_on_empty)

    def describe(self, err: BaseException) -> str:
        return describe_error(err, self.api_base, self.secret_vars)


__all__ = ["Target", "fatal_errors", "load_litellm", "permanent_errors"]
