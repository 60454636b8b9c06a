"""Export folders: which ones the project wrote, and which it may replace.

An export is replaced whole, so a folder at the export path is removed. Only a folder the
project wrote may go that way: every export carries ``EXPORT_MARKER``, written last inside
the temporary folder that is renamed into place, so a folder with it is a complete export.
A folder of someone's files, or a file, at that path is refused unless ``overwrite`` says so.
"""

from __future__ import annotations

import json
from pathlib import Path

from lm_guided_cot.errors import InputError

EXPORT_MARKER = ".lmcot-export.json"
_CARD_TAG = "- lm-guided-cot"  # the model card's tag, in the README of exports made before
# a model folder's weights, whole or sharded (model_specs checks a guide's folder with them too)
WEIGHT_PATTERNS = (
    "*.safetensors",
    "pytorch_model*.bin",
    "*.safetensors.index.json",
    "*.bin.index.json",
)


def marker_text() -> str:
    """What the marker holds: who wrote the folder, and that it is whole."""
    return json.dumps({"written_by": "lm-guided-cot export", "complete": True}) + "\n"


def is_export(folder: Path | str) -> bool:
    """Whether ``folder`` is a whole export of this project: its marker, or (an export made
    before the marker existed) the project's model card beside a config and weights."""
    folder = Path(folder)
    if (folder / EXPORT_MARKER).is_file():
        return True
    config = (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()
    weights = any(next(folder.glob(pattern), None) for pattern in WEIGHT_PATTERNS)
    return config and weights and _has_card_tag(folder / "README.md")


def _has_card_tag(card: Path) -> bool:
    try:
        with card.open(encoding="utf-8", errors="replace") as handle:
            return _CARD_TAG in handle.read(4096)
    except OSError:
        return False


def check_export_target(
    folder: Path | str, overwrite: bool = False, option: str | None = None
) -> None:
    """Refuse an export path that holds what the project did not write (a file, or a folder
    with files and no marker) unless ``overwrite``. ``option`` names the setting the path came
    from (``PPOModule.export_dir``); without one the path is ``lmcot export``'s, which has
    ``--overwrite``.
    """
    folder = Path(folder)
    where = f"{option} {folder}" if option else str(folder)
    how = "name another folder" if option else "name another folder, or pass --overwrite"
    if folder.exists() and not folder.is_dir():
        if not overwrite:
            raise InputError(f"{where}: a file, not an export folder; {how} to replace the file")
        return
    if not folder.is_dir() or overwrite or is_export(folder):
        return
    if next(folder.iterdir(), None) is None:  # an empty folder loses nothing
        return
    raise InputError(
        f"{where}: a folder that holds files and is not an lmcot export (no {EXPORT_MARKER}); "
        f"an export replaces the whole folder, so {how} to delete its files"
    )
