"""Local model specs that cannot load are named before transformers reads them."""

from __future__ import annotations

import re
import shutil

import pytest

from lm_guided_cot.errors import InputError
from lm_guided_cot.model_specs import check_model_folder, require_local_model, resolve_spec


def test_a_whole_model_folder_passes(tiny_causal_dir):
    check_model_folder(tiny_causal_dir)
    assert resolve_spec(str(tiny_causal_dir)) == (str(tiny_causal_dir), None)


def test_a_text_file_is_not_a_model(tmp_path):
    notes = tmp_path / "guide.txt"
    notes.write_text("not a model\n")
    for call in (require_local_model, resolve_spec):
        with pytest.raises(InputError, match=f"^{re.escape(str(notes))}: a file, not a model"):
            call(str(notes))


def test_a_folder_without_config_or_weights(tmp_path, tiny_causal_dir):
    with pytest.raises(InputError, match=r"not a model folder \(no config\.json"):
        check_model_folder(tmp_path)
    copy = tmp_path / "guide"
    shutil.copytree(tiny_causal_dir, copy)
    (copy / "model.safetensors").unlink()
    with pytest.raises(InputError) as caught:
        require_local_model(str(copy))
    assert str(caught.value).startswith(f"{copy}: a model folder without weights")


def test_a_cut_safetensors_file_is_named(tmp_path, tiny_causal_dir):
    copy = tmp_path / "guide"
    shutil.copytree(tiny_causal_dir, copy)
    weights = copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as caught:
        check_model_folder(copy)
    assert str(caught.value).startswith(f"{weights}: cut off: its header describes {len(data):,}")
    weights.write_bytes(data[:5])
    with pytest.raises(InputError, match="not a readable safetensors file"):
        check_model_folder(copy)
