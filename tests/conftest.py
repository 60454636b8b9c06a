"""Shared fixtures: the real data samples, a tokenizer folder that needs no download, file writers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import datasets  # imported after the offline settings above, so it sees them

datasets.disable_progress_bars()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LMCOT_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark samples (../shared/data); CI has the same folder."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the real data samples are missing: {SHARED_DATA} (set LMCOT_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A byte-level tokenizer saved to a folder, loadable with AutoTokenizer, no download."""
    from transformers import ByT5Tokenizer

    folder = tmp_path_factory.mktemp("byt5_tokenizer")
    ByT5Tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture
def datasets_cache(tmp_path) -> str:
    """A private Arrow cache, so tests never see each other's files."""
    return str(tmp_path / "hf_cache")
