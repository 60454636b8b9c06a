"""`lmcot evaluate` on the real HotpotQA sample with a tiny small LM and the test server."""

from __future__ import annotations

import csv
import json
import re

import pytest

from lm_guided_cot.cli.score import score_file
from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.evaluation.runner import evaluate
from lm_guided_cot.evaluation.settings import SmallLMSetting
from lm_guided_cot.evaluation.table import COMPARISON_HEADER, RESULT_HEADER
from lm_guided_cot.evaluation.voting import majority_vote
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.policy import GenerationConfig
from lm_guided_cot.testing.fake_llm import FakeLLMServer
from tests.helpers import evaluation_responder, hotpot_gold_answers, run_evaluate

N = 6
SETTINGS = ["standard prompting", "CoT prompting", "LM-guided (tiny)", "SC (tiny, k=3)"]


@pytest.mark.slow
def test_evaluate_table_predictions_and_official_scores(tmp_path, shared_data, tiny_causal_dir):
    gold = hotpot_gold_answers(shared_data)
    out = tmp_path / "eval"
    with FakeLLMServer(responder=evaluation_responder(gold)) as server:
        config = {
            "llm": {
                "model": "openai/fake-large",
                "api_base": server.base_url,
                "cache_path": str(tmp_path / "llm.sqlite"),
                "timeout": 5,
            },
            "small_lms": [
                {
                    "name": "LM-guided (tiny)",
                    "model": str(tiny_causal_dir),
                    "generation": {"max_new_tokens": 8},
                },
                {
                    "name": "SC (tiny, k=3)",
                    "model": str(tiny_causal_dir),
                    "samples": 3,
                    "generation": {"max_new_tokens": 8, "do_sample": True},
                },
            ],
            "output_dir": str(out),
            "bootstrap_resamples": 500,
        }
        run = run_evaluate(tmp_path, shared_data, config, N, prompt={"max_tokens": 128})
        assert run.returncode == 0, run.stderr[-3000:]
        sent = server.stats()["requests"]

    # the table: one row per setting, the documented columns, in the terminal and in files
    for name in SETTINGS:
        assert name in run.stdout
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == RESULT_HEADER
    assert [r["setting"] for r in rows] == SETTINGS
    assert all(int(r["n"]) == N for r in rows)
    results = {r["setting"]: r for r in rows}
    assert float(results["CoT prompting"]["EM"]) == 1.0  # the scripted CoT is always right
    assert int(results["standard prompting"]["LLM calls"]) == N
    assert int(results["SC (tiny, k=3)"]["LLM calls"]) >= N  # distinct rationales, one call each
    assert results["standard prompting"]["aspects"] == ""  # no rationale, nothing to judge
    assert float(results["LM-guided (tiny)"]["aspects"]) == 4.0
    markdown = (out / "results.md").read_text()
    assert "| setting | n | EM |" in markdown and "Paired bootstrap" in markdown
    with (out / "comparisons.csv").open() as handle:
        comparisons = list(csv.DictReader(handle))
    assert tuple(comparisons[0]) == COMPARISON_HEADER
    assert {(c["setting"], c["metric"]) for c in comparisons} == {
        (s, m) for s in SETTINGS[1:] for m in ("em", "f1")
    }
    assert all(c["vs"] == "standard prompting" for c in comparisons)

    summary = json.loads((out / "summary.json").read_text())
    gold_file = shared_data / "hotpotqa/validation.jsonl"
    for name, slug in zip(
        SETTINGS, ["standard_prompting", "cot_prompting", "lm_guided_tiny", "sc_tiny_k_3"]
    ):
        examples = [
            json.loads(x) for x in (out / f"examples/{slug}.jsonl").read_text().splitlines()
        ]
        predictions = json.loads((out / f"predictions/{slug}.json").read_text())["answer"]
        # every question has a prediction, and the per-example lines say how it came about
        assert len(examples) == N and set(predictions) == {e["id"] for e in examples}
        assert all(predictions[e["id"]] == e["answer"] for e in examples)
        expected_rationales = {"standard_prompting": 0, "sc_tiny_k_3": 3}.get(slug, 1)
        assert all(len(e["rationales"]) == expected_rationales for e in examples)
        if slug == "sc_tiny_k_3":
            assert all(e["answer"] == majority_vote(e["answers"]).answer for e in examples)
        # the official-format file, scored by the official rules over the same questions,
        # equals the in-memory means
        official = score_file(
            str(out / f"predictions/{slug}.json"), str(gold_file), source="hotpotqa"
        )
        n_gold = sum(1 for _ in gold_file.open())
        metrics = summary["settings"][name]["metrics"]
        assert official["em"] * n_gold / N == pytest.approx(metrics["answer_em"])
        assert official["f1"] * n_gold / N == pytest.approx(metrics["answer_f1"])
        assert summary["settings"][name]["official"]["f1"] == pytest.approx(metrics["answer_f1"])
        if expected_rationales:
            assert metrics["aspect/mean"] == 4.0 and metrics["aspect/parsed"] == 1.0
        assert metrics["answer_em"] == pytest.approx(sum(e["em"] for e in examples) / N)

    # judge calls are counted apart from the settings' own calls; together they are all sent
    judged = sum(s["judge_usage"]["requests"] for s in summary["settings"].values())
    answered = sum(s["usage"]["requests"] for s in summary["settings"].values())
    assert judged > 0 and judged + answered == sent

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard")).Reload()
    assert "eval/lm_guided_tiny/answer_f1" in events.Tags()["scalars"]
    assert "eval/results/text_summary" in events.Tags()["tensors"]


class _Reached(Exception):
    """Raised by a data module stub: evaluate got past its checks to the questions."""


class _DataStub:
    source = "hotpotqa"

    def records(self, split):
        raise _Reached(split)


def _evaluate(**kwargs):
    return evaluate(data=_DataStub(), llm=LLMConfig(cache_path=None), quiet=True, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bootstrap_resamples": 0}, "evaluate.bootstrap_resamples must be at least 1, got 0"),
        ({"confidence": 0.0}, "evaluate.confidence must be in (0, 1), got 0.0"),
        ({"confidence": 1.0}, "evaluate.confidence must be in (0, 1), got 1.0"),
        ({"confidence": 95.0}, "evaluate.confidence must be in (0, 1), got 95.0"),
        ({"num_logged_examples": -1}, "evaluate.num_logged_examples must be at least 0, got -1"),
        ({"baseline": "standard"}, "evaluate.baseline 'standard' is none of the settings"),
        (
            {"comparisons": [["CoT prompting", "nope"]]},
            "evaluate.comparisons ['CoT prompting', 'nope']: expected two of the settings",
        ),
        ({"row_names": {"std": "x"}}, "evaluate.row_names: unknown rows ['std']"),
        ({"standard": False, "cot": False}, "nothing to evaluate"),
    ],
)
def test_evaluate_refuses_bad_options_before_any_question(kwargs, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        _evaluate(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bootstrap_resamples": 1, "confidence": 1e-3, "num_logged_examples": 0},
        {"confidence": 0.999, "baseline": "CoT prompting"},
        {"comparisons": [["CoT prompting", "standard prompting"]]},
    ],
)
def test_evaluate_takes_the_boundary_options(kwargs):
    with pytest.raises(_Reached):
        _evaluate(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"samples": 0}, "SmallLMSetting('KD').samples must be at least 1, got 0"),
        ({"batch_size": 0}, "SmallLMSetting('KD').batch_size must be at least 1, got 0"),
        ({"samples": 3}, "SmallLMSetting('KD'): 3 samples per question need"),
        (
            {"generation": {"max_new_tokens": 0}},
            "GenerationConfig.max_new_tokens must be at least 1, got 0",
        ),
    ],
)
def test_small_lm_setting_refuses(kwargs, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        SmallLMSetting(name="KD", model="unused", **kwargs)


def test_small_lm_setting_takes_the_boundaries():
    SmallLMSetting(name="KD", model="unused", samples=1, batch_size=1)
    sampled = GenerationConfig(do_sample=True)
    assert SmallLMSetting(name="SC", model="unused", generation=sampled, samples=2).samples == 2


def test_a_large_lm_that_fails_every_call_stops_before_any_result(tmp_path, shared_data):
    from lm_guided_cot.datamodules import HotpotQADataModule
    from lm_guided_cot.errors import RunError

    data = HotpotQADataModule(
        test=str(shared_data / "hotpotqa/validation.jsonl"),
        max_eval_examples=3,
        cache_dir=str(tmp_path / "hf"),
    )
    out = tmp_path / "eval"
    with FakeLLMServer(fault_rates={"error500": 1.0}) as server:
        llm = LLMConfig(
            model="openai/fake-large", api_base=server.base_url, cache_path=None, max_retries=0
        )
        with pytest.raises(RunError) as caught:
            evaluate(data, llm, cot=False, judge=None, output_dir=str(out), quiet=True)
    message = str(caught.value)
    assert message.startswith(
        f"row 'standard prompting': all 3 large-LM calls to openai/fake-large at "
        f"{server.base_url} failed (first error: {server.base_url}: InternalServerError"
    )
    assert "no results were written" in message and caught.value.exit_code == 1
    assert not out.exists()
