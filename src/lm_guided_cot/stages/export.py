"""Exporting the small LM as a ``save_pretrained`` folder: at the end of a stage's fit, and from
a training checkpoint (``lmcot export``).

``export_checkpoint`` takes a Lightning checkpoint file of either stage, or the folder a
DeepSpeed strategy saves (ZeRO 2 or 3 shards, consolidated to fp32 first; needs ``deepspeed``).
The small LM's architecture and tokenizer come from the model the run started from (the
checkpoint's ``model`` hyperparameter, or ``--model``); its weights from the checkpoint. The PPO
value head is not part of the export: the folder is the small LM alone, for stage 2,
``lmcot evaluate`` or any ``AutoModelFor...from_pretrained``. A run with LoRA adapters (its
``lora`` hyperparameter) gets them added to that model before its weights load; they are merged
in, or written alone as peft's adapter folder with ``adapter_only``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from lm_guided_cot.errors import ConfigurationError, InputError, OutputError
from lm_guided_cot.files import check_writable, output_error
from lm_guided_cot.hparams import as_dataclass
from lm_guided_cot.lora import LoRAConfig
from lm_guided_cot.model_card import CARD_FILE, build_card, card_facts, describe_object
from lm_guided_cot.model_specs import portable_base, require_local_model, set_adapter_base
from lm_guided_cot.output_folders import EXPORT_MARKER, check_export_target, marker_text
from lm_guided_cot.paths import expand_path
from lm_guided_cot.policy import SmallLM
from lm_guided_cot.stages.distributed import full_weights
from lm_guided_cot.stages.run_logs import run_dir


def export_pretrained(
    policy: SmallLM,
    folder: str | os.PathLike,
    card: dict[str, Any] | None = None,
    adapter_only: bool = False,
    overwrite: bool = False,
    option: str | None = None,
) -> Path:
    """Write the small LM and its tokenizer to ``folder`` whole or not at all, with the model
    card of ``card`` (``model_card.card_facts``) as its README.md.

    Adapters are merged in, or written alone with ``adapter_only`` (``SmallLM.save_pretrained``).

    They are saved to a temporary folder beside it and renamed into place, so a crash never
    leaves a half-written export that ``from_pretrained`` would half-load. What is at
    ``folder`` already is replaced only when the project wrote it (an earlier export) or
    ``overwrite`` is set (``output_folders.check_export_target``; ``option`` names the setting).
    """
    folder = Path(folder)
    check_export_target(folder, overwrite, option)
    place = folder.absolute()  # "." has no name to make a sibling of
    try:
        place.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=place.parent, prefix=f".{place.name}.tmp-"))
    except OSError as err:
        raise output_error(folder, err) from None
    try:
        policy.save_pretrained(str(tmp), adapter_only=adapter_only)
        if adapter_only and policy.spec is not None:
            set_adapter_base(tmp, portable_base(policy.spec, folder))
        if card is not None:
            config = policy.base_model.config
            architecture = (
                getattr(config, "architectures", None) or [type(policy.base_model).__name__]
            )[0]
            card = {**card, "architecture": architecture}
            card["encoder_decoder"] = bool(getattr(config, "is_encoder_decoder", False))
            card["adapter_only"] = adapter_only
            (tmp / CARD_FILE).write_text(build_card(card), encoding="utf-8")
        (tmp / EXPORT_MARKER).write_text(marker_text(), encoding="utf-8")  # last: it is whole
        if folder.exists() and not folder.is_dir():  # a file, and overwrite said so
            folder.unlink()
            tmp.rename(folder)
        elif folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise output_error(folder, err) from None
        raise
    return folder


def export_dir(module: Any, configured: str | None) -> str:
    """Where a stage writes its export: ``configured`` (``~``/``$VARS`` expanded) or ``<run dir>/export``."""
    if configured:
        return expand_path(configured)
    trainer = module.trainer
    return os.path.join(trainer.strategy.broadcast(run_dir(trainer)), "export")


def export_at_fit_end(module: Any, what: str) -> None:
    """Rank 0 exports the module's policy (``what`` names it in the message)."""
    # export_dir broadcasts from rank 0, so every rank must ask for it, not only rank 0
    folder = export_dir(module, module.hparams.export_dir)
    with full_weights(module.trainer, module.policy):
        if module.trainer.is_global_zero:
            adapter_only = module.hparams.get("export_adapter_only", False)
            card = fit_end_card(module)
            option = f"{type(module).__name__}.export_dir"
            export_pretrained(module.policy, folder, card, adapter_only, option=option)
            print(f"exported {what} to {folder}")
    module.trainer.strategy.barrier("export")


def check_export_at_fit_start(module: Any) -> None:
    """Refuse, before training, an export path whose files the export would delete."""
    configured = module.hparams.export_dir
    if configured and module.trainer.is_global_zero:
        option = f"{type(module).__name__}.export_dir"
        check_export_target(export_dir(module, configured), option=option)


def fit_end_card(module: Any) -> dict[str, Any]:
    """The model card's facts at the end of ``fit``: hyperparameters, reward, logged metrics."""
    trainer = module.trainer
    datamodule = getattr(trainer, "datamodule", None)
    reward = getattr(module, "reward", None)
    return card_facts(
        module.hparams,
        stage=2 if "ppo" in module.hparams else 1,
        data=getattr(datamodule, "hparams", None),
        data_source=getattr(datamodule, "source", None),
        reward=describe_object(reward) if reward is not None else None,
        metrics=trainer.callback_metrics,
        progress={"global_step": trainer.global_step, "epoch": trainer.current_epoch},
    )


POLICY_PREFIX = "policy."


_WHAT = "pass a .ckpt file that lmcot fit saved, or the folder a DeepSpeed strategy saved"


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint as one dict: a Lightning file, or a DeepSpeed folder consolidated to fp32.

    A missing path, a file ``torch.load`` cannot read, a folder that is not a DeepSpeed
    checkpoint and a file without a ``state_dict`` raise ``InputError`` naming the path.
    """
    if not path.exists():
        raise InputError(f"{path}: no such checkpoint; {_WHAT}")
    if path.is_dir():
        checkpoint = _load_deepspeed(path)
    else:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # whatever the bytes make torch.load raise: not a checkpoint
            raise InputError(
                f"{path}: not a checkpoint that torch.load reads ({_load_failure(path, err)}); "
                f"{_WHAT}"
            ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        found = (
            f"keys: {', '.join(map(str, list(checkpoint)[:5]))}"
            if isinstance(checkpoint, dict)
            else f"it holds a {type(checkpoint).__name__}"
        )
        raise InputError(f"{path}: not a Lightning checkpoint (no 'state_dict'; {found}); {_WHAT}")
    return checkpoint


def _load_deepspeed(path: Path) -> dict[str, Any]:
    latest = path / "latest"
    tag = latest.read_text(encoding="utf-8", errors="replace").strip() if latest.is_file() else ""
    if not tag or not (path / tag).is_dir():
        raise InputError(
            f"{path}: a folder, but not a DeepSpeed checkpoint (no 'latest' file naming a tag "
            f"folder beside it); {_WHAT}"
        )
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


def _load_failure(path: Path, err: Exception) -> str:
    """What ``torch.load`` found wrong with a file, in a few words."""
    if path.stat().st_size == 0:
        return "the file is empty"
    if isinstance(err, EOFError):
        return "the file ends too early: is it cut off?"
    with path.open("rb") as handle:
        head = handle.read(4)
    if not head.startswith((b"PK", b"\x80")):  # torch.save writes a zip; old torch a pickle
        return f"not a PyTorch file: it starts with {head!r}"
    text = str(err)
    if "WeightsUnpickler error:" in text:  # torch's long weights_only text: keep its finding
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = lines[0] if lines else type(err).__name__
    return f"not a PyTorch file: {found}" if found.startswith("Unsupported operand") else found


def export_checkpoint(
    ckpt_path: str,
    output: str,
    model: str | None = None,
    push_to_hub: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    adapter_only: bool = False,
    overwrite: bool = False,
) -> str:
    """Write the small LM of a checkpoint as a folder that ``from_pretrained`` loads.

    Args:
        ckpt_path: a ``.ckpt`` file, or a DeepSpeed checkpoint folder (ZeRO 2/3).
        output: the folder to write (model, tokenizer and a model card, README.md; replaced
            whole or not at all). A folder there is replaced only when it is an earlier
            export (or empty); anything else needs ``overwrite``.
        model: the model the run started from, for architecture and tokenizer (default: the
            checkpoint's ``model`` hyperparameter).
        push_to_hub: then upload the folder to this Hugging Face Hub repository (``owner/name``;
            made if missing). The token comes from ``HF_TOKEN`` or ``hf auth login``.
        private: make that repository private (when it does not exist yet).
        revision: the branch to push to (made if missing; default: main).
        commit_message: the commit's message (default: "lmcot export: <folder name>").
        adapter_only: for a run with LoRA adapters, write peft's adapter folder (and the
            tokenizer) instead of the model with the adapters merged in.
        overwrite: replace what is at ``output`` even when it is not an export of this
            project (a folder of other files, or a file): those files are deleted.
    """
    _check_output(Path(output))  # before minutes of loading
    check_export_target(Path(output), overwrite)
    if model:
        require_local_model(model)  # before the checkpoint is read
    checkpoint = load_checkpoint(Path(ckpt_path))
    hparams = checkpoint.get("hyper_parameters", {})
    spec = model or hparams.get("model")
    if not spec:
        raise InputError(f"{ckpt_path}: no 'model' hyperparameter; pass --model")
    weights = {
        key.removeprefix(POLICY_PREFIX): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(POLICY_PREFIX)
    }
    if not weights:
        raise InputError(
            f"{ckpt_path}: no '{POLICY_PREFIX}*' weights in the checkpoint's state_dict"
        )
    lora = hparams.get("lora")
    if adapter_only and lora is None:
        raise ConfigurationError(
            f"--adapter_only: {ckpt_path} is from a run without LoRA adapters (no 'lora' "
            "hyperparameter); leave the option out to export the whole model"
        )
    policy = SmallLM.from_pretrained(spec)
    if lora is not None:
        policy.add_adapters(as_dataclass(LoRAConfig, lora))
    result = policy.load_state_dict(weights, strict=False)
    # tied embeddings may be stored once; anything else missing means a mismatched --model
    missing = [k for k in result.missing_keys if k not in _tied_keys(policy)]
    if missing or result.unexpected_keys:
        raise InputError(
            f"{ckpt_path}: the checkpoint's weights do not fit {spec} "
            f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})"
        )
    hparams = {**checkpoint.get("hyper_parameters", {}), "model": spec}
    card = checkpoint_card(checkpoint, hparams, ckpt_path, push_to_hub or output)
    folder = export_pretrained(policy, output, card, adapter_only=adapter_only, overwrite=overwrite)
    if push_to_hub:
        from lm_guided_cot.publish import push_folder

        url = push_folder(
            folder, push_to_hub, private=private, revision=revision, commit_message=commit_message
        )
        print(f"pushed {folder} to {url}")
    return str(folder)


def _check_output(output: Path) -> None:
    """Refuse an output folder the export cannot replace: the current folder or one above it
    (it is replaced whole), or one on a read-only file system, a full disk, behind a file."""
    here = Path.cwd().resolve()
    target = output.resolve()
    if target == here or target in here.parents:
        raise ConfigurationError(
            f"output {output}: the current folder{' or one above it' if target != here else ''}; "
            "the export replaces its output folder whole: name a new folder, such as "
            f"{Path(output, 'export') if target == here else 'export'}"
        )
    # a file here is check_export_target's to refuse or replace (--overwrite): its folder is
    # what is written
    check_writable(output.parent if output.is_file() else output, "output")


def checkpoint_card(
    checkpoint: dict[str, Any], hparams: dict[str, Any], ckpt_path: str, name: str
) -> dict[str, Any]:
    """The model card's facts from what a checkpoint holds: hyperparameters of the module and
    the data module, stage 2's reward, ModelCheckpoint's scores, step and epoch."""
    data = checkpoint.get("datamodule_hyper_parameters")
    metrics: dict[str, Any] = {}
    for state in (checkpoint.get("callbacks") or {}).values():
        if isinstance(state, dict) and state.get("monitor"):
            metrics[f"{state['monitor']} (best)"] = state.get("best_model_score")
            metrics[f"{state['monitor']} (this checkpoint)"] = state.get("current_score")
    progress = {k: checkpoint.get(k) for k in ("global_step", "epoch")}
    return card_facts(
        hparams,
        stage=2 if "ppo" in hparams else 1,
        data=data,
        data_source=_source_of(data),
        reward=checkpoint.get("reward"),
        metrics={k: v for k, v in metrics.items() if v is not None},
        progress={**progress, "checkpoint": Path(ckpt_path).name},
        name=name,
    )


def _source_of(data: dict[str, Any] | None) -> str | None:
    """The benchmark of a data module saved by LightningCLI (its class is in ``_class_path``)."""
    path = (data or {}).get("_class_path")
    if not isinstance(path, str) or "." not in path:
        return None
    module, _, name = path.rpartition(".")
    try:
        return getattr(getattr(importlib.import_module(module), name), "source", None)
    except (ImportError, AttributeError):
        return None


def _tied_keys(policy: SmallLM) -> set[str]:
    tied = getattr(policy.base_model, "_tied_weights_keys", None) or []
    if isinstance(tied, dict):
        tied = list(tied)
    # under adapters the transformers model sits at model.base_model.model
    prefix = "model.base_model.model." if policy.is_adapted else "model."
    return {f"{prefix}{key}" for key in tied}
