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
