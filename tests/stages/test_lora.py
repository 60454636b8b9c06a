"""LoRA in both stages, for a tiny T5 and a tiny causal LM: only the adapters train, the PPO
reference is the base model without a second copy, exports (merged and adapter-only, at fit
end and from a checkpoint) generate what the module generates, resume is exact."""

from __future__ import annotations

import os

import lightning as L
import pytest
import torch
from peft import PeftModel
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

from lm_guided_cot.cli import main
from lm_guided_cot.datamodules import HotpotQADataModule
from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.lora import LoRAConfig
from lm_guided_cot.model_specs import adapter_base, set_adapter_base
from lm_guided_cot.policy import AdapterFreeReference, SmallLM
from lm_guided_cot.stages import DistillationModule, PPOModule
from lm_guided_cot.stages.export import export_pretrained
from tests.helpers import VowelShareReward
from tests.stage_helpers import (
    distill_datamodule,
    distill_trainer,
    fit_with_epoch_checkpoints,
    quiet_trainer,
)

ARCHS = ["causal", "seq2seq"]
LORA = LoRAConfig(rank=4, alpha=8)


@pytest.fixture
def model_dir(request, arch):
    return request.getfixturevalue("tiny_t5_dir" if arch == "seq2seq" else "tiny_causal_dir")


def _auto(arch):
    return AutoModelForSeq2SeqLM if arch == "seq2seq" else AutoModelForCausalLM


def _ppo(model_dir, tmp_path, **kwargs) -> PPOModule:
    return PPOModule(
        model=str(model_dir),
        reward=VowelShareReward(),
        learning_rate=1e-2,
        ppo={
            "rollout": {"max_new_tokens": 12, "do_sample": True},
            "samples_per_question": 2,
            "ppo_epochs": 2,
            "minibatch_size": 4,
            "init_kl_coef": 0.05,
            "target_kl": None,
        },
        num_logged_examples=0,
        export_dir=str(tmp_path / "ppo-export"),
        lora=LORA,
        **kwargs,
    )


def _ppo_data(shared_data, model_dir) -> HotpotQADataModule:
    return HotpotQADataModule(
        tokenizer=str(model_dir),
        train=str(shared_data / "hotpotqa/train.jsonl"),
        max_examples=4,
        batch_size=2,
        prompt={"max_tokens": 64},
        seed=3,
    )


def _distilled(tmp_path, shared_data, model_dir, **kwargs):
    torch.manual_seed(0)
    datamodule = distill_datamodule(
        tmp_path, shared_data, model_dir, n_train=4, n_val=4, same_split=True
    )
    module = DistillationModule(
        model=str(model_dir),
        learning_rate=1e-2,
        scheduler="constant",
        eval_every_n_epochs=0,
        export_dir=str(tmp_path / "fit-export"),
        lora=LORA,
        **kwargs,
    )
    trainer = distill_trainer(6, val_every=6)
    trainer.fit(module, datamodule=datamodule)
    return module, trainer, datamodule


def _plain_name(name: str) -> str:
    """A base weight's name inside the peft model, as the transformers model names it."""
    return name.removeprefix("base_model.model.").replace(".base_layer.", ".")


def _assert_only_adapters_moved(policy: SmallLM, start: dict, original: nn.Module) -> None:
    reference = original.state_dict()
    base = {k: v for k, v in policy.model.state_dict().items() if "lora_" not in k}
    assert len(base) == len(reference)
    for name, value in base.items():
        assert torch.equal(value, reference[_plain_name(name)]), name  # bit for bit
    adapters = {k: v for k, v in policy.model.state_dict().items() if "lora_" in k}
    assert adapters and all(not torch.equal(v, start[k]) for k, v in adapters.items())


def _adapter_numel(model: nn.Module) -> int:
    """Parameters LoRA adds: r * (in + out) for each adapted linear layer."""
    return sum(
        LORA.rank * (m.in_features + m.out_features)
        for m in model.modules()
        if hasattr(m, "lora_A") and isinstance(getattr(m, "base_layer", None), nn.Linear)
    )


class _Snapshot(L.Callback):
    """The adapter weights as training starts (A is random, B zero)."""

    def on_train_start(self, trainer, module):
        state = module.policy.model.state_dict()
        self.start = {k: v.clone() for k, v in state.items() if "lora_" in k}


@pytest.mark.parametrize("arch", ARCHS)
def test_ppo_and_distillation_train_the_adapters_alone(arch, model_dir, shared_data, tmp_path):
    original = _auto(arch).from_pretrained(model_dir)
    L.seed_everything(0)
    snap = _Snapshot()
    ppo = _ppo(model_dir, tmp_path)
    quiet_trainer(max_steps=4, callbacks=[snap]).fit(
        ppo, datamodule=_ppo_data(shared_data, model_dir)
    )
    _assert_only_adapters_moved(ppo.policy, snap.start, original)
    # in the optimizer: the adapters and the value head, nothing else
    optimized = [p for g in ppo.optimizers().optimizer.param_groups for p in g["params"]]
    head = sum(p.numel() for p in ppo.value_head.parameters())
    assert sum(p.numel() for p in optimized) == _adapter_numel(ppo.policy.model) + head > head
    assert {id(p) for p in optimized} == {id(p) for p in ppo.parameters() if p.requires_grad}

    snap = _Snapshot()
    distill = DistillationModule(
        model=str(model_dir), learning_rate=1e-2, eval_every_n_epochs=0, lora=LORA
    )
    distill.on_fit_end = lambda: None
    datamodule = distill_datamodule(
        tmp_path, shared_data, model_dir, n_train=4, n_val=4, same_split=True
    )
    trainer = distill_trainer(2, val_every=2)
    trainer.callbacks.append(snap)
    trainer.fit(distill, datamodule=datamodule)
    _assert_only_adapters_moved(distill.policy, snap.start, original)
    optimized = [p for g in trainer.optimizers[0].param_groups for p in g["params"]]
    assert sum(p.numel() for p in optimized) == _adapter_numel(distill.policy.model)


@pytest.mark.parametrize("arch", ARCHS)
def test_reference_is_the_base_model_without_a_second_copy(
    arch, model_dir, shared_data, tmp_path, monkeypatch
):
    loads = []
    original_load = SmallLM.from_pretrained.__func__
    monkeypatch.setattr(
        SmallLM,
        "from_pretrained",
        classmethod(lambda cls, spec, dtype=None: loads.append(spec) or original_load(cls, spec)),
    )
    L.seed_everything(0)
    module = _ppo(model_dir, tmp_path)
    datamodule = _ppo_data(shared_data, model_dir)
    quiet_trainer(max_steps=4).fit(module, datamodule=datamodule)
    assert loads == [str(model_dir)] and "_reference" not in module.__dict__
    assert isinstance(module.reference, AdapterFreeReference)

    base = SmallLM(_auto(arch).from_pretrained(model_dir).eval(), module.policy.tokenizer)
    batch = next(iter(datamodule.train_dataloader()))
    ids, mask = batch["input_ids"], batch["attention_mask"]
    labels = module.policy.generate(ids, mask, module.ppo.rollout)
    ours = module.reference.token_logprobs(ids, mask, labels, temperature=0.7)
    theirs = base.token_logprobs(ids, mask, labels, temperature=0.7)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    # the adapters are on again, and they did move the policy away from the base
    policy = module.policy.token_logprobs(ids, mask, labels, temperature=0.7)
    assert (policy - theirs).abs().max() > 1e-3

    # a reference that is another model is loaded as before
    other = _ppo(model_dir, tmp_path, reference=f"{model_dir}/")
    assert isinstance(other.reference, SmallLM) and loads[-1] == f"{model_dir}/"


def _generate(policy: SmallLM, batch) -> torch.Tensor:
    return policy.generate(batch["input_ids"], batch["attention_mask"])


@pytest.mark.parametrize("arch", ARCHS)
def test_exports_generate_what_the_adapted_module_generates(arch, model_dir, shared_data, tmp_path):
    module, trainer, datamodule = _distilled(tmp_path, shared_data, model_dir)
    batch = next(iter(datamodule._loader("train", shuffle=False, targets=True)))
    module.policy.eval()
    ours = _generate(module.policy, batch)
    tokenizer = module.policy.tokenizer
    base = _auto(arch).from_pretrained(model_dir).eval()
    assert not torch.equal(_generate(SmallLM(base, tokenizer), batch), ours)  # adapters matter

    # fit-end export: a plain transformers folder, the adapters merged in
    merged = _auto(arch).from_pretrained(tmp_path / "fit-export").eval()
    assert not isinstance(merged, PeftModel)
    assert not any("lora" in key for key in merged.state_dict())
    assert not (tmp_path / "fit-export/adapter_config.json").exists()
    assert torch.equal(_generate(SmallLM(merged, tokenizer), batch), ours)
    # the module kept its adapters, unmerged, and still generates the same
    assert module.policy.is_adapted and torch.equal(_generate(module.policy, batch), ours)

    # adapter-only: peft's folder on the base model
    folder = export_pretrained(module.policy, tmp_path / "adapter", adapter_only=True)
    assert (folder / "adapter_config.json").is_file()
    assert (folder / "tokenizer_config.json").is_file()
    adapted = PeftModel.from_pretrained(_auto(arch).from_pretrained(model_dir), folder).eval()
    assert torch.equal(_generate(SmallLM(adapted, tokenizer), batch), ours)

    # `lmcot export` of the checkpoint: merged by default, or the adapter alone
    ckpt = tmp_path / "lora.ckpt"
    trainer.save_checkpoint(ckpt)
    main(["export", str(ckpt), str(tmp_path / "from-ckpt")])
    exported = _auto(arch).from_pretrained(tmp_path / "from-ckpt").eval()
    assert not any("lora" in key for key in exported.state_dict())
    assert torch.equal(_generate(SmallLM(exported, tokenizer), batch), ours)
    main(["export", str(ckpt), str(tmp_path / "ckpt-adapter"), "--adapter_only", "true"])
    adapted = PeftModel.from_pretrained(
        _auto(arch).from_pretrained(model_dir), tmp_path / "ckpt-adapter"
    ).eval()
    assert torch.equal(_generate(SmallLM(adapted, tokenizer), batch), ours)
    # each export's model card says what the folder holds
    from huggingface_hub import ModelCard

    merged_card = ModelCard.load(tmp_path / "from-ckpt" / "README.md")
    adapter_card = ModelCard.load(tmp_path / "ckpt-adapter" / "README.md")
    assert merged_card.data.library_name == "transformers"
    assert adapter_card.data.library_name == "peft"
    assert "holds a LoRA adapter" in adapter_card.text


def test_export_adapter_only_of_a_run_without_lora_is_refused(tmp_path, shared_data, tiny_t5_dir):
    from lm_guided_cot.stages.export import export_checkpoint

    datamodule = distill_datamodule(
        tmp_path, shared_data, tiny_t5_dir, n_train=4, n_val=4, same_split=True
    )
    module = DistillationModule(model=str(tiny_t5_dir), eval_every_n_epochs=0)
    module.on_fit_end = lambda: None
    trainer = distill_trainer(1)
    trainer.fit(module, datamodule=datamodule)
    trainer.save_checkpoint(tmp_path / "full.ckpt")
    with pytest.raises(ConfigurationError, match=r"--adapter_only: .* without LoRA adapters"):
        export_checkpoint(str(tmp_path / "full.ckpt"), str(tmp_path / "out"), adapter_only=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rank": 0}, "lora.rank must be at least 1, got 0"),
        ({"rank": 2.5}, "lora.rank must be a whole number, got 2.5"),
        ({"alpha": 0}, "lora.alpha must be positive, got 0"),
        ({"alpha": float("nan")}, "lora.alpha must be positive, got nan"),
        ({"dropout": 1.0}, r"lora.dropout must be in \[0, 1\), got 1.0"),
        ({"dropout": -0.1}, r"lora.dropout must be in \[0, 1\), got -0.1"),
        ({"target_modules": []}, "lora.target_modules must name at least one layer"),
        ({"target_modules": ["q", ""]}, "lora.target_modules must name at least one layer"),
        ({"target_modules": "all"}, "lora.target_modules must be a list of layer names or"),
    ],
)
def test_bad_lora_settings_are_refused_naming_the_option(settings, message):
    with pytest.raises(ConfigurationError, match=message):
        LoRAConfig(**settings)
    with pytest.raises(ConfigurationError, match=message):  # as a module's YAML gives it
        DistillationModule(model="unused", lora=settings)


@pytest.mark.parametrize("arch", ARCHS)
def test_target_modules_that_the_model_lacks_are_refused(arch, model_dir):
    policy = SmallLM.from_pretrained(str(model_dir))
    with pytest.raises(ConfigurationError, match=r"lora.target_modules=\['nope'\] does not fit"):
        policy.add_adapters(LoRAConfig(target_modules=["nope"]))
    linear = {n for n, m in policy.model.named_modules() if isinstance(m, nn.Linear)}
    policy.add_adapters(LoRAConfig(target_modules="all-linear"))
    adapted = {
        n.removeprefix("base_model.model.")
        for n, m in policy.model.named_modules()
        if hasattr(m, "lora_A")
    }
    assert adapted == linear - {"lm_head"}  # every linear layer but the output head


def test_export_adapter_only_needs_lora():
    for module in (DistillationModule, PPOModule):
        kwargs = {"reward": VowelShareReward()} if module is PPOModule else {}
        with pytest.raises(ConfigurationError, match=f"{module.__name__}.export_adapter_only"):
            module(model="unused", export_adapter_only=True, **kwargs)


@pytest.mark.parametrize("arch", ARCHS)
def test_the_adapters_come_back_on_when_reference_scoring_fails(arch, model_dir, shared_data):
    policy = SmallLM.from_pretrained(str(model_dir))
    policy.add_adapters(LORA)
    with torch.no_grad():  # adapters that change the output (B starts at 0)
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.1)
    batch = next(iter(_ppo_data(shared_data, model_dir).train_dataloader()))
    ids, mask = batch["input_ids"], batch["attention_mask"]
    labels = policy.generate(ids, mask)
    adapted = policy.token_logprobs(ids, mask, labels)
    reference = AdapterFreeReference(policy)
    base = reference.token_logprobs(ids, mask, labels)
    assert (adapted - base).abs().max() > 1e-3

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    real, policy.token_logprobs = policy.token_logprobs, broken
    with pytest.raises(RuntimeError, match="out of memory"):
        reference.token_logprobs(ids, mask, labels)
    policy.token_logprobs = real
    # a failed reference call (caught by a retrying caller) leaves the policy adapted
    torch.testing.assert_close(policy.token_logprobs(ids, mask, labels), adapted)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_small_lm_method_works_under_adapters(arch, model_dir, shared_data, tmp_path):
    policy = SmallLM.from_pretrained(str(model_dir))
    plain = SmallLM.from_pretrained(str(model_dir))
    policy.add_adapters(LoRAConfig(rank=2, dropout=0.3))
    assert policy.is_seq2seq == (arch == "seq2seq")
    policy.disable_dropout()
    assert all(m.p == 0 for m in policy.model.modules() if isinstance(m, nn.Dropout))
    policy.enable_gradient_checkpointing()
    assert policy.model.is_gradient_checkpointing
    batch = next(iter(_ppo_data(shared_data, model_dir).train_dataloader()))
    ids, mask = batch["input_ids"], batch["attention_mask"]
    labels = plain.generate(ids, mask)
    # B starts at zero: the fresh adapters change nothing, in generation or scoring
    assert torch.equal(policy.generate(ids, mask), labels)
    policy.model.train()
    out = policy.rationale_forward(ids, mask, labels, with_entropy=True)
    torch.testing.assert_close(out.logprobs, plain.token_logprobs(ids, mask, labels))
    loss = policy.sft_loss({"input_ids": ids, "attention_mask": mask, "labels": labels})
    loss.backward()
    grads = {n for n, p in policy.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in n for n in grads)
    assert policy.base_model.generation_config.to_dict() == plain.model.generation_config.to_dict()
    with pytest.raises(ValueError, match="already has adapters"):
        policy.add_adapters(LORA)
    with pytest.raises(ValueError, match="no adapters to disable"), plain.adapters_disabled():
        pass


def _resume_run(model_dir, shared_data, tmp_path, epochs, ckpt_path=None):
    return fit_with_epoch_checkpoints(
        lambda: _ppo(model_dir, tmp_path),
        lambda: _ppo_data(shared_data, model_dir),
        tmp_path,
        epochs,
        ckpt_path,
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_a_resumed_lora_run_ends_like_the_uninterrupted_one(arch, model_dir, shared_data, tmp_path):
    full, full_steps = _resume_run(model_dir, shared_data, tmp_path / "full", epochs=4)
    _resume_run(model_dir, shared_data, tmp_path / "part", epochs=2)
    resumed, resumed_steps = _resume_run(
        model_dir,
        shared_data,
        tmp_path / "part",
        epochs=4,
        ckpt_path=str(tmp_path / "part/ckpt/epoch=1.ckpt"),
    )
    assert len(full_steps) == 8 and len(resumed_steps) == 4
    for a, b in zip(full_steps[4:], resumed_steps):
        for key in ("reward/total_mean", "kl/mean", "ppo/policy_loss", "ppo/value_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key
    # the adapters moved off the reference: the KL is well above rounding noise (B starts at
    # 0, so the first step's KL is that noise)
    assert full_steps[0]["kl/k3"] < 1e-6 < 1e-3 < max(s["kl/k3"] for s in full_steps[4:])
    for (name, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), name


@pytest.mark.parametrize("arch", ARCHS)
def test_adapter_exports_load_by_spec_stacked_and_moved(tmp_path, model_dir, arch):
    """What docs/results commits: a stage-1 adapter on the base and a stage-2 adapter on the
    stage-1 one. Loading either folder as a spec gives the adapted model merged, and the pair
    still loads after both folders move together (the stage-2 base is saved relative)."""
    import json
    import shutil

    from lm_guided_cot.model_loading import load_model

    torch.manual_seed(0)
    tokenizer = SmallLM.from_pretrained(str(model_dir)).tokenizer
    batch = tokenizer(
        ["Who wrote it?", "Where was the author born then?"], return_tensors="pt", padding=True
    )

    def trained(spec):
        policy = SmallLM.from_pretrained(spec)
        policy.add_adapters(LORA)
        with torch.no_grad():  # peft starts B at 0: move every adapter weight
            for name, weight in policy.model.named_parameters():
                if "lora_" in name:
                    weight.add_(torch.randn_like(weight) * 0.3)
        return policy

    stage1 = trained(str(model_dir))
    kd = export_pretrained(stage1, tmp_path / "runs/distill/export", adapter_only=True)
    assert json.loads((kd / "adapter_config.json").read_text())["base_model_name_or_path"] == (
        os.path.relpath(model_dir, kd)
    )
    stage2 = trained(str(kd))
    rl = export_pretrained(stage2, tmp_path / "runs/ppo/export", adapter_only=True)
    assert json.loads((rl / "adapter_config.json").read_text())["base_model_name_or_path"] == (
        "../../distill/export"
    )
    want_kd, want_rl = _generate(stage1, batch), _generate(stage2, batch)
    assert not torch.equal(want_kd, want_rl)  # the second adapter changed the model

    for folder, want in ((kd, want_kd), (rl, want_rl)):
        loaded = SmallLM.from_pretrained(str(folder))
        assert not loaded.is_adapted  # merged: an ordinary model, as a whole export would be
        assert torch.equal(_generate(loaded, batch), want)

    # committed side by side (guides/kd, guides/kd_rl), the stage-2 base rewritten to ../kd
    guides = tmp_path / "elsewhere/guides"
    shutil.copytree(kd, guides / "kd")
    shutil.copytree(rl, guides / "kd_rl")
    set_adapter_base(guides / "kd_rl", "../kd")
    shutil.rmtree(tmp_path / "runs")
    assert torch.equal(_generate(SmallLM.from_pretrained(str(guides / "kd_rl")), batch), want_rl)
    assert adapter_base(guides / "kd_rl") == str(guides / "kd_rl" / "../kd")
    assert load_model(str(guides / "kd")).config.is_encoder_decoder == (arch == "seq2seq")
