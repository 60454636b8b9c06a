"""`lmcot reproduce`: the recipe's stages in order, skipping what exists, resuming what stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import lm_guided_cot.cli.evaluate
import lm_guided_cot.cli.rationales
import lm_guided_cot.cli.trainer
from lm_guided_cot.cli.reproduce import run_recipe
from lm_guided_cot.output_folders import EXPORT_MARKER, marker_text

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    """The shipped hotpotqa recipe with its outputs moved under tmp_path; stage calls recorded."""
    folder = tmp_path / "configs/recipe/hotpotqa"
    folder.mkdir(parents=True)
    for name in ("data", "distill", "ppo", "evaluate"):
        config = yaml.safe_load((REPO / f"configs/recipe/hotpotqa/{name}.yaml").read_text())
        text = yaml.safe_dump(config).replace("runs/recipe", str(tmp_path / "runs"))
        (folder / f"{name}.yaml").write_text(text)
    calls: list[list[str]] = []
    monkeypatch.setattr(lm_guided_cot.cli.trainer, "run_trainer", lambda args: calls.append(args))
    monkeypatch.setattr(
        lm_guided_cot.cli.rationales, "rationales", lambda a: calls.append(["rationales", *a])
    )
    monkeypatch.setattr(
        lm_guided_cot.cli.evaluate, "evaluate", lambda a: calls.append(["evaluate", *a])
    )
    return tmp_path, calls


def test_every_stage_runs_in_order_on_a_fresh_folder(recipe):
    root, calls = recipe
    run_recipe("hotpotqa", config_dir=str(root / "configs"))
    assert [c[0] for c in calls] == ["rationales", "fit", "fit", "evaluate"]
    assert calls[1][-1].endswith("distill.yaml") and calls[2][-1].endswith("ppo.yaml")
    assert "--ckpt_path" not in calls[1]


def test_done_stages_are_skipped_and_a_stopped_one_resumes(recipe):
    root, calls = recipe
    (root / "runs/hotpotqa/rationales").mkdir(parents=True)
    (root / "runs/hotpotqa/rationales/train.jsonl").write_text("")
    (root / "runs/hotpotqa/rationales/validation.jsonl").write_text("")
    (root / "runs/hotpotqa/distill/export").mkdir(parents=True)
    (root / "runs/hotpotqa/distill/export/config.json").write_text("{}")
    (root / "runs/hotpotqa/distill/export" / EXPORT_MARKER).write_text(marker_text())
    (root / "runs/hotpotqa/ppo/checkpoints").mkdir(parents=True)
    (root / "runs/hotpotqa/ppo/checkpoints/last.ckpt").write_text("")
    run_recipe("hotpotqa", config_dir=str(root / "configs"), eval_file="/data/dev.json")
    assert [c[0] for c in calls] == ["fit", "evaluate"]
    fit, evaluate = calls
    assert fit[-2:] == ["--ckpt_path", str(root / "runs/hotpotqa/ppo/checkpoints/last.ckpt")]
    assert evaluate[-4:] == [
        "--data.init_args.test",
        "/data/dev.json",
        "--output_dir",
        f"{root}/runs/hotpotqa/evaluation-dev",
    ]


def test_an_export_folder_with_only_a_config_is_not_a_done_stage(recipe):
    root, calls = recipe
    (root / "runs/hotpotqa/distill/export").mkdir(parents=True)
    (root / "runs/hotpotqa/distill/export/config.json").write_text("{}")
    run_recipe("hotpotqa", stages=["distill"], config_dir=str(root / "configs"))
    assert [c[0] for c in calls] == ["fit"]  # (whose start refuses the folder: not an export)


def test_unknown_stages_and_missing_configs_are_named(recipe, tmp_path):
    root, _ = recipe
    with pytest.raises(ValueError, match="unknown"):
        run_recipe("hotpotqa", stages=["teach"], config_dir=str(root / "configs"))
    with pytest.raises(FileNotFoundError, match="recipe's configs"):
        run_recipe("2wikimultihopqa", config_dir=str(tmp_path / "nowhere"))


def test_a_stage_config_without_a_model_checkpoint_is_named(recipe):
    root, calls = recipe
    path = root / "configs/recipe/hotpotqa/distill.yaml"
    config = yaml.safe_load(path.read_text())
    del config["trainer"]["callbacks"]
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError) as caught:
        run_recipe("hotpotqa", stages=["distill"], config_dir=str(root / "configs"))
    assert str(caught.value).startswith(
        f"{path}: trainer.callbacks needs a ModelCheckpoint with init_args.dirpath"
    )
    del config["model"]["init_args"]["export_dir"]
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"model\.init_args\.export_dir is not set"):
        run_recipe("hotpotqa", stages=["distill"], config_dir=str(root / "configs"))
    assert calls == []
