"""Stream records out of a JSON-lines file or a JSON list-of-records file.

The official HotpotQA training file is one 540 MB JSON list. ``json.load`` (and the ``json``
builder of ``datasets``, which falls back to it for lists) would hold all of it as Python
objects at once; here each record is decoded, handed on and dropped, so memory stays at one
chunk plus one record. Every record comes with its index and starting line so that errors
can name them; a missing path, a folder, bytes that are not UTF-8 (their line and byte offset)
and a file cut off inside a record are named too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lm_guided_cot.data.errors import DataFormatError
from lm_guided_cot.files import not_utf8_problem, unreadable_reason

_CHUNK = 1 << 20


def iter_json_records(path: str | Path) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(index, line, value)`` for each record of a JSON-lines or JSON-list file.

    The layout is told by the first non-blank character: ``[`` for a list, anything else for
    JSON lines (blank lines are allowed there). A file that cannot be opened, is not UTF-8 or
    holds malformed JSON raises ``DataFormatError``; an empty file yields nothing.
    """
    path = Path(path)
    try:
        with open_text(path) as handle:
            head = handle.read(4096)
            first = head.lstrip()[:1]
        if first == "[":
            yield from _iter_json_list(path)
        else:
            yield from _iter_json_lines(path)
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None


def open_text(path: Path):
    """``path`` opened as UTF-8 text (a leading BOM dropped); failure as ``DataFormatError``."""
    try:
        return path.open(encoding="utf-8-sig")
    except OSError as err:
        raise DataFormatError(str(path), None, None, unreadable_reason(path, err)) from None


def not_utf8_error(path: Path) -> DataFormatError:
    """The error for a file that is not UTF-8: the first bad byte, its line and byte offset."""
    problem, line = not_utf8_problem(path, _CHUNK)
    return DataFormatError(str(path), None, None, problem, line)


def _cut_off(text: str, err: json.JSONDecodeError) -> bool:
    """Whether ``text`` ends inside the JSON value ``err`` was raised on (a cut-off file)."""
    return err.msg.startswith("Unterminated string") or not text[err.pos :].strip()


def _iter_json_lines(path: Path) -> Iterator[tuple[int, int, Any]]:
    index = 0
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                problem = f"not valid JSON ({err.msg}, column {err.colno})"
                if _cut_off(line, err):
                    problem += (
                        "; the file ends inside this record: is it cut off?"
                        if not line.endswith("\n")
                        else "; the line ends inside the record (JSON lines: one whole record a line)"
                    )
                raise DataFormatError(str(path), index, None, problem, line_no) from None
            yield index, line_no, value
            index += 1


def _iter_json_list(path: Path) -> Iterator[tuple[int, int, Any]]:
    decoder = json.JSONDecoder()
    with open_text(path) as handle:
        buf = handle.read(_CHUNK)
        eof = not buf
        pos = buf.index("[") + 1
        lines_before = 0  # newlines in the text already dropped from ``buf``
        index = 0
        expect_value = True  # after "[" or ",": a value (or "]" right after "[") must come

        def line_at(offset: int) -> int:
            return lines_before + buf.count("\n", 0, offset) + 1

        while True:
            # Skip white space, refilling the buffer as needed.
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buf) or eof:
                    break
                more = handle.read(_CHUNK)
                eof = not more
                buf += more
            if pos >= len(buf):
                raise DataFormatError(
                    str(path),
                    index,
                    None,
                    "not valid JSON (the list never closes: is the file cut off?)",
                    line_at(pos),
                )
            char = buf[pos]
            if char == "]" and (index == 0 or not expect_value):
                return
            if not expect_value:
                if char != ",":
                    raise DataFormatError(
                        str(path),
                        index,
                        None,
                        f"not valid JSON (expected ',' or ']', found {char!r})",
                        line_at(pos),
                    )
                pos += 1
                expect_value = True
                continue
            while True:
                try:
                    value, end = decoder.raw_decode(buf, pos)
                    if end < len(buf) or eof:  # a number cut at the chunk end would decode short
                        break
                    more = handle.read(_CHUNK)
                    eof = not more
                    buf += more
                except json.JSONDecodeError as err:
                    if eof:
                        problem = f"not valid JSON ({err.msg})"
                        if _cut_off(buf, err):
                            problem += "; the file ends inside this record: is it cut off?"
                        raise DataFormatError(
                            str(path), index, None, problem, line_at(pos)
                        ) from None
                    more = handle.read(_CHUNK)
                    eof = not more
                    buf += more
            yield index, line_at(pos), value
            index += 1
            expect_value = False
            pos = end
            if pos > _CHUNK:  # drop consumed text so the buffer stays about one chunk long
                lines_before += buf.count("\n", 0, pos)
                buf = buf[pos:]
                pos = 0
