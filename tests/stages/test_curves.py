"""The learning curve: the pure plot, and the callback during a tiny PPO fit and its resume."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from lm_guided_cot.data import PromptConfig
from lm_guided_cot.datamodules import HotpotQADataModule
from lm_guided_cot.policy import GenerationConfig
from lm_guided_cot.stages import LearningCurve, PPOConfig, PPOModule
from lm_guided_cot.stages.curves import curve_csv, plot_learning_curve, read_curve
from tests.helpers import VowelShareReward, assert_png


def test_plot_learning_curve_writes_a_png_from_hand_made_rows(tmp_path):
    rows = [
        {"epoch": 0, "global_step": 2 * s, "batches": s, "val/reward": 0.3 + 0.05 * s}
        | {"val/rewards/answer_mean": 0.3 + 0.05 * s, "reward/answer_mean": 0.2 + 0.04 * s}
        | {"kl/mean": 0.01 * s}
        for s in range(1, 6)
    ]
    rows[0]["kl/mean"] = None  # a step before anything was logged
    path = plot_learning_curve(rows, tmp_path / "curve" / "learning_curve.png")
    assert_png(path)
    assert [p.name for p in path.parent.iterdir()] == ["learning_curve.png"]  # no temp file
    # the CSV form reads back as written, an empty cell as None
    assert read_curve_text(tmp_path, curve_csv(rows)) == [
        {k: (None if v is None else float(v)) for k, v in row.items()} for row in rows
    ]


def read_curve_text(tmp_path: Path, text: str) -> list[dict]:
    (tmp_path / "c.csv").write_text(text)
    return read_curve(tmp_path / "c.csv")


def test_plot_learning_curve_with_no_rows_yet(tmp_path):
    assert_png(plot_learning_curve([], tmp_path / "empty.png"), min_bytes=1_000)


# ---- the callback in a fit ------------------------------------------------------------------

STEPS_PER_BATCH = 2  # ppo_epochs 2 x one minibatch of 2 questions x 2 samples


def _fit(model_dir, shared_data, tmp_path, batches, version, ckpt_path=None, **data):
    L.seed_everything(0)
    datamodule = HotpotQADataModule(
        **data,
        tokenizer=str(model_dir),
        train=str(shared_data / "hotpotqa/train.jsonl"),
        validation=str(shared_data / "hotpotqa/validation.jsonl"),
        max_examples=8,
        batch_size=2,
        eval_batch_size=3,
        prompt=PromptConfig(max_tokens=64),
    )
    module = PPOModule(
        model=str(model_dir),
        reward=VowelShareReward(),
        learning_rate=1e-3,
        ppo=PPOConfig(
            rollout=GenerationConfig(max_new_tokens=8, do_sample=True),
            samples_per_question=2,
            advantage="rloo",
            ppo_epochs=STEPS_PER_BATCH,
            minibatch_size=4,
            init_kl_coef=0.01,
        ),
        eval_generation=GenerationConfig(max_new_tokens=8),
        num_logged_examples=0,
        export_dir=str(tmp_path / f"export_{version}"),
    )
    curve = LearningCurve()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=batches * STEPS_PER_BATCH,
        val_check_interval=1,  # validation after every training batch
        limit_val_batches=2,  # the fixed slice: the first 2 x 3 validation questions
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        logger=CSVLogger(tmp_path, name="ppo", version=version),
        callbacks=[
            curve,
            ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_top_k=-1),
        ],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer


def _logged_val(log_dir: Path) -> list[dict[str, float]]:
    """The val rows of the CSVLogger's metrics.csv: what the run's logger got."""
    with (log_dir / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val/reward")]
    return [{k: float(v) for k, v in r.items() if v != ""} for r in rows]


def _curve_rows(log_dir: Path) -> list[dict[str, float | None]]:
    return read_curve(log_dir / "learning_curve.csv")


@pytest.mark.slow
def test_learning_curve_during_fit_and_after_resume(shared_data, tiny_causal_dir, tmp_path):
    trainer = _fit(tiny_causal_dir, shared_data, tmp_path, batches=3, version=0)
    log_dir = Path(trainer.log_dir)
    rows = _curve_rows(log_dir)
    logged = _logged_val(log_dir)
    # one row per validation, after each of the 3 training batches
    assert [r["batches"] for r in rows] == [1, 2, 3]
    assert [r["global_step"] for r in rows] == [2, 4, 6]
    assert len(logged) == 3
    for row, log in zip(rows, logged):
        # the loggers' step axis under manual optimization: the batches done before this one
        assert row["batches"] - 1 == log["step"]
        for key in ("val/reward", "val/rewards/vowels_mean"):
            assert row[key] == pytest.approx(log[key]), key
        assert row["reward/vowels_mean"] is not None and row["kl/mean"] is not None
    # the training columns are the last training step's logged values
    with (log_dir / "metrics.csv").open() as handle:
        train = [r for r in csv.DictReader(handle) if r.get("reward/vowels_mean")]
    assert [float(r["reward/vowels_mean"]) for r in train] == pytest.approx(
        [r["reward/vowels_mean"] for r in rows]
    )
    assert_png(log_dir / "learning_curve.png")
    assert sorted(p.name for p in log_dir.iterdir() if p.name.startswith(".")) == []

    # resumed from the checkpoint after batch 2, in the same run folder: the row of batch 3 is
    # done again (not twice), then batches 4 and 5 are appended
    ckpt = tmp_path / "ckpt" / "epoch=0-step=4.ckpt"
    trainer = _fit(tiny_causal_dir, shared_data, tmp_path, batches=5, version=0, ckpt_path=ckpt)
    resumed = _curve_rows(log_dir)
    assert [r["batches"] for r in resumed] == [1, 2, 3, 4, 5]
    assert resumed[:2] == rows[:2]
    assert_png(log_dir / "learning_curve.png")

    # resumed into a new run folder (a new logger version): the rows of the checkpoint's run
    # come along (read from the CSV that run wrote, which the checkpoint names)
    trainer = _fit(tiny_causal_dir, shared_data, tmp_path, batches=4, version=1, ckpt_path=ckpt)
    moved = _curve_rows(Path(trainer.log_dir))
    assert [r["batches"] for r in moved] == [1, 2, 3, 4]
    assert moved[:2] == rows[:2]


def test_the_curve_with_a_data_module_set_up_for_stage_1_too(
    shared_data, tiny_causal_dir, tmp_path
):
    """The recipes' data.yaml configures stage-1 targets, which adds a validation loader of
    (prompt, target) batches: stage 2 validates on the questions alone and logs its metrics
    under their plain names (it crashed at the first validation before)."""
    rationales = {"dir": str(tmp_path / "targets"), "source": "supporting_facts"}
    trainer = _fit(
        tiny_causal_dir, shared_data, tmp_path, batches=1, version=0, rationales=rationales
    )
    assert len(trainer.val_dataloaders) == 2
    rows = _curve_rows(Path(trainer.log_dir))
    assert [r["batches"] for r in rows] == [1] and rows[0]["val/reward"] is not None
    assert _logged_val(Path(trainer.log_dir))[0]["val/reward"] == pytest.approx(
        rows[0]["val/reward"]
    )
