"""`lmcot export`: a fit checkpoint becomes a folder transformers loads, writing what the module writes."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from lm_guided_cot.cli import main
from tests.modules.test_distill import _setup, _trainer


@pytest.mark.parametrize("fixture", ["tiny_causal_dir", "tiny_t5_dir"])
def test_export_of_a_checkpoint_generates_like_the_module(request, tmp_path, shared_data, fixture):
    from lm_guided_cot.modules import DistillationModule

    model_dir = request.getfixturevalue(fixture)
    torch.manual_seed(0)
    datamodule = _setup(tmp_path, shared_data, model_dir, n_train=4, n_val=4, same_split=True)
    module = DistillationModule(
        model=str(model_dir),
        learning_rate=3e-3,
        eval_every_n_epochs=0,
        export_dir=str(tmp_path / "fit-export"),
    )
    trainer = _trainer(8, val_every=8)
    trainer.fit(module, datamodule=datamodule)
    checkpoint = tmp_path / "fit.ckpt"
    trainer.save_checkpoint(checkpoint)

    out = tmp_path / "exported"
    main(["export", str(checkpoint), str(out)])

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
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        main(["export", str(tmp_path / "nope.ckpt"), str(tmp_path / "out")])
