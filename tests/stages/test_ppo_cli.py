"""`lmcot fit` with the PPO module, rewards from the fake large LM, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from transformers import AutoModelForCausalLM

from lm_guided_cot.roles import DEFAULT_ASPECTS
from lm_guided_cot.testing.fake_llm import FakeLLMServer
from tests.fit_configs import answer_and_aspects_reward, hotpotqa_data, ppo_fit_config

REPO = Path(__file__).resolve().parents[2]


def _responder(messages):
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    if "grader" in system:  # the judge
        return json.dumps({a.name: 4 for a in DEFAULT_ASPECTS})
    return "Answer: Paris"  # the reader


@pytest.mark.slow
def test_ppo_fit_end_to_end_logs_the_diagnostics(tmp_path, shared_data, tiny_causal_dir):
    with FakeLLMServer(responder=_responder) as server:
        llm = {
            "model": "openai/fake-large",
            "api_base": server.base_url,
            "cache_path": str(tmp_path / "llm.sqlite"),
            "timeout": 5,
            "backoff_base": 0.01,
            "backoff_max": 0.02,
        }
        config = ppo_fit_config(
            tiny_causal_dir,
            answer_and_aspects_reward(llm),
            hotpotqa_data(
                shared_data,
                tmp_path / "hf",
                max_examples=8,
                max_eval_examples=4,
                eval_batch_size=4,
            ),
            seed=0,
            trainer={
                "max_steps": 8,
                "default_root_dir": str(tmp_path / "runs"),
                "log_every_n_steps": 1,
                "limit_val_batches": 1,
            },
            learning_rate=1e-4,
            ppo={
                "rollout": {"max_new_tokens": 8, "do_sample": True},
                "ppo_epochs": 2,
                "minibatch_size": 4,
            },
            eval_generation={"max_new_tokens": 8},
        )
        path = tmp_path / "ppo.yaml"
        path.write_text(yaml.safe_dump(config))
        done = subprocess.run(
            [sys.executable, "-m", "lm_guided_cot.cli", "fit", "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=REPO,
            env=dict(os.environ),
        )
        assert done.returncode == 0, done.stderr[-3000:]
        stats = server.stats()
    assert stats["requests"] > 0
    version = tmp_path / "runs/lightning_logs/version_0"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(version)).Reload().Tags()
    expected = {
        "reward/total_mean",
        "reward/total_std",
        "reward/answer_mean",
        "reward/aspects_mean",
        "reward/aspects/factuality_mean",
        "kl/mean",
        "kl/coef",
        "ppo/approx_kl",
        "ppo/clipfrac",
        "ppo/value_loss",
        "ppo/policy_loss",
        "ppo/explained_variance",
        "ppo/entropy",
        "rationale/length",
        "rationale/eos_rate",
        "llm/total/requests",
        "llm/total/prompt_tokens",
        "llm/total/completion_tokens",
        "llm/total/cost",
        "llm/total/cache_hit_rate",
        "val/reward",
        # the judge's counters: the fake server returns no log-probabilities, so auto settles
        # on schema-constrained JSON
        "aspects/parsed",
        "aspects/unparsed",
        "aspects/protocol/json_schema",
        "aspects/calls",
        "aspects/prompt_tokens",
    }
    missing = expected - set(tags["scalars"])
    assert not missing, sorted(missing)
    assert "train/samples/text_summary" in tags["tensors"]
    accumulator = EventAccumulator(str(version)).Reload()
    aspects = [e.value for e in accumulator.Scalars("reward/aspects_mean")]
    assert aspects and all(v == pytest.approx(0.75) for v in aspects)  # 4 on a 1-5 scale
    assert sum(e.value for e in accumulator.Scalars("aspects/protocol/json_schema")) > 0
    assert sum(e.value for e in accumulator.Scalars("aspects/protocol/logprobs")) == 0
    assert sum(e.value for e in accumulator.Scalars("aspects/unparsed")) == 0
    assert AutoModelForCausalLM.from_pretrained(version / "export").num_parameters() > 0
