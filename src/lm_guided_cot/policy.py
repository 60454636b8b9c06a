"""The small LM behind one interface, whether it is seq2seq (T5) or causal (Llama, SmolLM2).

Batches hold the prompt left-padded (``input_ids``, ``attention_mask``) and the rationale
right-padded (``labels``, -100 on padding). For a seq2seq model the rationale is the decoder
target; for a causal model the two are laid end to end,

    [pad pad p1 p2 p3 | r1 r2 r3 eos pad]

so the rationale tokens are always the last ``T`` positions and their logits come from
``logits_to_keep = T + 1`` (no logits are computed for the prompt). Position ids count only
real tokens, so left padding does not shift them.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lm_guided_cot.data.targets import IGNORE_INDEX, encode_targets
from lm_guided_cot.errors import (
    ConfigurationError,
    check_at_least,
    check_positive,
    check_probability,
)
from lm_guided_cot.lora import LoRAConfig, add_adapters, is_adapted
from lm_guided_cot.model_loading import load_model, load_tokenizer
from lm_guided_cot.rl.core import entropy_from_logits


@dataclass
class GenerationConfig:
    """How the small LM writes rationales.

    Args:
        max_new_tokens: longest rationale in tokens (at least 1).
        do_sample: sample (True) or decode greedily / with beams (False).
        temperature: sampling temperature (at least 0; above 0 when sampling).
        top_p: nucleus sampling mass, in (0, 1].
        top_k: top-k sampling (0 for off).
        num_beams: beam search width when not sampling (at least 1).
        repetition_penalty: 1.0 for none (above 0).
    """

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    num_beams: int = 1
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        name = self._option_prefix()
        check_at_least(f"{name}.max_new_tokens", self.max_new_tokens, 1)
        check_at_least(f"{name}.temperature", self.temperature, 0)
        if self.do_sample and self.temperature == 0:
            raise ConfigurationError(
                f"{name}.temperature must be positive when do_sample is true, got "
                f"{self.temperature}"
            )
        check_probability(f"{name}.top_p", self.top_p, open_low=True)
        check_at_least(f"{name}.top_k", self.top_k, 0)
        check_at_least(f"{name}.num_beams", self.num_beams, 1)
        check_positive(f"{name}.repetition_penalty", self.repetition_penalty)

    def _option_prefix(self) -> str:
        """How messages name this config's options."""
        return "GenerationConfig"

    def to_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "num_beams": self.num_beams,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs


class ValueHead(nn.Module):
    """A scalar value per position from the small LM's last hidden states (shares its backbone)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.linear.weight, std=1.0 / (hidden_size + 1))
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.to(self.linear.weight.dtype)).squeeze(-1)


@dataclass
class RationaleForward:
    """What one forward pass over given rationales yields, each ``[B, T]``."""

    logprobs: torch.Tensor
    values: torch.Tensor | None = None
    entropy: torch.Tensor | None = None


def hidden_size(model: PreTrainedModel) -> int:
    """Width of the last hidden states (``d_model`` for T5, ``hidden_size`` for the rest)."""
    config = model.config
    return int(getattr(config, "hidden_size", None) or config.d_model)


class SmallLM(nn.Module):
    """A seq2seq or causal LM with its tokenizer: rationale log-probs, loss and generation."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.is_seq2seq = bool(model.config.is_encoder_decoder)
        self.spec: str | None = None  # what it was loaded from: an adapter export's base

    @classmethod
    def from_pretrained(cls, spec: str, dtype: torch.dtype | None = None) -> SmallLM:
        """Load from a hub id, a folder, ``folder#file.gguf`` or ``smollm2``."""
        small_lm = cls(load_model(spec, dtype), load_tokenizer(spec, "left"))
        small_lm.spec = spec
        return small_lm

    # ---- adapters ----------------------------------------------------------------------------

    def add_adapters(self, config: LoRAConfig) -> None:
        """Wrap the model in ``peft`` LoRA adapters: from now on only they require grad."""
        if self.is_adapted:
            raise ValueError("the small LM already has adapters")
        self.model = add_adapters(self.model, config)

    @property
    def is_adapted(self) -> bool:
        """Whether the model carries LoRA adapters."""
        return is_adapted(self.model)

    @property
    def base_model(self) -> PreTrainedModel:
        """The transformers model itself (under adapters, the one they were added to)."""
        return self.model.get_base_model() if self.is_adapted else self.model

    @contextlib.contextmanager
    def adapters_disabled(self) -> Iterator[None]:
        """Inside this block the model computes what its base weights alone compute."""
        if not self.is_adapted:
            raise ValueError("the small LM has no adapters to disable")
        with self.model.disable_adapter():
            yield

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each layer's activations in backward instead of keeping them.

        Activation memory drops to about one layer's; a training forward costs about a third
        more. Non-reentrant checkpointing: it needs no ``requires_grad`` on the inputs and works
        under DeepSpeed ZeRO 3.
        """
        self.model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )

    def disable_dropout(self) -> None:
        """Set every dropout probability to 0, so that train mode computes what eval mode does.

        For PPO: the log-probs of a rollout and of its updates must agree, and gradient
        checkpointing only acts in train mode. Covers ``nn.Dropout`` modules and the float
        probabilities that attention layers pass to their kernels in train mode (T5's
        ``dropout``, Llama's ``attention_dropout``: any float attribute named ``*dropout*``).
        """
        for module in self.model.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
            for name, value in list(vars(module).items()):
                if "dropout" in name and isinstance(value, float):
                    setattr(module, name, 0.0)

    # ---- scoring ---------------------------------------------------------------------------

    def _forward_target_logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, Any]:
        """Logits predicting each rationale position: ``[B, T, V]``, and the model output."""
        target_ids = labels.clamp(min=0)
        target_mask = (labels != IGNORE_INDEX).long()
        if not self.is_seq2seq:
            _require_left_padding(attention_mask)
        if self.is_seq2seq:
            decoder_input_ids = self.model._shift_right(target_ids)
            # No decoder_attention_mask: targets are right-padded and the decoder is causal, so
            # no real position ever sees a pad; passing one made transformers build padded 4D
            # masks per layer (+9% peak memory in bin/bench_distill.py) for the same numbers.
            output = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids,
                use_cache=False,  # teacher forcing: a key/value cache would only hold memory
                **kwargs,
            )
            return output.logits, output
        sequence = torch.cat([input_ids, target_ids], dim=1)
        mask = torch.cat([attention_mask, target_mask], dim=1)
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
        steps = labels.shape[1]
        output = self.model(
            input_ids=sequence,
            attention_mask=mask,
            position_ids=position_ids,
            logits_to_keep=steps + 1,
            use_cache=False,
            **kwargs,
        )
        # Position t's logits predict token t+1: keep those predicting the T rationale tokens.
        return output.logits[:, :-1], output

    def token_logprobs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Log-probability of each rationale token, ``[B, T]`` (0 where ``labels`` is -100)."""
        return self.rationale_forward(
            input_ids, attention_mask, labels, temperature=temperature
        ).logprobs

    def rationale_forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        value_head: ValueHead | None = None,
        with_entropy: bool = False,
        entropy_grad: bool = False,
        temperature: float = 1.0,
    ) -> RationaleForward:
        """Per-token log-probs of the rationale, and values / entropies when asked: all ``[B, T]``.

        ``temperature`` divides the logits first, as the sampler did: log-probs and entropies
        are then those of the distribution the rationale was drawn from. The value of position t reads the hidden state that predicts rationale token t
        (last decoder layer for seq2seq, the response slice for causal models). Entropies are
        computed without autograd (a few rows at a time) unless ``entropy_grad``: a bonus in the
        loss needs their gradient, a logged number does not.
        """
        want_hidden = value_head is not None
        logits, output = self._forward_target_logits(
            input_ids, attention_mask, labels, output_hidden_states=want_hidden
        )
        logits = logits.float()
        if temperature != 1.0:
            logits = logits / temperature
        logprobs = gather_logprobs(logits, labels)
        values = entropy = None
        if want_hidden:
            if self.is_seq2seq:
                hidden = output.decoder_hidden_states[-1]
            else:
                steps = labels.shape[1]
                hidden = output.hidden_states[-1][:, -(steps + 1) : -1]
            values = value_head(hidden).float() * (labels != IGNORE_INDEX)
        if with_entropy:
            with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
                entropy = entropy_from_logits(logits, chunk_rows=None if entropy_grad else 4)
        return RationaleForward(logprobs, values, entropy)

    def sft_loss(
        self, batch: dict[str, torch.Tensor], count: torch.Tensor | float | None = None
    ) -> torch.Tensor:
        """Mean cross-entropy over the rationale tokens of a batch.

        ``count`` replaces the batch's token count as the divisor (data-parallel training
        passes the mean count over ranks, see ``rl.core.masked_mean``).
        """
        logits, _ = self._forward_target_logits(
            batch["input_ids"], batch["attention_mask"], batch["labels"]
        )
        labels = batch["labels"].reshape(-1)
        total = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            labels,
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        divisor = (labels != IGNORE_INDEX).sum() if count is None else torch.as_tensor(count)
        return total / divisor.to(total.dtype).clamp(min=1.0)

    # ---- generation ----------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        config: GenerationConfig | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Rationale token ids ``[B, T]``, right-padded with -100 after the first EOS.

        Always in eval mode (the caller's mode is restored after): no dropout while sampling,
        whatever mode the caller trains in. ``config`` is all that shapes decoding: the
        model's own ``generation_config`` (a checkpoint's ``no_repeat_ngram_size``,
        ``suppress_tokens``, ``top_k=50``...) lends only its special token ids, since PPO
        scores rollouts with the distribution ``config`` describes.
        """
        config = config or GenerationConfig()
        if not self.is_seq2seq:
            _require_left_padding(attention_mask)
        was_training = self.model.training
        # on the transformers model: a peft wrapper would keep an attribute set on it to itself
        base = self.base_model
        own_config = base.generation_config
        self.model.eval()
        try:
            base.generation_config = _special_tokens_only(own_config)
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                **config.to_kwargs(),
                **kwargs,
            )
        finally:
            base.generation_config = own_config
            self.model.train(was_training)
        new = output[:, 1:] if self.is_seq2seq else output[:, input_ids.shape[1] :]
        return mask_after_eos(new, self.tokenizer.eos_token_id)

    def decode(self, labels: torch.Tensor) -> list[str]:
        """Texts of rationale ids (``-100`` and special tokens dropped)."""
        return [
            self.tokenizer.decode(
                [t for t in row.tolist() if t != IGNORE_INDEX], skip_special_tokens=True
            ).strip()
            for row in labels
        ]

    def encode_targets(self, texts: list[str], max_tokens: int | None = None) -> torch.Tensor:
        """Rationale texts as right-padded ``labels`` (EOS appended, -100 padding)."""
        return encode_targets(self.tokenizer, texts, max_tokens)

    def save_pretrained(self, folder: str, adapter_only: bool = False) -> None:
        """Write model and tokenizer so that ``AutoModelFor*.from_pretrained(folder)`` loads them.

        Adapters are merged into a copy of the model first (this one keeps them, for more
        training; the copy costs one model's memory for a moment), so the folder is a plain
        model with no adapter weights. ``adapter_only`` writes peft's adapter folder instead
        (``PeftModel.from_pretrained(base, folder)`` loads it), with the tokenizer.
        """
        if not self.is_adapted:
            if adapter_only:
                raise ValueError("adapter_only: the small LM has no adapters")
            self.model.save_pretrained(folder)
        elif adapter_only:
            self.model.save_pretrained(folder)
        else:
            with torch.no_grad():
                merged = copy.deepcopy(self.model).merge_and_unload()
            merged.save_pretrained(folder)
            del merged
        self.tokenizer.save_pretrained(folder)


class AdapterFreeReference:
    """An adapted small LM scored with its adapters off: its base weights as a frozen reference,
    with no second copy of the model."""

    def __init__(self, policy: SmallLM) -> None:
        self.policy = policy

    def token_logprobs(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """``SmallLM.token_logprobs`` of the base weights, without autograd."""
        with torch.no_grad(), self.policy.adapters_disabled():
            return self.policy.token_logprobs(*args, **kwargs)


def _special_tokens_only(config: transformers.GenerationConfig) -> transformers.GenerationConfig:
    """A generation config with ``config``'s special token ids and every other setting default."""
    keep = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
    return transformers.GenerationConfig(**{k: getattr(config, k, None) for k in keep})


def _require_left_padding(attention_mask: torch.Tensor) -> None:
    """Refuse right-padded causal prompts: the rationale would follow pad tokens, and its first
    token be predicted from a pad position."""
    if attention_mask.shape[1] and not bool(attention_mask[:, -1].all()):
        raise ValueError(
            "a causal small LM needs left-padded prompts (tokenizer padding_side='left'; the "
            "data module pads so): a right-padded prompt puts pad tokens between the prompt "
            "and its rationale"
        )


def gather_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[labels]`` per position, 0 where labels are -100.

    As the chosen logit minus the log-sum-exp: a full ``log_softmax`` would put a second
    ``[B, T, V]`` tensor beside the logits (and keep it for backward) to read one entry per row.
    """
    mask = labels != IGNORE_INDEX
    chosen = logits.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (chosen - logits.logsumexp(dim=-1)) * mask


def mask_after_eos(ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """Keep tokens up to and including the first EOS; -100 after it (and for pad past the end)."""
    is_eos = ids == eos_token_id
    after = (is_eos.cumsum(dim=1) - is_eos.long()) > 0  # strictly after the first EOS
    return ids.masked_fill(after, IGNORE_INDEX)
