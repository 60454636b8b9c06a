"""Configuration of the large-LM client: where the model is, how to sample, how hard to push it.

API keys are never part of a configuration: litellm reads each provider's own variable
(``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ...), and ``api_key_env`` names another variable
when a server wants one of its own. Configs are saved beside logs; keys must not be.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lm_guided_cot.errors import (
    ConfigurationError,
    check_at_least,
    check_between,
    check_positive,
    check_probability,
)

# Parameters that carry credentials: refused in ``extra_params`` so they never reach a saved
# config, a cache key or a log line.
_SECRET_PARAMS = frozenset(
    {
        "api_key",
        "azure_ad_token",
        "aws_secret_access_key",
        "aws_session_token",
        "vertex_credentials",
    }
)

DEFAULT_LOCAL_MODEL = "local/smollm2"


def check_no_credentials(where: str, params: dict[str, Any]) -> None:
    """Refuse request parameters that carry credentials (named by their keys alone: a value
    would be the secret itself)."""
    secret = _SECRET_PARAMS & set(params)
    if secret:
        raise ConfigurationError(
            f"{where} may not hold credentials ({sorted(secret)}): put the key in an "
            "environment variable (the provider's own, or one named by api_key_env)"
        )


@dataclass
class SamplingParams:
    """How the large LM samples.

    Args:
        temperature: 0 for greedy decoding (at least 0).
        top_p: nucleus sampling mass in (0, 1]; ``None`` leaves the provider's default.
        max_tokens: most tokens the large LM may write per call (at least 1).
        stop: strings that end the completion (none of them empty).
        seed: a seed for providers that take one (``None``: none sent).
    """

    temperature: float = 0.0
    top_p: float | None = None
    max_tokens: int = 256
    stop: list[str] | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        # Named as written under a config's `sampling:` (llm, teacher, reader, judge).
        check_at_least("sampling.temperature", self.temperature, 0)
        check_probability("sampling.top_p", self.top_p, open_low=True)
        check_at_least("sampling.max_tokens", self.max_tokens, 1)
        if self.stop is not None and any(s == "" for s in self.stop):
            raise ConfigurationError(
                f"sampling.stop must not hold an empty string, got {self.stop!r}"
            )

    def to_params(self) -> dict[str, Any]:
        """The litellm keyword arguments, leaving out those not set."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class ServerConfig:
    """A llama.cpp server the run starts for a GGUF model, waits for, and stops when it ends.

    Args:
        model: the GGUF model: a registry name (``lmcot models list``; fetched and verified
            on first use), ``smollm2`` (the installed wheel's file) or a path to a ``.gguf`` file.
        backend: ``llama-server`` (llama.cpp's native server: parallel slots, continuous
            batching), ``llama-cpp-python`` (its Python server, one request at a time) or
            ``auto`` (the native one when installed).
        port: port on 127.0.0.1 (0 to 65535); ``None`` or 0 picks a free one. Give one to share a server between
            processes (DDP ranks): a healthy server of the same model already there is used.
        threads: CPU threads for the server, at least 1 (``None``: all cores).
        ctx_size: context length, in tokens, that each slot holds (at least 1).
        parallel: requests decoded at once (slots; native backend only; at least 1). Each slot
            keeps the KV cache of its last prompt, so requests that share a prefix reuse it.
        startup_timeout: seconds to wait for the server to load the model and answer (> 0).
        log_dir: folder of the server's log file (``None``: beside ``cache_path``).
        extra_args: further command-line arguments for the server.
        fallback: when no server is installed: ``error``, or ``in-process`` (run the same GGUF
            file in this process through the ``local/`` provider, slower; said in one line).
    """

    model: str = "smollm2"
    backend: Literal["auto", "llama-server", "llama-cpp-python"] = "auto"
    port: int | None = None
    threads: int | None = None
    ctx_size: int = 4096
    parallel: int = 1
    startup_timeout: float = 300.0
    log_dir: str | None = None
    extra_args: list[str] = field(default_factory=list)
    fallback: Literal["error", "in-process"] = "error"

    def __post_init__(self) -> None:
        for name in ("ctx_size", "parallel", "threads"):
            check_at_least(f"ServerConfig.{name}", getattr(self, name), 1)
        check_between("ServerConfig.port", self.port, 0, 65535)  # 0: the OS picks one
        check_positive("ServerConfig.startup_timeout", self.startup_timeout)

    @property
    def alias(self) -> str:
        """The name the server answers to, and the one cache keys carry."""
        name = Path(self.model).name
        return name[: -len(".gguf")] if name.endswith(".gguf") else name


@dataclass
class LLMConfig:
    """Where the large LM is and how the client talks to it.

    Args:
        model: any litellm model string (``openai/gpt-4o-mini``, ``anthropic/...``,
            ``hosted_vllm/<name>``, ``ollama/...``) or ``local/<hub id | folder |
            folder#file.gguf | smollm2>`` for a transformers model run in this process.
            ``None``: ``local/smollm2``, or with ``server`` set ``openai/<its model name>`` (as
            is ``local/smollm2``, the default, next to a ``server``).
        api_base: the server's base URL (a vLLM or other OpenAI-compatible server).
        api_key_env: name of an environment variable holding the key, for servers whose key
            is not in the provider's usual variable. The key itself never goes in a config.
        sampling: default sampling parameters (each role may override them).
        extra_params: further litellm keyword arguments (e.g. ``{"reasoning_effort": "low"}``);
            credentials are refused here.
        timeout: seconds one call may take before it counts as failed and is retried (> 0).
            For ``local/`` models the wait behind other batches counts too: on a CPU, allow
            minutes.
        max_concurrency: most calls in flight at once (per process; at least 1).
        requests_per_minute: client-side request rate limit (> 0); ``None`` for none.
        tokens_per_minute: client-side token rate limit (prompt estimate + max_tokens; > 0);
            ``None`` for none.
        max_retries: retries of a call after a 429, a 5xx, a timeout, a dropped connection,
            an unreadable or an empty reply; then the call is a counted failure (0: no retry).
        backoff_base: first retry delay in seconds (at least 0); doubles each retry, with
            full jitter.
        backoff_max: longest retry delay in seconds, at least ``backoff_base`` (a longer
            Retry-After still wins).
        retry_on_empty: treat an empty reply as a transient fault and retry it; ``None``
            (default) does so for servers but not for ``local/`` models, whose greedy
            replies would come back empty again.
        cache_path: SQLite file of cached replies, shared safely by several processes;
            ``None`` to disable caching.
        server: start a llama.cpp server for a GGUF model and talk to it (``model`` then
            defaults to ``openai/<server model name>``, ``api_base`` is the server's).
        group_prefixes: send the requests of a batch that share most of their prompt one after
            another (distinct prompts still go concurrently; with ``server``, at most
            ``server.parallel`` of them, one per slot), so a server that keeps the KV cache of
            its last prompt (llama.cpp) evaluates the shared part once. ``None``: on when
            ``server`` is set.
        max_failure_rate: the fraction of failed calls (after all retries) at which a run
            stops with exit 1 rather than go on with fallbacks: ``lmcot evaluate`` (per row),
            ``lmcot rationales`` (per split) and stage 2's rewards (per step). 1.0 (default):
            only when every call failed; 0.1: when a tenth did; 0: at the first failure.
    """

    model: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    extra_params: dict[str, Any] = field(default_factory=dict)
    timeout: float = 120.0
    max_concurrency: int = 16
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_retries: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    retry_on_empty: bool | None = None
    cache_path: str | None = ".lmcot_cache/llm.sqlite"
    server: ServerConfig | None = None
    group_prefixes: bool | None = None
    max_failure_rate: float = 1.0

    def __post_init__(self) -> None:
        # A config parser fills a nested LLMConfig's defaults in (model: local/smollm2) before
        # the YAML adds server:, so that default next to a server means the server's model.
        if self.model is None or (self.server is not None and self.model == DEFAULT_LOCAL_MODEL):
            self.model = (
                DEFAULT_LOCAL_MODEL if self.server is None else f"openai/{self.server.alias}"
            )
        if self.server is not None:
            if self.model.startswith("local/"):
                raise ConfigurationError(
                    f"LLMConfig.model is {self.model!r} but server: is set: the server is reached "
                    f"over HTTP, so use openai/{self.server.alias} (or leave model out)"
                )
            if self.api_base is not None:
                raise ConfigurationError(
                    "LLMConfig.api_base and server: are both set: the managed server has its own "
                    "address; drop one of them"
                )
        check_no_credentials("LLMConfig.extra_params", self.extra_params)
        check_positive("LLMConfig.timeout", self.timeout)
        check_at_least("LLMConfig.max_concurrency", self.max_concurrency, 1)
        check_positive("LLMConfig.requests_per_minute", self.requests_per_minute)
        check_positive("LLMConfig.tokens_per_minute", self.tokens_per_minute)
        check_at_least("LLMConfig.max_retries", self.max_retries, 0)
        check_probability("LLMConfig.max_failure_rate", self.max_failure_rate)
        check_at_least("LLMConfig.backoff_base", self.backoff_base, 0)
        check_at_least("LLMConfig.backoff_max", self.backoff_max, 0)
        if self.backoff_max < self.backoff_base:
            raise ConfigurationError(
                f"LLMConfig.backoff_max must be at least LLMConfig.backoff_base "
                f"({self.backoff_base}), got {self.backoff_max}"
            )
