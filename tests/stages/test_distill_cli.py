"""`lmcot fit` then `lmcot test` for stage 1, and `lmcot rationales` killed and rerun, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from lm_guided_cot.cli.score import score_file
from lm_guided_cot.testing.fake_llm import FakeLLMServer

REPO = Path(__file__).resolve().parents[2]


def _answers(shared_data: Path) -> dict[str, str]:
    rows = [
        json.loads(line) for line in (shared_data / "hotpotqa/train.jsonl").read_text().splitlines()
    ]
    rows += [
        json.loads(line)
        for line in (shared_data / "hotpotqa/validation.jsonl").read_text().splitlines()
    ]
    return {r["question"]: r["answer"] for r in rows}


def _responder(answers: dict[str, str]):
    """Teacher: right for every other question (by length parity), wrong otherwise. Reader: right."""

    def respond(messages):
        user = messages[-1]["content"]
        question = user.split("Question: ", 1)[1].split("\n", 1)[0]
        gold = answers[question]
        if "step by step" in messages[0]["content"]:  # the teacher's system message
            answer = gold if len(question) % 2 == 0 else "certainly not that"
            return f"The paragraphs discuss it. So the answer is: {answer}"
        return f"Answer: {gold}"

    return respond


def _config(tmp_path: Path, shared_data: Path, model_dir: Path, url: str) -> Path:
    llm = {
        "model": "openai/fake-large",
        "api_base": url,
        "cache_path": str(tmp_path / "llm.sqlite"),
        "timeout": 5,
        "backoff_base": 0.01,
        "backoff_max": 0.02,
    }
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 2,
            "default_root_dir": str(tmp_path / "runs"),
            "log_every_n_steps": 1,
            "num_sanity_val_steps": 0,
            "enable_model_summary": False,
        },
        "model": {
            "class_path": "lm_guided_cot.stages.DistillationModule",
            "init_args": {
                "model": str(model_dir),
                "learning_rate": 1e-3,
                "generation": {"max_new_tokens": 12},
                "eval_every_n_epochs": 1,
                "reader_llm": llm,
            },
        },
        "data": {
            "class_path": "lm_guided_cot.datamodules.HotpotQADataModule",
            "init_args": {
                "train": str(shared_data / "hotpotqa/train.jsonl"),
                "validation": str(shared_data / "hotpotqa/validation.jsonl"),
                "test": str(shared_data / "hotpotqa/validation.jsonl"),
                "max_examples": 12,
                "max_eval_examples": 6,
                "batch_size": 4,
                "eval_batch_size": 6,
                "prompt": {"max_tokens": 128},
                "cache_dir": str(tmp_path / "hf"),
                "rationales": {
                    "dir": str(tmp_path / "rationales"),
                    "llm": llm,
                    "rule": "em",
                },
            },
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _lmcot(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lm_guided_cot.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.slow
def test_fit_then_test_end_to_end(tmp_path, shared_data, tiny_causal_dir):
    answers = _answers(shared_data)
    with FakeLLMServer(responder=_responder(answers)) as server:
        config = _config(tmp_path, shared_data, tiny_causal_dir, server.base_url)
        fit = _lmcot("fit", "-c", str(config))
        assert fit.returncode == 0, fit.stderr[-3000:]

        # prepare_data built the teacher rationales: half right, the wrong half dropped
        summary = json.loads((tmp_path / "rationales/train.summary.json").read_text())
        assert summary["asked"] == 12 and summary["answered"] == 12
        assert summary["kept"] == sum(len(q) % 2 == 0 for q in list(answers)[:12])
        assert 0 < summary["kept"] < 12
        assert (tmp_path / "rationales/validation.jsonl").exists()

        version = tmp_path / "runs/lightning_logs/version_0"
        saved = yaml.safe_load((version / "config.yaml").read_text())
        assert saved["model"]["init_args"]["reader_llm"]["model"] == "openai/fake-large"
        events = list(version.glob("events.out.tfevents.*"))
        assert events
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        accumulator = EventAccumulator(str(version)).Reload()
        scalars = set(accumulator.Tags()["scalars"])
        assert {"train/loss", "val/loss", "val/answer_em", "val/answer_f1"} <= scalars
        assert "val/examples/text_summary" in accumulator.Tags()["tensors"]

        exported = version / "export"
        model = AutoModelForCausalLM.from_pretrained(exported)
        assert model.num_parameters() > 0 and (exported / "tokenizer_config.json").exists()

        # saved as a checkpoint from before issue 34 moved the stages (lm_guided_cot.modules)
        checkpoint = next((version / "checkpoints").glob("*.ckpt"))
        saved = torch.load(checkpoint, weights_only=True)
        assert saved["hyper_parameters"]["_class_path"] == "lm_guided_cot.stages.DistillationModule"
        saved["hyper_parameters"]["_class_path"] = "lm_guided_cot.modules.DistillationModule"
        torch.save(saved, checkpoint)
        test = _lmcot(
            "test", "-c", str(config), "--ckpt_path", str(checkpoint),
            "--model.init_args.learning_rate", "0.5",
        )  # fmt: skip
        assert test.returncode == 0, test.stderr[-3000:]
    # the checkpoint's hyperparameters build the model, and the config value they replace is named
    assert (
        f"lmcot: --ckpt_path {checkpoint}: the model is built with the checkpoint's "
        "hyperparameters, which replace the config's learning_rate (config 0.5, checkpoint 0.001)"
    ) in test.stderr
    assert "test/answer_em" in test.stdout and "1.0" in test.stdout  # the reader was always right
    # per-question lines and an official prediction file, scored by the official rules
    test_dir = tmp_path / "runs/lightning_logs/version_1/test"
    examples = [json.loads(x) for x in (test_dir / "examples/lm_guided.jsonl").open()]
    assert len(examples) == 6 and all(len(e["rationales"]) == 1 for e in examples)
    official = score_file(
        str(test_dir / "predictions/lm_guided.json"),
        str(shared_data / "hotpotqa/validation.jsonl"),
        source="hotpotqa",
    )
    n_gold = sum(1 for _ in (shared_data / "hotpotqa/validation.jsonl").open())
    assert official["em"] * n_gold == pytest.approx(sum(e["em"] for e in examples)) == 6


@pytest.mark.slow
def test_rationales_command_killed_and_rerun_sends_nothing_twice(
    tmp_path, shared_data, tiny_causal_dir
):
    answers = _answers(shared_data)
    with FakeLLMServer(responder=_responder(answers), latency=0.1) as server:
        config = _config(tmp_path, shared_data, tiny_causal_dir, server.base_url)
        override = [
            "--data.init_args.max_examples",
            "60",
            "--data.init_args.max_eval_examples",
            "4",
            "--data.init_args.rationales.llm.max_concurrency",
            "2",
        ]
        log = (tmp_path / "first.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "lm_guided_cot.cli", "rationales", "-c", str(config), *override],
            cwd=REPO,
            stdout=log,
            stderr=log,
        )
        cache = tmp_path / "llm.sqlite"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and _cached(cache) < 20:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        answered = _cached(cache)
        assert 20 <= answered < 60
        assert not (tmp_path / "rationales/train.jsonl").exists()  # no half-written file
        sent_before = server.stats()["requests"]

        rerun = _lmcot("rationales", "-c", str(config), *override)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        stats = server.stats()
    summaries = json.loads(rerun.stdout[rerun.stdout.index("{") :])
    assert summaries["train"]["asked"] == 60 and summaries["validation"]["asked"] == 4
    assert summaries["train"]["cache_hits"] == answered
    assert stats["requests"] - sent_before == 64 - answered  # only what had no answer
    assert max(stats["per_prompt"].values()) <= 2  # at most the ones in flight at the kill, again
    rows = (tmp_path / "rationales/train.jsonl").read_text().splitlines()
    assert len(rows) == 60


def _cached(path: Path) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()
