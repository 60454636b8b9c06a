"""The benchmark scripts run end to end on tiny settings and print their tables.

TRL is the bench extra, not a test dependency: the PPO script runs our contenders only here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(__file__).resolve().parents[1] / "bin"
pytestmark = pytest.mark.slow  # each runs the script in subprocesses


def _run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args, "--repeats", "1", "--device", "cpu", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _row(out: str, label: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(label))
    return line[len(label) :].split()


def test_distillation_benchmark_compares_both_trainers_with_checkpointing():
    out = _run(
        str(BIN / "bench_distill.py"),
        *("--steps", "3", "--examples", "16", "--batch_size", "4"),
        *("--prompt_tokens", "32", "--target_tokens", "8", "--layers", "1", "--d_model", "32"),
        # each child reports whether its model really recomputed; the parent stops on a mismatch
        "--gradient_checkpointing",
    )
    assert "gradient checkpointing on" in out and "live MiB" in out
    for label in ("lm-guided-cot DistillationModule", "transformers Seq2SeqTrainer"):
        speed, _spread, rss, _rss_spread, live = _row(out, label)
        # the live peak comes from a separate run of its own: a MiB or two above the median
        # max RSS is noise, more would mean it measured something else
        assert float(speed) > 0 and float(live) > 100 and float(live) <= 1.05 * float(rss)
    assert "ratio ours/theirs: speed" in out


def test_ppo_benchmark_runs_our_causal_and_seq2seq_contenders():
    out = _run(
        str(BIN / "bench_ppo.py"),
        *("--rollouts", "2", "--prompts_per_rollout", "2", "--k", "2", "--new_tokens", "4"),
        *("--minibatch", "2", "--epochs", "1", "--prompt_chars", "24"),
        *("--layers", "2", "--hidden", "32", "--runs", "ours_rloo,ours_t5_gae"),
    )
    for label in ("lm-guided-cot PPOModule (RLOO)", "lm-guided-cot PPOModule (GAE), T5"):
        speed, _spread, rss, _rss_spread, live = _row(out, label)
        # the live peak comes from a separate run of its own: a MiB or two above the median
        # max RSS is noise, more would mean it measured something else
        assert float(speed) > 0 and float(live) > 100 and float(live) <= 1.05 * float(rss)
    assert "ratio" not in out  # no TRL run, no ratio


def test_reader_benchmark_reports_calls_and_prefix_reuse():
    from lm_guided_cot.llm.server import find_llama_server

    if find_llama_server() is None:  # bin/test builds it; CI must not pass without it
        reason = "llama-server is not installed (bash bin/build_llama_server.sh .venv)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    done = subprocess.run(
        [
            sys.executable,
            str(BIN / "bench_reader.py"),
            *("--questions", "1", "--k", "2", "--contexts", "gold_only", "--threads", "1"),
            *("--contenders", "in-process", "llama-server:1", "no-reuse:1"),
            # the machine's limits at their smallest: one sequence, one uncached prompt
            *("--limit_batch", "1", "--limit_runs", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cells = {
        name: _row(done.stdout, name) for name in ("in-process", "llama-server:1", "no-reuse:1")
    }
    # calls, wall s, calls/s, prompt tok/s, gen tok/s, prompt tok/call, evaluated/call, reused, ratio
    assert all(row[0] == "3" and float(row[2]) > 0 for row in cells.values())
    assert cells["in-process"][6:8] == ["-", "-"] and cells["in-process"][8] == "1.00x"
    assert int(cells["no-reuse:1"][6]) == int(cells["no-reuse:1"][5])  # every token computed
    assert cells["no-reuse:1"][7] == "0%"
    assert int(cells["llama-server:1"][6]) < int(cells["llama-server:1"][5]) / 2  # context once
    assert "machine limit for this model" in done.stdout and "(median of 1)" in done.stdout


def test_ppo_benchmark_with_lora_trains_the_adapters_alone():
    out = _run(
        str(BIN / "bench_ppo.py"),
        *("--rollouts", "2", "--prompts_per_rollout", "2", "--k", "2", "--new_tokens", "4"),
        *("--minibatch", "2", "--epochs", "1", "--prompt_chars", "24"),
        *("--layers", "2", "--hidden", "32", "--lora", "--runs", "ours_rloo_lora,ours_rloo"),
        "--no_live_memory",  # what this test checks is the trained parameters
    )
    assert "LoRA rank 8, alpha 16 on q_proj, v_proj" in out
    for label in ("lm-guided-cot PPOModule RLOO, LoRA", "lm-guided-cot PPOModule (RLOO)"):
        assert float(_row(out, label)[0]) > 0
    # rank 8 on q_proj and v_proj (32 -> 32) in 2 layers: 2 * 2 * 8 * (32 + 32)
    assert "trained parameters: ours_rloo_lora 2,048, ours_rloo " in out
    assert "ratio ours_rloo_lora/ours_rloo: speed" in out and "memory -" in out
    assert _row(out, "lm-guided-cot PPOModule RLOO, LoRA")[-1] == "-"  # live peak skipped


def test_ppo_benchmark_with_reward_latency_compares_staleness():
    out = _run(
        str(BIN / "bench_ppo.py"),
        *("--rollouts", "3", "--prompts_per_rollout", "2", "--k", "2", "--new_tokens", "4"),
        *("--minibatch", "4", "--epochs", "1", "--prompt_chars", "24"),
        *("--layers", "2", "--hidden", "32", "--reward-latency", "0.3"),
        *("--runs", "stale_0,stale_2,bound"),
        "--no_live_memory",
    )
    assert "with a reward 0.3 s away" in out
    speeds = {
        label: float(_row(out, label)[0])
        for label in (
            "ours GAE, max_staleness 0",
            "ours GAE, max_staleness 2",
            "bound: instant reward",
        )
    }
    # a step at staleness 0 waits 0.3 s for its reward: 4 samples in more than 0.3 s
    assert 0 < speeds["ours GAE, max_staleness 0"] < 4 / 0.3
    assert speeds["bound: instant reward"] > speeds["ours GAE, max_staleness 0"]
    assert "ratio stale_2/stale_0:" in out
