"""Output files are written whole or not at all, with the mode any other output file gets."""

from __future__ import annotations

import os
import stat

import pytest

from lm_guided_cot.files import write_atomically


def test_written_file_has_the_umask_mode_and_no_temp_file_is_left(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    target = tmp_path / "out" / "results.md"
    write_atomically(target, "table\n")
    assert target.read_text(encoding="utf-8") == "table\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["results.md"]


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "results.md"
    target.write_text("old\n", encoding="utf-8")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, "new\n")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]


def test_find_bad_utf8_across_chunk_edges(tmp_path):
    from lm_guided_cot.files import find_bad_utf8

    text = "a\nbé\n€uro\n".encode()  # two- and three-byte characters
    path = tmp_path / "f.txt"
    path.write_bytes(text)
    for size in (1, 2, 3, 5, 64):  # characters cut by every chunk edge still decode
        assert find_bad_utf8(path, size) is None
    path.write_bytes(text + b"x\xe2\x82")  # a character cut off at the end
    assert find_bad_utf8(path, 4) == (
        len(text) + 1,
        4,
        "a character cut off at the end of the file",
    )
    path.write_bytes(text + b"ok \xff\n")
    for size in (1, 3, 64):
        offset, line, what = find_bad_utf8(path, size)
        assert (offset, line) == (len(text) + 3, 4)
        assert what == "byte 0xff (invalid start byte)"
