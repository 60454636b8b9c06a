"""The large LM's configuration refuses bad values when it is built, naming the option."""

from __future__ import annotations

import re

import pytest

from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.llm.config import LLMConfig, SamplingParams, ServerConfig


def _refused(build, kwargs, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        build(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": -1.0}, "sampling.temperature must be at least 0, got -1.0"),
        ({"temperature": float("nan")}, "sampling.temperature must be at least 0, got nan"),
        ({"top_p": 0.0}, "sampling.top_p must be in (0, 1], got 0.0"),
        ({"top_p": 1.5}, "sampling.top_p must be in (0, 1], got 1.5"),
        ({"max_tokens": 0}, "sampling.max_tokens must be at least 1, got 0"),
        ({"max_tokens": -3}, "sampling.max_tokens must be at least 1, got -3"),
        ({"stop": ["\n", ""]}, "sampling.stop must not hold an empty string"),
    ],
)
def test_sampling_refuses(kwargs, message):
    _refused(SamplingParams, kwargs, message)


@pytest.mark.parametrize(
    "kwargs",
    [{"temperature": 0.0}, {"top_p": 1.0}, {"top_p": 1e-6}, {"max_tokens": 1}, {"stop": ["\n"]}],
)
def test_sampling_accepts_the_boundaries(kwargs):
    SamplingParams(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ctx_size": 0}, "ServerConfig.ctx_size must be at least 1, got 0"),
        ({"parallel": 0}, "ServerConfig.parallel must be at least 1, got 0"),
        ({"threads": 0}, "ServerConfig.threads must be at least 1, got 0"),
        ({"port": -1}, "ServerConfig.port must be in [0, 65535], got -1"),
        ({"port": 65536}, "ServerConfig.port must be in [0, 65535], got 65536"),
        ({"startup_timeout": 0.0}, "ServerConfig.startup_timeout must be positive, got 0.0"),
        ({"startup_timeout": -5.0}, "ServerConfig.startup_timeout must be positive, got -5.0"),
    ],
)
def test_server_config_refuses(kwargs, message):
    _refused(ServerConfig, kwargs, message)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ctx_size": 1, "parallel": 1, "threads": 1},
        {"port": 1},
        {"port": 65535},
        {"port": None, "threads": None},
        {"startup_timeout": 0.5},
    ],
)
def test_server_config_accepts_the_boundaries(kwargs):
    ServerConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0.0}, "LLMConfig.timeout must be positive, got 0.0"),
        ({"max_concurrency": 0}, "LLMConfig.max_concurrency must be at least 1, got 0"),
        ({"requests_per_minute": 0.0}, "LLMConfig.requests_per_minute must be positive, got 0.0"),
        ({"tokens_per_minute": -1.0}, "LLMConfig.tokens_per_minute must be positive, got -1.0"),
        ({"max_retries": -1}, "LLMConfig.max_retries must be at least 0, got -1"),
        ({"max_failure_rate": 1.5}, "LLMConfig.max_failure_rate must be in [0, 1], got 1.5"),
        ({"max_failure_rate": -0.1}, "LLMConfig.max_failure_rate must be in [0, 1], got -0.1"),
        ({"backoff_base": -0.5}, "LLMConfig.backoff_base must be at least 0, got -0.5"),
        ({"backoff_max": -1.0}, "LLMConfig.backoff_max must be at least 0, got -1.0"),
        (
            {"backoff_base": 10.0, "backoff_max": 5.0},
            "LLMConfig.backoff_max must be at least LLMConfig.backoff_base (10.0), got 5.0",
        ),
    ],
)
def test_llm_config_refuses(kwargs, message):
    _refused(LLMConfig, kwargs, message)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": 0, "backoff_base": 0.0, "backoff_max": 0.0},
        {"backoff_base": 2.0, "backoff_max": 2.0},
        {"requests_per_minute": None, "tokens_per_minute": None},
        {"requests_per_minute": 0.5, "tokens_per_minute": 1.0, "max_concurrency": 1},
        {"timeout": 0.01},
        {"max_failure_rate": 0.0},
        {"max_failure_rate": 1.0},
    ],
)
def test_llm_config_accepts_the_boundaries(kwargs):
    LLMConfig(**kwargs)


def test_no_extra_params_value_reaches_a_message():
    secret = "sk-planted-in-extra-params"
    with pytest.raises(ConfigurationError) as caught:
        LLMConfig(extra_params={"api_key": secret, "reasoning_effort": "low"})
    assert secret not in str(caught.value) and "api_key" in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        LLMConfig(extra_params={"custom": secret}, max_retries=-1)
    assert secret not in str(caught.value)


def test_too_many_failures_counts_from_the_threshold_on():
    from lm_guided_cot.llm.usage import too_many_failures

    assert too_many_failures(4, 4, 1.0) and not too_many_failures(3, 4, 1.0)
    assert too_many_failures(2, 4, 0.5) and not too_many_failures(1, 4, 0.5)
    assert too_many_failures(1, 100, 0.0) and not too_many_failures(0, 100, 0.0)
    assert not too_many_failures(0, 0, 1.0)  # no call, no failure
