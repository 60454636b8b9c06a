"""What the stage modules share: rationale evaluation with the reader, TensorBoard text tables,
and exporting the small LM as a ``save_pretrained`` folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger

from lm_guided_cot.markdown import markdown_table
from lm_guided_cot.model_card import CARD_FILE, build_card, card_facts, describe_object
from lm_guided_cot.modules.distributed import full_weights
from lm_guided_cot.policy import SmallLM


def log_text_table(
    module: Any, tag: str, header: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """A Markdown table in TensorBoard's Text tab (other loggers are left alone)."""
    logger = module.logger
    if not isinstance(logger, TensorBoardLogger) or not rows:
        return
    logger.experiment.add_text(tag, markdown_table(header, rows), global_step=module.global_step)


def export_pretrained(
    policy: SmallLM, folder: str | os.PathLike, card: dict[str, Any] | None = None
) -> Path:
    """Write the small LM and its tokenizer to ``folder`` whole or not at all, with the model
    card of ``card`` (``model_card.card_facts``) as its README.md.

    They are saved to a temporary folder beside it and renamed into place, so a crash never
    leaves a half-written export that ``from_pretrained`` would half-load.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    try:
        policy.save_pretrained(str(tmp))
        if card is not None:
            config = policy.model.config
            architecture = (getattr(config, "architectures", None) or [""])[0]
            card = {**card, "architecture": architecture}
            card["encoder_decoder"] = bool(getattr(config, "is_encoder_decoder", False))
            (tmp / CARD_FILE).write_text(build_card(card), encoding="utf-8")
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def export_dir(module: Any, configured: str | None) -> str:
    """Where a stage writes its export: ``configured`` (``~``/``$VARS`` expanded) or ``<log dir>/export``."""
    if configured:
        return os.path.expandvars(os.path.expanduser(configured))
    trainer = module.trainer
    return os.path.join(trainer.log_dir or trainer.default_root_dir, "export")


def export_at_fit_end(module: Any, what: str) -> None:
    """Rank 0 exports the module's policy (``what`` names it in the message)."""
    # trainer.log_dir broadcasts from rank 0, so every rank must ask for it, not only rank 0
    folder = export_dir(module, module.hparams.export_dir)
    with full_weights(module.trainer, module.policy):
        if module.trainer.is_global_zero:
            export_pretrained(module.policy, folder, fit_end_card(module))
            print(f"exported {what} to {folder}")
    module.trainer.strategy.barrier("export")


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
