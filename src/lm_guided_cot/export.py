"""``lmcot export``: turn a training checkpoint into a ``save_pretrained`` folder.

Takes a Lightning checkpoint file of either stage, or the folder a DeepSpeed strategy saves
(ZeRO 2 or 3 shards, consolidated to fp32 first; needs ``deepspeed``). The small LM's
architecture and tokenizer come from the model the run started from (the checkpoint's
``model`` hyperparameter, or ``--model``); its weights from the checkpoint. The PPO value head
is not part of the export: the folder is the small LM alone, for stage 2, ``lmcot evaluate``
or any ``AutoModelFor...from_pretrained``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from lm_guided_cot.modules.reporting import export_pretrained
from lm_guided_cot.policy import SmallLM

POLICY_PREFIX = "policy."


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint as one dict: a Lightning file, or a DeepSpeed folder consolidated to fp32."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if not path.is_dir():
        return torch.load(path, map_location="cpu", weights_only=True)
    try:
        from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict
    except ImportError as err:  # pragma: no cover - lightning always has it
        raise RuntimeError(f"{path}: cannot read DeepSpeed checkpoints ({err})") from err
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return convert_zero_checkpoint_to_fp32_state_dict(path, Path(tmp) / "consolidated.pt")
        except ModuleNotFoundError as err:
            raise RuntimeError(
                f"{path} is a DeepSpeed (ZeRO) checkpoint folder; consolidating it needs "
                "deepspeed: pip install deepspeed"
            ) from err


def export_checkpoint(ckpt_path: str, output: str, model: str | None = None) -> str:
    """Write the small LM of a checkpoint as a folder that ``from_pretrained`` loads.

    Args:
        ckpt_path: a ``.ckpt`` file, or a DeepSpeed checkpoint folder (ZeRO 2/3).
        output: the folder to write (model and tokenizer; replaced whole or not at all).
        model: the model the run started from, for architecture and tokenizer (default: the
            checkpoint's ``model`` hyperparameter).
    """
    checkpoint = load_checkpoint(Path(ckpt_path))
    spec = model or checkpoint.get("hyper_parameters", {}).get("model")
    if not spec:
        raise ValueError(f"{ckpt_path}: no 'model' hyperparameter; pass --model")
    weights = {
        key.removeprefix(POLICY_PREFIX): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(POLICY_PREFIX)
    }
    if not weights:
        raise ValueError(
            f"{ckpt_path}: no '{POLICY_PREFIX}*' weights in the checkpoint's state_dict"
        )
    policy = SmallLM.from_pretrained(spec)
    result = policy.load_state_dict(weights, strict=False)
    # tied embeddings may be stored once; anything else missing means a mismatched --model
    missing = [k for k in result.missing_keys if k not in _tied_keys(policy)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{ckpt_path}: the checkpoint's weights do not fit {spec} "
            f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})"
        )
    return str(export_pretrained(policy, output))


def _tied_keys(policy: SmallLM) -> set[str]:
    tied = getattr(policy.model, "_tied_weights_keys", None) or []
    if isinstance(tied, dict):
        tied = list(tied)
    return {f"model.{key}" for key in tied}
