"""Reader, teacher and judge against the fake server: prompts, parsing, fallbacks, counting."""

from __future__ import annotations

import json
import re

import pytest

from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.llm.client import LLMClient
from lm_guided_cot.llm.config import SamplingParams
from lm_guided_cot.roles import (
    DEFAULT_ASPECTS,
    Aspect,
    Judge,
    JudgeConfig,
    Reader,
    Teacher,
    TeacherConfig,
    load_demonstrations,
)
from lm_guided_cot.testing.fake_llm import FakeLLMServer
from tests.helpers import fake_llm_config, paris_record

RECORD = paris_record()


def _client(server, tmp_path) -> LLMClient:
    return LLMClient(fake_llm_config(server, tmp_path))


def test_reader_with_and_without_rationale(tmp_path):
    seen = []

    def responder(messages):
        seen.append(messages)
        user = messages[-1]["content"]
        if "Reasoning:" in user:
            return "Answer: Seine"
        return "I am not sure.\nMaybe the Loire?"  # unparseable: fallback and count

    with FakeLLMServer(responder=responder) as server:
        client = _client(server, tmp_path)
        outputs = Reader(client).answer(
            [RECORD, RECORD], [None, "Paris is the capital; it lies on the Seine."]
        )
    assert outputs[1].answer == "Seine" and outputs[1].parsed
    assert not outputs[0].parsed and outputs[0].answer == "I am not sure"  # first_line fallback
    assert client.role_usage("reader").parse_failures == 1
    user = seen[0][-1]["content"]
    assert "France: France is in Europe. Its capital is Paris." in user
    assert "Question: Which river flows through the capital of France?" in user
    assert seen[0][0]["role"] == "system"


def test_teacher_few_shot_from_the_shared_demonstrations(tmp_path, shared_data):
    demos_path = shared_data / "cot_demos/hotpotqa.jsonl"
    demos = load_demonstrations(demos_path, limit=3)
    captured = []

    def responder(messages):
        captured.append(messages)
        return "France's capital is Paris. Paris lies on the Seine. So the answer is: Seine."

    with FakeLLMServer(responder=responder) as server:
        client = _client(server, tmp_path)
        teacher = Teacher(
            client,
            TeacherConfig(
                demonstrations=str(demos_path),
                num_demonstrations=3,
                sampling=SamplingParams(temperature=0.7),
            ),
        )
        outputs = teacher.explain([RECORD], samples=3)
        assert server.stats()["requests"] == 3  # three samples, each its own request
    assert len(outputs) == 1 and len(outputs[0]) == 3
    sample = outputs[0][0]
    assert sample.parsed and sample.answer == "Seine"
    assert sample.rationale == "France's capital is Paris. Paris lies on the Seine."
    messages = captured[0]
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert messages[2]["content"] == f"{demos[0].rationale} So the answer is: {demos[0].answer}"
    assert demos[0].question in messages[1]["content"]


def test_judge_scores_aspects_with_fallback(tmp_path):
    names = [a.name for a in DEFAULT_ASPECTS]

    def responder(messages):
        user = messages[-1]["content"]
        if "GOOD" in user:
            return json.dumps({n: 5 for n in names})
        if "PARTIAL" in user:
            return json.dumps({"factuality": 2, "relevance": 11})
        return "I refuse to grade."

    with FakeLLMServer(responder=responder) as server:
        client = _client(server, tmp_path)
        judge = Judge(client)
        good, partial, refused = judge.score(
            [RECORD] * 3, ["GOOD rationale", "PARTIAL one", "other"]
        )
    assert good.parsed and good.scores == {n: 5.0 for n in names}
    assert not partial.parsed
    assert (
        partial.scores["factuality"] == 2.0 and partial.scores["relevance"] == 3.0
    )  # midpoint fallback
    assert refused.scores == {n: 3.0 for n in names}
    assert client.role_usage("judge").parse_failures == 2
    prompt = judge.messages(RECORD, "x")[-1]["content"]
    assert (
        "- factuality: every statement is supported" in prompt
        and "from 1 (worst) to 5 (best)" in prompt
    )


def test_judge_config_checks_scale():
    with pytest.raises(ValueError, match="scale_min"):
        Judge(client=None, config=JudgeConfig(scale_min=5, scale_max=1))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: JudgeConfig(scale_min=5, scale_max=5),
            "JudgeConfig.scale_min must be below scale_max, got 5 and 5",
        ),
        (
            lambda: JudgeConfig(scale_max=float("inf")),
            "JudgeConfig.scale_max must be a finite number, got inf",
        ),
        (
            lambda: JudgeConfig(fallback_score=0.0),
            "JudgeConfig.fallback_score must be in [1.0, 5.0], got 0.0",
        ),
        (
            lambda: JudgeConfig(fallback_score=6.0),
            "JudgeConfig.fallback_score must be in [1.0, 5.0], got 6.0",
        ),
        (lambda: JudgeConfig(aspects=[]), "JudgeConfig.aspects must name at least one aspect"),
        (
            lambda: JudgeConfig(aspects=[Aspect("a", "x"), Aspect("a", "y")]),
            "JudgeConfig.aspects repeats the names ['a']",
        ),
        (
            lambda: TeacherConfig(num_demonstrations=0),
            "TeacherConfig.num_demonstrations must be at least 1, got 0",
        ),
        (
            lambda: TeacherConfig(sampling=SamplingParams(top_p=0.0)),
            "sampling.top_p must be in (0, 1], got 0.0",
        ),
    ],
)
def test_role_configs_refuse(build, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        build()


@pytest.mark.parametrize(
    "build",
    [
        lambda: JudgeConfig(fallback_score=1.0),
        lambda: JudgeConfig(fallback_score=5.0),
        lambda: JudgeConfig(scale_min=0, scale_max=1, aspects=[Aspect("a", "x")]),
        lambda: TeacherConfig(num_demonstrations=1),
        lambda: TeacherConfig(num_demonstrations=None),
    ],
)
def test_role_configs_accept_the_boundaries(build):
    build()
