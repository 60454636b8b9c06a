"""LoRA adapters (through ``peft``) for the small LM of either stage.

Only the adapters train; the base weights stay as loaded, which is also what lets stage 2 use
the policy with its adapters switched off as the KL reference instead of a second model.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Literal

from lm_guided_cot.errors import ConfigurationError, check_at_least, check_between, check_positive


@dataclass
class LoRAConfig:
    """Low-rank adapters on the small LM's linear layers (biases are not trained).

    Args:
        rank: rank r of each adapter's two matrices (at least 1).
        alpha: scale numerator: an adapter adds ``alpha / rank`` times its product (above 0).
        dropout: dropout on the adapters' input, in [0, 1). Acts in stage 1 only: stage 2
            sets every dropout to 0 (its log-probs must not depend on the mode).
        target_modules: names (or name suffixes) of the layers that get adapters; ``None``
            takes peft's default for the architecture (T5: ``q``, ``v``; Llama: ``q_proj``,
            ``v_proj``), ``all-linear`` every linear layer but the output head.
    """

    rank: int = 8
    alpha: float = 16
    dropout: float = 0.0
    target_modules: list[str] | Literal["all-linear"] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int):
            raise ConfigurationError(f"lora.rank must be a whole number, got {self.rank!r}")
        check_at_least("lora.rank", self.rank, 1)
        check_positive("lora.alpha", self.alpha)
        check_between("lora.dropout", self.dropout, 0, 1, open_high=True)
        targets = self.target_modules
        if isinstance(targets, str):
            if targets != "all-linear":
                raise ConfigurationError(
                    f"lora.target_modules must be a list of layer names or 'all-linear', got "
                    f"{targets!r}"
                )
        elif targets is not None:
            if not targets or not all(isinstance(t, str) and t for t in targets):
                raise ConfigurationError(
                    "lora.target_modules must name at least one layer (or be null for peft's "
                    f"default, or 'all-linear'), got {targets!r}"
                )
            self.target_modules = list(targets)

    def to_peft(self, seq2seq: bool) -> Any:
        """The ``peft.LoraConfig`` of these settings for a seq2seq or a causal LM."""
        import peft

        return peft.LoraConfig(
            task_type=peft.TaskType.SEQ_2_SEQ_LM if seq2seq else peft.TaskType.CAUSAL_LM,
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules,
            bias="none",
        )


def add_adapters(model: Any, config: LoRAConfig) -> Any:
    """``model`` wrapped in a ``peft`` model with fresh adapters; only they require grad."""
    import peft

    seq2seq = bool(model.config.is_encoder_decoder)
    try:
        return peft.get_peft_model(model, config.to_peft(seq2seq))
    except ValueError as err:  # peft's words for targets it cannot find or has no default for
        raise ConfigurationError(
            f"lora.target_modules={config.target_modules!r} does not fit "
            f"{type(model).__name__}: {err}"
        ) from None


def is_adapted(model: Any) -> bool:
    """Whether ``model`` is a ``peft`` model (carries adapters)."""
    peft = sys.modules.get("peft")  # not imported yet: nothing can be a peft model
    return peft is not None and isinstance(model, peft.PeftModel)
