"""Shared fixtures: the real data samples, a tokenizer folder that needs no download, file writers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel test workers share 2 cores: more than one math thread each oversubscribes them,
    # and spinning OpenMP threads made small-model tests ~10x slower.
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"

import datasets  # imported after the offline settings above, so it sees them

datasets.disable_progress_bars()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LMCOT_DATA", REPO.parent / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    """The slow tests first (a stable sort: each keeps its place among its kind), so that under
    xdist they start early and the quick ones fill in around them, not one long test alone at
    the end of the run."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _fresh_llm_registry():
    """Each test gets its own shared large-LM clients: the registry's clients of one test (its
    fake server, its cache file) are closed after it, and never handed to the next."""
    yield
    import sys

    registry = sys.modules.get("lm_guided_cot.llm.registry")
    if registry is not None:
        registry.close_all()


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


def _tiny_configs():
    from transformers import LlamaConfig, T5Config

    # ByT5's byte vocabulary: 3 specials + 256 bytes + 125 extra ids = 384; pad 0, eos 1.
    causal = LlamaConfig(
        vocab_size=384,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=None,
        eos_token_id=1,
        pad_token_id=0,
    )
    seq2seq = T5Config(
        vocab_size=384,
        d_model=32,
        d_ff=64,
        d_kv=16,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        decoder_start_token_id=0,
        eos_token_id=1,
        pad_token_id=0,
        dropout_rate=0.0,  # the overfitting tests want exact fits within few steps
    )
    return causal, seq2seq


@pytest.fixture(scope="session")
def tiny_causal_dir(tmp_path_factory) -> Path:
    """A tiny Llama-shaped causal LM with a byte tokenizer, saved like a hub checkpoint."""
    import torch
    from transformers import ByT5Tokenizer, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny_llama")
    torch.manual_seed(0)
    LlamaForCausalLM(_tiny_configs()[0]).save_pretrained(folder)
    ByT5Tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory) -> Path:
    """A tiny T5 with a byte tokenizer, saved like a hub checkpoint."""
    import torch
    from transformers import ByT5Tokenizer, T5ForConditionalGeneration

    folder = tmp_path_factory.mktemp("tiny_t5")
    torch.manual_seed(0)
    T5ForConditionalGeneration(_tiny_configs()[1]).save_pretrained(folder)
    ByT5Tokenizer().save_pretrained(folder)
    return folder
