"""The judge inside ``lmcot evaluate``: its protocol, per-aspect means and counters per row."""

from __future__ import annotations

import csv
import json
import math

import pytest

from lm_guided_cot.datamodules import HotpotQADataModule
from lm_guided_cot.errors import InputError
from lm_guided_cot.evaluation.runner import evaluate
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.roles import Aspect, JudgeConfig
from lm_guided_cot.testing.fake_llm import FakeLLMServer

N = 3
ASPECTS = [Aspect("factuality", "true", "Is it true?"), Aspect("relevance", "on topic")]


def _alternatives(messages):
    """P(yes) 0.75 to the factuality question, 0.25 to the others."""
    p_yes = 0.75 if messages[-1]["content"].endswith("Is it true? Answer yes or no.") else 0.25
    return {" Yes": math.log(p_yes), " No": math.log(1 - p_yes)}


def _data(tmp_path, shared_data) -> HotpotQADataModule:
    return HotpotQADataModule(
        test=str(shared_data / "hotpotqa/validation.jsonl"),
        max_eval_examples=N,
        cache_dir=str(tmp_path / "hf"),
    )


def test_rationale_rows_get_a_mean_per_aspect_under_the_logprobs_protocol(tmp_path, shared_data):
    out = tmp_path / "eval"
    with FakeLLMServer(responder=lambda m: "Answer: x", logprobs=_alternatives) as server:
        llm = LLMConfig(
            model="openai/fake-large", api_base=server.base_url, cache_path=None, timeout=5
        )
        report = evaluate(
            _data(tmp_path, shared_data),
            llm,
            cot=False,
            oracle=True,
            row_names={"oracle": "oracle"},
            judge=JudgeConfig(aspects=ASPECTS),
            output_dir=str(out),
            bootstrap_resamples=50,
            quiet=True,
        )
        judge_params = [p for p in server.request_params if p.get("logprobs")]
    oracle = report.result("oracle")
    metrics = oracle.metrics()
    # 1 + 4 P(yes): 4.0 for factuality, 2.0 for relevance (asked from its description)
    assert metrics["aspect/factuality"] == pytest.approx(4.0)
    assert metrics["aspect/relevance"] == pytest.approx(2.0)
    assert metrics["aspect/mean"] == pytest.approx(3.0) and metrics["aspect/parsed"] == 1.0
    assert oracle.judge["protocol/logprobs"] == N and oracle.judge["calls"] == 2 * N
    assert report.result("standard prompting").judge == {"parsed": 0.0, **_zeros()}
    # auto decided on its probe, which was the first question (no cache: sent twice)
    assert len(judge_params) == 2 * N + 1

    with (out / "judge.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "setting",
        "factuality",
        "relevance",
        "mean",
        "parsed %",
        "protocol",
        "judge calls",
        "prompt tokens/call",
    ]
    assert [r["setting"] for r in rows] == ["oracle"]  # standard prompting has no rationale
    assert float(rows[0]["factuality"]) == pytest.approx(4.0)
    assert rows[0]["protocol"] == "logprobs" and rows[0]["judge calls"] == str(2 * N)
    assert float(rows[0]["prompt tokens/call"]) > 0
    markdown = (out / "results.md").read_text()
    assert "## Judge" in markdown and "| oracle | 4.00 | 2.00 | 3.00 | 100 | logprobs |" in markdown
    assert "1 + 4 x P(yes)" in markdown and "context: gold_only" in markdown
    summary = json.loads((out / "summary.json").read_text())
    assert summary["judge"]["protocol"] == "logprobs"
    assert summary["judge"]["aspects"] == ["factuality", "relevance"]
    assert summary["settings"]["oracle"]["judge"]["protocol/logprobs"] == N


def _zeros():
    return {
        "unparsed": 0.0,
        "calls": 0.0,
        "prompt_tokens": 0.0,
        "protocol/logprobs": 0.0,
        "protocol/json_schema": 0.0,
        "protocol/text": 0.0,
    }


def test_a_gold_only_judge_refuses_questions_without_supporting_facts_before_any_call(
    tmp_path, shared_data
):
    class NoFacts:
        source = "hotpotqa"

        def records(self, split):
            rows = _data(tmp_path, shared_data).records(split)
            return [{**row, "supporting_facts": []} for row in rows]

    with FakeLLMServer() as server:
        llm = LLMConfig(model="openai/fake-large", api_base=server.base_url, cache_path=None)
        with pytest.raises(InputError, match=r"judge\.context: gold_only"):
            evaluate(NoFacts(), llm, cot=False, output_dir=str(tmp_path / "x"), quiet=True)
        assert server.stats()["requests"] == 0
