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


def test_check_writable_names_a_file_in_the_way(tmp_path):
    from lm_guided_cot.errors import OutputError
    from lm_guided_cot.files import check_writable

    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine\n")
    with pytest.raises(OutputError, match=r"^output_dir .*notes.txt: is a file; name a folder"):
        check_writable(blocker, "output_dir")
    with pytest.raises(OutputError, match=r"notes.txt/out: is inside .*notes.txt, which is a file"):
        check_writable(blocker / "out", "output_dir")
    assert blocker.read_text() == "mine\n"


def test_check_writable_leaves_no_trace_and_makes_no_folder(tmp_path):
    from lm_guided_cot.files import check_writable

    check_writable(tmp_path / "new" / "deeper", "output_dir")
    assert list(tmp_path.iterdir()) == []  # the probe went to tmp_path and was removed


@pytest.mark.parametrize(
    ("errno_", "exit_code", "words"),
    [
        (28, 1, "no space left on the device that holds it"),  # ENOSPC
        (30, 2, "cannot be written (on a read-only file system)"),  # EROFS
        (13, 2, "cannot be written (permission denied)"),  # EACCES
    ],
)
def test_check_writable_says_why_a_folder_cannot_be_written(
    tmp_path, monkeypatch, errno_, exit_code, words
):
    import tempfile

    from lm_guided_cot.errors import OutputError
    from lm_guided_cot.files import check_writable

    def refuse(*args, **kwargs):
        error = PermissionError if errno_ == 13 else OSError
        raise error(errno_, os.strerror(errno_))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError) as caught:
        check_writable(tmp_path / "evaluation", "evaluate.output_dir")
    assert str(caught.value).startswith(f"evaluate.output_dir {tmp_path / 'evaluation'}: {words}")
    assert caught.value.exit_code == exit_code


def test_a_full_disk_while_writing_names_the_file(tmp_path, monkeypatch):
    from lm_guided_cot.errors import OutputError

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError) as caught:
        write_atomically(tmp_path / "out" / "results.md", "table\n")
    assert str(caught.value).startswith(f"{tmp_path / 'out' / 'results.md'}: no space left")
    assert caught.value.exit_code == 1
    assert list((tmp_path / "out").iterdir()) == []  # no temp file left
