"""Writing output files whole or not at all; saying why an input file cannot be read."""

from __future__ import annotations

import codecs
import errno
import os
import tempfile
from pathlib import Path

from lm_guided_cot.errors import OutputError

# read once, at import (single-threaded): os.umask can only be read by setting it
_UMASK = os.umask(0)
os.umask(_UMASK)


_FULL = (errno.ENOSPC, errno.EDQUOT)
_PROBE_BYTES = 4096  # a block: a probe that fits on a disk with room for nothing else is no test


def write_atomically(path: Path | str, text: str | bytes) -> None:
    """Write a file whole or not at all: a temp file beside it, then an atomic rename.

    ``text`` is written as UTF-8; ``bytes`` (a PNG) as they are.

    An ``OSError`` (a full disk, a read-only file system) becomes an ``OutputError`` naming
    ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise output_error(path, err) from None
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; outputs are not
        binary = isinstance(text, bytes)
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise output_error(path, err) from None
        raise


def output_error(path: Path | str, err: OSError, option: str | None = None) -> OutputError:
    """``err``, met writing ``path`` (set by ``option``), as one message that says what to do."""
    where = f"{option} {path}" if option else str(path)
    if err.errno in _FULL:
        return OutputError(
            f"{where}: no space left on the device that holds it ({_free(path)} free); "
            "free some space or write elsewhere",
            full_disk=True,
        )
    if err.errno == errno.EROFS:
        why = "on a read-only file system"
    elif isinstance(err, (FileExistsError, NotADirectoryError)) or err.errno == errno.ENOTDIR:
        blocker = _file_in_the_way(Path(path))
        why = f"{blocker} is a file, not a folder" if blocker else (err.strerror or str(err))
    elif isinstance(err, PermissionError):
        why = "permission denied"
    else:
        why = err.strerror or str(err)
    return OutputError(f"{where}: cannot be written ({why}); choose a folder that can be written")


def check_writable(folder: Path | str, option: str) -> None:
    """Refuse, before any work, a folder the run could not write its outputs to: a file in
    its place, a read-only file system, no permission, a full disk. The folder itself is not
    made: a block is written and removed in it, or in the nearest folder above it that exists.
    """
    folder = Path(folder)
    blocker = _file_in_the_way(folder)
    if blocker is not None:
        what = "is a file" if blocker == folder else f"is inside {blocker}, which is a file"
        raise OutputError(f"{option} {folder}: {what}; name a folder (or a path for a new one)")
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".lmcot-write-test-")
    except OSError as err:
        raise output_error(folder, err, option) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"\0" * _PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        raise output_error(folder, err, option) from None
    finally:
        Path(probe).unlink(missing_ok=True)


def _file_in_the_way(path: Path) -> Path | None:
    """``path`` or the first folder above it that exists as something other than a folder."""
    for part in (path.absolute(), *path.absolute().parents):
        if part.exists() or part.is_symlink():
            return None if part.is_dir() else (path if part == path.absolute() else part)
    return None


def _free(path: Path | str) -> str:
    """The free space of the device that holds ``path`` (its nearest existing folder)."""
    for part in (Path(path).absolute(), *Path(path).absolute().parents):
        if part.exists():
            try:
                stats = os.statvfs(part)
            except OSError:
                return "unknown"
            return f"{stats.f_bavail * stats.f_frsize / 2**20:.1f} MiB"
    return "unknown"


def unreadable_reason(path: Path | str, err: OSError) -> str:
    """Why ``path`` cannot be opened, in words: no such file, a folder, or the system's reason."""
    if isinstance(err, FileNotFoundError):
        return "no such file"
    if isinstance(err, IsADirectoryError) or Path(path).is_dir():
        return "a folder, not a file"
    return f"cannot read it ({err.strerror or err})"


def find_bad_utf8(path: Path | str, chunk_size: int = 1 << 20) -> tuple[int, int, str] | None:
    """Where a file stops being UTF-8: ``(byte offset, line, what is wrong)``, or ``None``.

    The file is read in chunks, so a file of any size costs one chunk of memory.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    fed = 0  # bytes handed to the decoder so far
    newlines = 0  # newlines in them
    with Path(path).open("rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            pending = decoder.getstate()[0]  # the undecoded tail of the previous chunk
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:  # err.object is pending + chunk
                offset = fed - len(pending) + err.start
                line = newlines - pending.count(b"\n") + err.object.count(b"\n", 0, err.start) + 1
                if chunk:
                    what = f"byte 0x{err.object[err.start]:02x} ({err.reason})"
                else:
                    what = "a character cut off at the end of the file"
                return offset, line, what
            if not chunk:
                return None
            fed += len(chunk)
            newlines += chunk.count(b"\n")


def not_utf8_problem(path: Path | str, chunk_size: int = 1 << 20) -> tuple[str, int | None]:
    """The words for a file that failed to decode as UTF-8, and the line where it fails."""
    found = find_bad_utf8(path, chunk_size)
    if found is None:  # it failed in text mode but not here: name the file anyway
        return "not UTF-8 text; save the file as UTF-8", None
    offset, line, what = found
    return f"not UTF-8 text: {what} at byte offset {offset}; save the file as UTF-8", line
