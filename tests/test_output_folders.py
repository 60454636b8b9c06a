"""Export folders: which ones the project wrote (and may replace), and which it must refuse."""

from __future__ import annotations

import pytest

from lm_guided_cot.errors import InputError
from lm_guided_cot.output_folders import (
    EXPORT_MARKER,
    check_export_target,
    is_export,
    marker_text,
)


def test_an_export_is_known_by_its_marker_or_by_an_earlier_exports_files(tmp_path):
    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / EXPORT_MARKER).write_text(marker_text())
    assert is_export(marked)
    earlier = tmp_path / "earlier"  # written before the marker: card, config and weights
    earlier.mkdir()
    (earlier / "README.md").write_text("---\ntags:\n- lm-guided-cot\n- distillation\n---\n")
    (earlier / "config.json").write_text("{}")
    assert not is_export(earlier)  # no weights yet
    (earlier / "model.safetensors").write_bytes(b"x")
    assert is_export(earlier)
    config_only = tmp_path / "config_only"
    config_only.mkdir()
    (config_only / "config.json").write_text("{}")
    assert not is_export(config_only) and not is_export(tmp_path / "missing")


def test_what_may_be_replaced(tmp_path):
    check_export_target(tmp_path / "new")  # nothing there
    (tmp_path / "empty").mkdir()
    check_export_target(tmp_path / "empty")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"mine: a folder that holds files .* --overwrite"):
        check_export_target(tmp_path / "mine")
    with pytest.raises(InputError, match=r"^DistillationModule.export_dir .*mine: a folder"):
        check_export_target(tmp_path / "mine", option="DistillationModule.export_dir")
    check_export_target(tmp_path / "mine", overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"file: a file, not an export folder"):
        check_export_target(tmp_path / "file")
    check_export_target(tmp_path / "file", overwrite=True)
