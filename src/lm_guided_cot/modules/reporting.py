"""What the stage modules share: rationale evaluation with the reader, sample tables in the loggers,
and exporting the small LM as a ``save_pretrained`` folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lm_guided_cot.errors import OutputError
from lm_guided_cot.files import output_error
from lm_guided_cot.model_card import CARD_FILE, build_card, card_facts, describe_object
from lm_guided_cot.model_specs import portable_base, set_adapter_base
from lm_guided_cot.modules.distributed import full_weights
from lm_guided_cot.modules.loggers import log_table, run_dir
from lm_guided_cot.output_folders import EXPORT_MARKER, check_export_target, marker_text
from lm_guided_cot.policy import SmallLM


def log_text_table(
    module: Any, tag: str, header: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """The table in every logger of the run (``loggers.log_table``: TensorBoard, W&B, MLflow, CSV)."""
    log_table(module.loggers, module.global_step, tag, header, rows)


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
        return os.path.expandvars(os.path.expanduser(configured))
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
