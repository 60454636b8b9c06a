"""Loading a model spec (``model_specs``) as transformers objects: the tokenizer, the model, an
adapter folder merged into its base. The one place torch and transformers enter for a spec."""

from __future__ import annotations

from pathlib import Path

from lm_guided_cot.errors import InputError
from lm_guided_cot.model_specs import adapter_base, is_adapter_folder, resolve_spec


def load_tokenizer(spec: str, padding_side: str | None = None):
    """The tokenizer of a spec, with a pad token (EOS where the model has none)."""
    from transformers import AutoTokenizer

    name, gguf_file = resolve_spec(spec)
    tokenizer = AutoTokenizer.from_pretrained(
        name, **({"gguf_file": gguf_file} if gguf_file else {})
    )
    if tokenizer.pad_token is None:
        # Causal LMs often ship without a pad token; padding is masked out, so EOS serves.
        tokenizer.pad_token = tokenizer.eos_token
    if padding_side is not None:
        tokenizer.padding_side = padding_side
    return tokenizer


def load_model(spec: str, dtype=None):
    """A seq2seq or causal LM for a spec, chosen by its config (float32 unless ``dtype``)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    name, gguf_file = resolve_spec(spec, model=True)
    if gguf_file is None and is_adapter_folder(name):
        return _load_adapted(Path(name), dtype)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    config = AutoConfig.from_pretrained(name, **kwargs)
    model_class = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    model = model_class.from_pretrained(name, dtype=dtype or torch.float32, **kwargs)
    if gguf_file:
        # transformers dequantises GGUF weights to ordinary tensors but still marks the model as
        # "quantized with gguf", which save_pretrained refuses; nothing quantized is left.
        model.hf_quantizer = None
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
        model.is_quantized = False
    return model


def _load_adapted(folder: Path, dtype):
    """The base model (itself possibly an adapter folder) with the folder's adapters merged in:
    an ordinary transformers model, as if the adapted model had been exported whole."""
    import peft

    base = load_model(adapter_base(folder), dtype)
    try:
        adapted = peft.PeftModel.from_pretrained(base, str(folder))
    except (ValueError, RuntimeError, KeyError) as err:
        raise InputError(f"{folder}: the adapters do not fit their base model ({err})") from None
    return adapted.merge_and_unload()
