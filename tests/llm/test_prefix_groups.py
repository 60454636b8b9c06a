"""Requests that share most of their prompt go one after another; the rest stay concurrent."""

from __future__ import annotations

import threading
import time

import pytest

from lm_guided_cot.llm.batching import prefix_groups
from lm_guided_cot.llm.client import LLMClient, LLMRequest
from lm_guided_cot.llm.config import LLMConfig, ServerConfig
from lm_guided_cot.testing.fake_llm import FakeLLMServer
from tests.helpers import fake_llm_config

CONTEXT_A = "Paragraph about rivers. " * 40
CONTEXT_B = "Paragraph about composers. " * 40
DEMOS = "Worked example: a long few-shot demonstration. " * 10


def test_groups_follow_the_shared_prefix():
    texts = [
        CONTEXT_A + "Q1",
        CONTEXT_B + "Q2",
        CONTEXT_A + "Q1 Reasoning: one",
        CONTEXT_B + "Q2 Reasoning: two",
        CONTEXT_A + "Q1 Reasoning: three",
        "short",
    ]
    assert prefix_groups(texts) == [[0, 2, 4], [1, 3], [5]]


def test_a_shared_few_shot_header_alone_does_not_group():
    texts = [DEMOS + CONTEXT_A + "Q1", DEMOS + CONTEXT_B + "Q2"]
    assert prefix_groups(texts) == [[0], [1]]


def _finish_times(group_prefixes: bool, tmp_path) -> dict[str, float]:
    finished: dict[str, float] = {}
    lock = threading.Lock()

    def responder(messages):
        content = messages[-1]["content"]
        with lock:
            finished[content[-12:]] = time.monotonic()
        return "Answer: x"

    prompts = [
        CONTEXT_A + "Q1 sample 01",
        CONTEXT_B + "Q2 sample 01",
        CONTEXT_A + "Q1 sample 02",
        CONTEXT_B + "Q2 sample 02",
    ]
    with FakeLLMServer(responder=responder, latency=0.3) as server:
        config = fake_llm_config(server, tmp_path, group_prefixes=group_prefixes, timeout=10)
        client = LLMClient(config)
        results = client.complete([LLMRequest(({"role": "user", "content": p},)) for p in prompts])
        client.close()
    assert all(r.ok for r in results)
    return finished


@pytest.mark.parametrize("group_prefixes", [True, False])
def test_a_group_waits_for_its_first_reply_and_other_groups_do_not(tmp_path, group_prefixes):
    t = _finish_times(group_prefixes, tmp_path)
    if group_prefixes:
        # the second sample of each question was sent only after the first one's reply ...
        assert t["Q1 sample 02"] - t["Q1 sample 01"] >= 0.25
        assert t["Q2 sample 02"] - t["Q2 sample 01"] >= 0.25
    else:
        assert abs(t["Q1 sample 02"] - t["Q1 sample 01"]) < 0.25
    # ... while the two questions ran side by side
    assert abs(t["Q2 sample 01"] - t["Q1 sample 01"]) < 0.25


def test_in_process_fallback_when_no_server_is_installed(monkeypatch, capsys):
    import lm_guided_cot.llm.endpoint as endpoint_module
    import lm_guided_cot.llm.server as server_module

    monkeypatch.setattr(server_module, "find_llama_server", lambda: None)
    monkeypatch.setattr(server_module, "has_llama_cpp_python", lambda: False)
    monkeypatch.setattr(endpoint_module, "_warned_fallback", False)
    config = LLMConfig(server=ServerConfig(model="smollm2", fallback="in-process"), cache_path=None)
    client = LLMClient(config)
    assert client.config.model == "local/smollm2" and client.server is None
    assert "running smollm2 in this process instead" in capsys.readouterr().err
    strict = LLMConfig(server=ServerConfig(model="smollm2"), cache_path=None)
    with pytest.raises(server_module.ServerError, match=r"no llama\.cpp server"):
        LLMClient(strict)


def test_server_and_api_base_or_local_model_are_refused():
    with pytest.raises(ValueError, match="api_base and server"):
        LLMConfig(server=ServerConfig(), api_base="http://x")
    with pytest.raises(ValueError, match="use openai/smollm2"):
        LLMConfig(server=ServerConfig(), model="local/other")
    assert LLMConfig(server=ServerConfig(model="/m/qwen.gguf")).model == "openai/qwen"
