"""Both stages under DDP on 2 CPU processes against the same run in one process.

What users rely on when they add GPUs: the ranks hold the same weights after every step,
the metrics they log are those of one process over the same examples, teacher rationales
are built once, and each large-LM request is paid for once however many ranks ask.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lm_guided_cot.testing.fake_llm import FakeLLMServer

RUNNER = Path(__file__).with_name("ddp_stages.py")
REPO = Path(__file__).resolve().parents[2]
# the package under test, as in this process (not some other installed copy)
ENV = {"PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}", "OMP_NUM_THREADS": "1"}

# One worker runs this module, so that the one-process references below are run once, all in
# one process: each run trains for ~3 s after ~20 s of imports.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ddp")]

# (stage, advantage, lora, max_staleness) of every one-process run the tests compare with
REFERENCES = [
    ("distill", "gae", "", 0),
    *(("ppo", advantage, "", 0) for advantage in ("gae", "rloo", "grpo", "dr_grpo")),
    ("ppo", "gae", "lora", 0),
    ("ppo", "grpo:skip", "", 0),
    ("ppo", "rloo:skip", "", 0),
    ("ppo", "gae", "", 2),
    ("ppo", "grpo", "", 1),
]


def _gold(shared_data: Path) -> dict[str, str]:
    rows = []
    for split in ("train", "validation"):
        lines = (shared_data / f"hotpotqa/{split}.jsonl").read_text().splitlines()
        rows += [json.loads(line) for line in lines]
    return {r["question"]: r["answer"] for r in rows}


def _responder(gold: dict[str, str]):
    """Teacher: right. Reader: right when the rationale has an even number of characters."""

    def respond(messages):
        user = messages[-1]["content"]
        question = user.split("Question: ", 1)[1].split("\n", 1)[0]
        if "step by step" in messages[0]["content"]:
            return f"Both paragraphs say it. So the answer is: {gold[question]}"
        rationale = user.split("Reasoning: ", 1)[1].rsplit("\nReply with", 1)[0]
        return f"Answer: {gold[question] if len(rationale) % 2 == 0 else 'somebody else'}"

    return respond


def _run(
    stage,
    devices,
    tmp_path,
    shared_data,
    model_dir,
    llm_calls="every_rank",
    advantage="gae",
    lora="",
    max_staleness=0,
):
    out = tmp_path / f"{stage}-{devices}-{llm_calls}-{advantage}{lora}-{max_staleness}"
    out.mkdir()
    with FakeLLMServer(responder=_responder(_gold(shared_data))) as server:
        args = [stage, str(out), str(devices), str(model_dir), str(shared_data)]
        done = subprocess.run(
            [
                *(sys.executable, str(RUNNER), *args, server.base_url),
                *(llm_calls, advantage, lora, str(max_staleness)),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=out,
            env={**os.environ, **ENV},
        )
        stats = server.stats()
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((out / "record.json").read_text()), stats, out


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, shared_data, tiny_causal_dir):
    """Every run of ``REFERENCES`` on one process, all in one: (record, server stats) by key."""
    root = tmp_path_factory.mktemp("one_process")
    with contextlib.ExitStack() as stack:
        servers, runs = [], []
        for stage, advantage, lora, max_staleness in REFERENCES:
            server = FakeLLMServer(responder=_responder(_gold(shared_data)))
            servers.append(stack.enter_context(server))
            out = root / f"{stage}-{advantage.replace(':', '_')}{lora}-{max_staleness}"
            out.mkdir()
            args = [stage, str(out), "1", str(tiny_causal_dir), str(shared_data)]
            runs.append([*args, server.base_url, "every_rank", advantage, lora, str(max_staleness)])
        (root / "runs.json").write_text(json.dumps(runs))
        done = subprocess.run(
            [sys.executable, str(RUNNER), "--many", str(root / "runs.json")],
            capture_output=True,
            text=True,
            timeout=1200,
            cwd=root,
            env={**os.environ, **ENV},
        )
        assert done.returncode == 0, done.stderr[-4000:]
        return {
            key: (json.loads((Path(run[1]) / "record.json").read_text()), server.stats())
            for key, run, server in zip(REFERENCES, runs, servers, strict=True)
        }


def _assert_ranks_agree(record):
    for step in record["steps"]:
        rank0, *others = step["weights"]
        assert others, "expected two ranks"
        assert all(other == rank0 for other in others)  # bit for bit


def _assert_same_run(two, one, metric_names):
    assert len(two["steps"]) == len(one["steps"]) > 1
    for a, b in zip(two["steps"], one["steps"]):
        assert set(a["metrics"]) == set(b["metrics"]) >= set(metric_names)
        for name in a["metrics"]:
            assert a["metrics"][name] == pytest.approx(b["metrics"][name], rel=1e-4, abs=1e-5), name
        assert a["weights"][0] == pytest.approx(b["weights"][0], rel=1e-4, abs=1e-4)


def test_distillation_on_two_ranks_matches_one_process(
    tmp_path, shared_data, tiny_causal_dir, one_process
):
    two, two_stats, two_out = _run("distill", 2, tmp_path, shared_data, tiny_causal_dir)
    one, one_stats = one_process["distill", "gae", "", 0]
    _assert_ranks_agree(two)
    _assert_same_run(two, one, ["train/loss"])
    assert len(two["validations"]) == len(one["validations"]) == 3
    for a, b in zip(two["validations"], one["validations"]):
        assert set(a) == {"val/loss", "val/answer_em", "val/answer_f1"}
        for name in a:
            assert a[name] == pytest.approx(b[name], rel=1e-4, abs=1e-5), name
    # teacher rationales built once (rank 0) for 8 + 4 questions; each reader request once
    for stats in (two_stats, one_stats):
        assert max(stats["per_prompt"].values()) == 1
    assert two_stats["requests"] == one_stats["requests"]
    summary = json.loads((two_out / "rationales/train.summary.json").read_text())
    assert summary["asked"] == 8 and summary["kept"] == 8


@pytest.mark.parametrize(
    ("llm_calls", "advantage", "lora"),
    [
        ("every_rank", "gae", ""),
        ("rank_zero", "gae", ""),
        ("every_rank", "rloo", ""),
        ("rank_zero", "grpo", ""),
        ("every_rank", "dr_grpo", ""),
        ("every_rank", "gae", "lora"),  # adapters and value head train; reference: adapters off
    ],
)
def test_ppo_on_two_ranks_matches_one_process(
    tmp_path, shared_data, tiny_causal_dir, one_process, llm_calls, advantage, lora
):
    from tests.stages.ddp_stages import PPO_METRICS, RLOO_METRICS

    run = (tmp_path, shared_data, tiny_causal_dir)
    two, two_stats, _ = _run("ppo", 2, *run, llm_calls, advantage, lora)
    one, one_stats = one_process["ppo", advantage, lora, 0]
    _assert_ranks_agree(two)
    _assert_same_run(two, one, PPO_METRICS if advantage == "gae" else RLOO_METRICS)
    # the weights moved, and the reward was not constant (the comparison means something)
    assert two["steps"][0]["weights"][0] != two["steps"][-1]["weights"][0]
    # each distinct (question, rationale) reader request went out once across both ranks
    assert max(two_stats["per_prompt"].values()) == 1
    assert two_stats["requests"] == one_stats["requests"]


@pytest.mark.parametrize("objective", ["grpo:skip", "rloo:skip"])
def test_dynamic_sampling_skip_on_two_ranks_matches_one_process(
    tmp_path, shared_data, tiny_causal_dir, one_process, objective
):
    # one question per rank: a rank can skip its group while the other keeps its own, and
    # both must still take the same number of minibatches; under rloo the advantages are
    # scaled by the std of every rank's kept rows, as one process scales its own
    run = (tmp_path, shared_data, tiny_causal_dir)
    two, _, _ = _run("ppo", 2, *run, "every_rank", objective)
    one, _ = one_process["ppo", objective, "", 0]
    _assert_ranks_agree(two)
    # the ppo/* losses are missing on a step whose groups were all skipped (no update)
    names = ("reward/total_mean", "kl/mean", "ppo/groups_constant", "ppo/groups_skipped")
    _assert_same_run(two, one, names)
    assert two["steps"][0]["weights"][0] != two["steps"][-1]["weights"][0]
    skipped = [step["metrics"]["ppo/groups_skipped"] for step in two["steps"]]
    assert 0 < sum(skipped) < 2 * len(skipped), skipped  # some groups skipped, not all


def test_dynamic_sampling_resample_keeps_the_ranks_in_step(tmp_path, shared_data, tiny_causal_dir):
    # rank_zero calls gather every rank: a rank with nothing to resample still takes part
    two, _, _ = _run("ppo", 2, tmp_path, shared_data, tiny_causal_dir, "rank_zero", "grpo:resample")
    _assert_ranks_agree(two)
    assert all("ppo/groups_resampled" in step["metrics"] for step in two["steps"])


@pytest.mark.parametrize(
    ("llm_calls", "advantage", "max_staleness"),
    [
        ("every_rank", "gae", 2),
        ("rank_zero", "grpo", 1),
    ],
)
def test_stale_ppo_on_two_ranks_matches_one_process(
    tmp_path, shared_data, tiny_causal_dir, one_process, llm_calls, advantage, max_staleness
):
    # rank_zero: texts gathered at submission, rank 0 alone asks in the background, scores
    # scattered when the batch is consumed (every rank consumes in the same order)
    from tests.stages.ddp_stages import PPO_METRICS, RLOO_METRICS

    run = (tmp_path, shared_data, tiny_causal_dir)
    two, two_stats, _ = _run("ppo", 2, *run, llm_calls, advantage, max_staleness=max_staleness)
    one, one_stats = one_process["ppo", advantage, "", max_staleness]
    one = {**one, "steps": list(one["steps"])}  # shared with other tests: trimmed on a copy
    _assert_ranks_agree(two)
    for record in (two, one):  # the first max_staleness steps only sample: nothing logged
        assert all(not step["metrics"] for step in record["steps"][:max_staleness])
        record["steps"] = record["steps"][max_staleness:]
    names = PPO_METRICS if advantage == "gae" else RLOO_METRICS
    _assert_same_run(two, one, (*names, "ppo/staleness"))
    assert {step["metrics"]["ppo/staleness"] for step in two["steps"]} == {max_staleness}
    assert two["steps"][0]["weights"][0] != two["steps"][-1]["weights"][0]
    assert max(two_stats["per_prompt"].values()) == 1
    assert two_stats["requests"] == one_stats["requests"]
