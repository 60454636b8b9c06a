"""What ``lmcot fit|validate|test`` refuse before a model is built: checkpoints that cannot be
one, output folders that cannot be written, ``predict``; and a run without a progress bar."""

from __future__ import annotations

import pytest
import torch

from lm_guided_cot.cli.trainer import _check_checkpoint, _check_outputs
from lm_guided_cot.errors import ConfigurationError, InputError, MissingFileError, OutputError


def test_checkpoints_that_cannot_be_one_are_named(tmp_path):
    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(64)}}, whole)
    _check_checkpoint(whole)  # a whole one passes
    cut = tmp_path / "last.ckpt"
    cut.write_bytes(whole.read_bytes()[:300])
    with pytest.raises(InputError, match=r"^--ckpt_path .*last\.ckpt: the checkpoint is cut off"):
        _check_checkpoint(cut)
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.ckpt: the file is empty"):
        _check_checkpoint(empty)
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    with pytest.raises(InputError, match=r"notes.ckpt: not a PyTorch checkpoint \(it starts with"):
        _check_checkpoint(text)
    with pytest.raises(MissingFileError, match=r"nope\.ckpt: no such checkpoint"):
        _check_checkpoint(tmp_path / "nope.ckpt")


def test_a_folder_is_refused_unless_deepspeed_saved_it(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "epoch=0-step=5.ckpt").write_bytes(b"PK")
    with pytest.raises(InputError) as caught:
        _check_checkpoint(folder)
    assert str(caught.value) == (
        f"--ckpt_path {folder}: a folder, not a checkpoint (nor a DeepSpeed checkpoint folder, "
        "which has a 'latest' file): pass a .ckpt file; it holds epoch=0-step=5.ckpt"
    )
    (folder / "latest").write_text("global_step5\n")
    _check_checkpoint(folder)


def test_fit_refuses_a_run_or_export_folder_behind_a_file(tmp_path):
    from jsonargparse import Namespace

    blocker = tmp_path / "runs"
    blocker.write_text("a file\n")
    config = Namespace(trainer=Namespace(default_root_dir=str(blocker)), model=None)
    with pytest.raises(OutputError, match=r"^--trainer.default_root_dir .*runs: is a file"):
        _check_outputs(config)
    config = Namespace(
        trainer=Namespace(default_root_dir=str(tmp_path / "ok")),
        model=Namespace(init_args=Namespace(export_dir=str(blocker / "export"))),
    )
    with pytest.raises(
        OutputError, match=r"^--model.init_args.export_dir .*runs/export: is inside"
    ):
        _check_outputs(config)
    assert not (tmp_path / "ok").exists()  # checked, not made


def test_predict_is_refused_in_one_line(capsys):
    from lm_guided_cot.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["predict", "-c", "whatever.yaml"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "lmcot predict: the modules have no predict step; the Trainer verbs are fit, validate, "
        "test, and `lmcot evaluate` writes predictions (see `lmcot --help`)\n"
    )


def test_prompt_given_as_a_list_is_named():
    from lm_guided_cot.data.prompts import PromptConfig
    from lm_guided_cot.hparams import as_dataclass

    with pytest.raises(ConfigurationError) as caught:
        as_dataclass(PromptConfig, ["Question: {question}"], "HotpotQADataModule.prompt")
    assert str(caught.value).startswith(
        "HotpotQADataModule.prompt: expected a mapping of PromptConfig's fields ("
    )
    assert str(caught.value).endswith("got a list: ['Question: {question}']")


def test_a_list_where_the_data_module_takes_a_dataclass_is_named_before_jsonargparse():
    from jsonargparse import Namespace

    from lm_guided_cot.cli.trainer import _check_dataclass_arguments

    data = Namespace(
        class_path="lm_guided_cot.datamodules.HotpotQADataModule",
        init_args=Namespace(prompt=["Question: {question}"], rationales=None),
    )
    with pytest.raises(ConfigurationError, match=r"^--data\.init_args\.prompt: expected a mapping"):
        _check_dataclass_arguments(data, "--data.init_args")
    data.init_args.prompt = Namespace(template="Q: {question}")
    _check_dataclass_arguments(data, "--data.init_args")  # a mapping passes


def test_a_checkpoint_saved_before_the_stages_moved_still_resumes():
    from lm_guided_cot.cli.trainer import checkpoint_model_hparams

    saved = {
        "_class_path": "lm_guided_cot.modules.PPOModule",
        "_instantiator": "lightning.pytorch.cli.instantiate_module",
        "learning_rate": 1e-4,
        "reward": {"class_path": "lm_guided_cot.rewards.AnswerReward", "init_args": {}},
        "callbacks": [{"class_path": "lm_guided_cot.modules.LearningCurve"}],
    }
    assert checkpoint_model_hparams(saved) == {
        "_class_path": "lm_guided_cot.stages.PPOModule",
        "learning_rate": 1e-4,
        "reward": {"class_path": "lm_guided_cot.rewards.AnswerReward", "init_args": {}},
        "callbacks": [{"class_path": "lm_guided_cot.stages.LearningCurve"}],
    }
    assert saved["_class_path"] == "lm_guided_cot.modules.PPOModule"  # the input is left alone


def test_the_config_values_a_checkpoint_replaces_are_named():
    from lm_guided_cot.cli.trainer import replaced_values

    given = {
        "learning_rate": 0.5,
        "export_dir": "runs/long/export",
        "ppo": {"samples_per_question": 8, "temperature": 1.0},
        "lora": {"target_modules": ("q_proj", "v_proj")},
        "only_in_config": 1,
    }
    saved = {
        "_class_path": "x.Y",
        "learning_rate": 1e-4,
        "export_dir": "runs/short/export",
        "ppo": {"samples_per_question": 4, "temperature": 1.0},
        "lora": {"target_modules": ["q_proj", "v_proj"]},  # the same value, saved as a list
        "only_in_checkpoint": 2,
    }
    assert replaced_values(given, saved) == [
        "learning_rate (config 0.5, checkpoint 0.0001)",
        "export_dir (config 'runs/long/export', checkpoint 'runs/short/export')",
        "ppo.samples_per_question (config 8, checkpoint 4)",
    ]
    assert replaced_values(saved, saved) == []
