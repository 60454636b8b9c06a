"""`lmcot export`: a fit checkpoint becomes a folder transformers loads, writing what the module writes."""

from __future__ import annotations

import re

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from lm_guided_cot.cli import main
from lm_guided_cot.errors import InputError
from lm_guided_cot.output_folders import EXPORT_MARKER
from lm_guided_cot.stages.export import export_checkpoint, load_checkpoint
from tests.helpers import write_policy_checkpoint
from tests.stage_helpers import distill_datamodule, distill_trainer


@pytest.mark.parametrize("fixture", ["tiny_causal_dir", "tiny_t5_dir"])
def test_export_of_a_checkpoint_generates_like_the_module(request, tmp_path, shared_data, fixture):
    from lm_guided_cot.stages import DistillationModule

    model_dir = request.getfixturevalue(fixture)
    torch.manual_seed(0)
    datamodule = distill_datamodule(
        tmp_path, shared_data, model_dir, n_train=4, n_val=4, same_split=True
    )
    module = DistillationModule(
        model=str(model_dir),
        learning_rate=3e-3,
        eval_every_n_epochs=0,
        export_dir=str(tmp_path / "fit-export"),
    )
    trainer = distill_trainer(8, val_every=8)
    trainer.fit(module, datamodule=datamodule)
    checkpoint = tmp_path / "fit.ckpt"
    trainer.save_checkpoint(checkpoint)

    out = tmp_path / "exported"
    main(["export", str(checkpoint), str(out)])

    # both exports carry a stage-1 model card; the tiny folder names no licence
    for folder in (tmp_path / "fit-export", out):
        card = ModelCard.load(folder / "README.md")
        assert "distillation" in card.data.tags and card.data.license is None
        assert f"`{model_dir}`" in card.text
        assert f"| train | `{shared_data / 'hotpotqa/train.jsonl'}` |" in card.text
    assert "| benchmark | hotpotqa |" in ModelCard.load(tmp_path / "fit-export/README.md").text
    assert "| global_step | 8 |" in ModelCard.load(out / "README.md").text
    auto = AutoModelForSeq2SeqLM if fixture == "tiny_t5_dir" else AutoModelForCausalLM
    exported = auto.from_pretrained(out).eval()
    assert AutoTokenizer.from_pretrained(out).vocab_size == module.policy.tokenizer.vocab_size
    batch = next(iter(datamodule._loader("train", shuffle=False, targets=True)))
    ours = module.policy.eval().generate(batch["input_ids"], batch["attention_mask"])
    module.policy.model = exported  # the same decoding code, the exported weights
    theirs = module.policy.generate(batch["input_ids"], batch["attention_mask"])
    assert torch.equal(ours, theirs)
    # and the weights really are the trained ones, not the starting point's
    start = auto.from_pretrained(model_dir)
    assert any(not torch.equal(a, b) for a, b in zip(start.parameters(), exported.parameters()))


def test_export_names_a_missing_checkpoint(tmp_path):
    path = tmp_path / "nope.ckpt"
    with pytest.raises(InputError) as caught:
        export_checkpoint(str(path), str(tmp_path / "out"))
    assert str(caught.value).startswith(f"{path}: no such checkpoint; pass a .ckpt file")
    assert not (tmp_path / "out").exists()


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    return path


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "not a checkpoint that torch.load reads (the file is empty)"),
        (
            b"epoch,loss\n1,0.5\n",
            "not a checkpoint that torch.load reads (not a PyTorch file: it starts with b'epoc')",
        ),
        (bytes(range(256)) * 8, "not a checkpoint that torch.load reads ("),
        (
            {"weights": torch.zeros(2)},
            "not a Lightning checkpoint (no 'state_dict'; keys: weights)",
        ),
        ([torch.zeros(2)], "not a Lightning checkpoint (no 'state_dict'; it holds a list)"),
    ],
    ids=["empty", "text", "binary", "no-state-dict", "list"],
)
def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path, content, problem):
    path = _write(tmp_path / "model.ckpt", content)
    with pytest.raises(InputError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {problem}")
    assert message.endswith(
        "pass a .ckpt file that lmcot fit saved, or the folder a DeepSpeed strategy saved"
    )


def test_cut_off_checkpoint_is_named(tmp_path):
    whole = _write(tmp_path / "whole.ckpt", {"state_dict": {"policy.w": torch.zeros(64)}})
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(whole.read_bytes()[:200])
    with pytest.raises(InputError, match=r"cut\.ckpt: not a checkpoint that torch\.load reads"):
        load_checkpoint(cut)
    assert load_checkpoint(whole)["state_dict"]["policy.w"].shape == (64,)


def test_a_folder_that_is_not_a_deepspeed_checkpoint_is_named(tmp_path):
    folder = tmp_path / "epoch=0.ckpt"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello\n")
    with pytest.raises(InputError) as caught:
        load_checkpoint(folder)
    assert str(caught.value).startswith(
        f"{folder}: a folder, but not a DeepSpeed checkpoint (no 'latest' file naming a tag folder"
    )
    (folder / "latest").write_text("global_step7\n")  # names a tag folder that is not there
    with pytest.raises(InputError, match="not a DeepSpeed checkpoint"):
        load_checkpoint(folder)


def test_checkpoint_without_policy_weights_or_model_is_named(tmp_path):
    path = _write(tmp_path / "other.ckpt", {"state_dict": {"encoder.w": torch.zeros(1)}})
    with pytest.raises(InputError, match=r"other\.ckpt: no 'model' hyperparameter; pass --model"):
        export_checkpoint(str(path), str(tmp_path / "out"))
    with pytest.raises(InputError, match=r"other\.ckpt: no 'policy\.\*' weights"):
        export_checkpoint(str(path), str(tmp_path / "out"), model="any/model")


def test_export_to_the_current_folder_or_beside_a_text_model_is_refused(tmp_path, monkeypatch):
    from lm_guided_cot.errors import ConfigurationError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.txt").write_text("keep me\n")
    for output in (".", str(tmp_path.parent)):
        with pytest.raises(ConfigurationError, match=f"^output {re.escape(output)}: the current"):
            export_checkpoint(str(tmp_path / "nope.ckpt"), output)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model\n")
    with pytest.raises(InputError, match=f"^{re.escape(str(notes))}: a file, not a model"):
        export_checkpoint(str(tmp_path / "nope.ckpt"), "out", model=str(notes))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt", "notes.txt"]


def test_export_never_deletes_a_folder_of_other_files(tmp_path, tiny_causal_dir, capsys):
    ckpt = write_policy_checkpoint(tiny_causal_dir, tmp_path / "policy.ckpt")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my thesis")
    with pytest.raises(SystemExit) as done:
        main(["export", str(ckpt), str(out)])
    assert done.value.code == 2
    message = capsys.readouterr().err
    assert f"{out}: a folder that holds files and is not an lmcot export" in message
    assert "--overwrite" in message
    assert (out / "notes.txt").read_text() == "my thesis" and len(list(tmp_path.iterdir())) == 2

    main(["export", str(ckpt), str(out), "--overwrite", "true"])  # said so: replaced
    assert not (out / "notes.txt").exists() and (out / EXPORT_MARKER).is_file()
    main(["export", str(ckpt), str(out)])  # an earlier export is replaced without asking
    assert (out / "config.json").is_file() and not list(tmp_path.glob(".mine*"))


def test_export_never_renames_a_file_away(tmp_path, tiny_causal_dir, capsys):
    ckpt = write_policy_checkpoint(tiny_causal_dir, tmp_path / "policy.ckpt")
    out = tmp_path / "model"
    out.write_text("a file of mine")
    with pytest.raises(SystemExit) as done:
        main(["export", str(ckpt), str(out)])
    assert done.value.code == 2
    assert f"{out}: a file, not an export folder" in capsys.readouterr().err
    assert out.read_text() == "a file of mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "model",
        "policy.ckpt",
    ]
    main(["export", str(ckpt), str(out), "--overwrite", "true"])
    assert (out / "config.json").is_file()


def test_fit_refuses_an_export_dir_of_other_files_before_training(tmp_path):
    from types import SimpleNamespace

    from lm_guided_cot.stages.export import check_export_at_fit_start

    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "table.csv").write_text("a,b\n")
    module = SimpleNamespace(
        hparams=SimpleNamespace(export_dir=str(folder)),
        trainer=SimpleNamespace(is_global_zero=True),
    )
    with pytest.raises(InputError, match=r"SimpleNamespace.export_dir .*results: a folder that"):
        check_export_at_fit_start(module)
    (folder / "table.csv").unlink()
    check_export_at_fit_start(module)  # an empty folder loses nothing
