"""Writing output files whole or not at all; saying why an input file cannot be read."""

from __future__ import annotations

import codecs
import os
import tempfile
from pathlib import Path

# read once, at import (single-threaded): os.umask can only be read by setting it
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomically(path: Path | str, text: str) -> None:
    """Write a file whole or not at all: a temp file beside it, then an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; outputs are not
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
