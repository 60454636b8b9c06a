"""DataModules: tokenised, padded, seedable batches; correct shards and metrics under DDP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lm_guided_cot.data.prompts import PromptConfig
from lm_guided_cot.data.records import TWOWIKI
from lm_guided_cot.datamodules import HotpotQADataModule, TwoWikiMultiHopQADataModule
from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.paths import expand_path


def _hotpot(shared_data, tokenizer_dir, cache, **kwargs):
    return HotpotQADataModule(
        tokenizer=str(tokenizer_dir),
        train=str(shared_data / "hotpotqa/train.jsonl"),
        validation=str(shared_data / "hotpotqa/validation.jsonl"),
        cache_dir=cache,
        **kwargs,
    )


def _epoch_order(dm) -> list[int]:
    return [i for batch in dm.train_dataloader() for i in batch["index"].tolist()]


def test_batches_are_dynamically_padded_prompts(
    shared_data, tokenizer_dir, datasets_cache, tokenizer
):
    dm = _hotpot(
        shared_data,
        tokenizer_dir,
        datasets_cache,
        batch_size=4,
        max_examples=12,
        prompt=PromptConfig(max_tokens=700),
        padding_side="left",
    )
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["input_ids"].shape[0] == 4
    lengths = batch["attention_mask"].sum(dim=1)
    assert batch["input_ids"].shape[1] == lengths.max().item() <= 700  # padded to the longest only
    assert (batch["attention_mask"][:, -1] == 1).all()  # left padding
    first = dm.record("validation", batch["index"][0].item())
    row_len = lengths[0].item()
    text = tokenizer.decode(batch["input_ids"][0, -row_len:], skip_special_tokens=True)
    assert text.startswith(f"Question: {first.question}")
    assert len(dm.records("train")) == 12


def test_shuffle_is_seeded(shared_data, tokenizer_dir, datasets_cache):
    orders = []
    for seed in (1, 1, 2):
        dm = _hotpot(
            shared_data, tokenizer_dir, datasets_cache, batch_size=5, max_examples=30, seed=seed
        )
        dm.setup("fit")
        orders.append(_epoch_order(dm))
    assert orders[0] == orders[1]
    assert orders[0] != orders[2]
    assert sorted(orders[0]) == list(range(30))
    dm = _hotpot(shared_data, tokenizer_dir, datasets_cache, batch_size=5, max_examples=30, seed=1)
    dm.setup("fit")
    assert [i for b in dm.val_dataloader() for i in b["index"].tolist()] == list(range(30))


def test_twowiki_module_reads_the_official_json(shared_data, tokenizer_dir, datasets_cache):
    dm = TwoWikiMultiHopQADataModule(
        tokenizer=str(tokenizer_dir),
        test=str(shared_data / "2wikimultihopqa/dev.json"),
        cache_dir=datasets_cache,
        eval_batch_size=16,
    )
    dm.setup("test")
    assert sum(b["input_ids"].shape[0] for b in dm.test_dataloader()) == 100
    assert dm.record("test", 0).source == TWOWIKI
    with pytest.raises(ValueError, match="no 'train' split"):
        dm.records("train")


def test_data_path_expands_lmcot_data(monkeypatch):
    monkeypatch.setenv("LMCOT_DATA", "/data/here")
    assert expand_path("$LMCOT_DATA/hotpotqa/train.jsonl") == "/data/here/hotpotqa/train.jsonl"
    monkeypatch.delenv("LMCOT_DATA")
    expected = str(Path.cwd().parent / "shared" / "data" / "x.json")
    assert expand_path("${LMCOT_DATA}/x.json") == expected


@pytest.mark.slow
def test_ddp_two_cpu_ranks_get_disjoint_shards_and_exact_metrics(
    shared_data, tokenizer_dir, tmp_path
):
    probe = Path(__file__).with_name("ddp_probe.py")
    train = str(shared_data / "hotpotqa/train.jsonl")
    validation = str(shared_data / "hotpotqa/validation.jsonl")
    env = {
        **os.environ,
        "HF_DATASETS_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(Path(__file__).parents[2]),
    }
    results = {}
    for devices in (2, 1):
        out = tmp_path / f"d{devices}"
        out.mkdir()
        done = subprocess.run(
            [
                sys.executable,
                str(probe),
                str(out),
                train,
                validation,
                str(tokenizer_dir),
                str(devices),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        results[devices] = out
    rank0 = json.loads((results[2] / "seen_rank0.json").read_text())
    rank1 = json.loads((results[2] / "seen_rank1.json").read_text())
    assert len(rank0) == len(rank1) == 12
    assert not set(rank0) & set(rank1)
    assert sorted(rank0 + rank1) == list(range(24))
    two = json.loads((results[2] / "metrics.json").read_text())
    one = json.loads((results[1] / "metrics.json").read_text())
    assert two == pytest.approx(one, abs=1e-12)
    assert 0.3 < one["em"] < one["f1"] < 1.0  # the probe's predictions score unevenly


@pytest.mark.parametrize(
    ("option", "value", "minimum"),
    [
        ("batch_size", 0, 1),
        ("eval_batch_size", 0, 1),
        ("num_workers", -1, 0),
        ("max_examples", 0, 1),
        ("max_examples", -1, 1),
        ("max_eval_examples", 0, 1),
        ("max_target_tokens", 0, 1),
    ],
)
@pytest.mark.parametrize("cls", [HotpotQADataModule, TwoWikiMultiHopQADataModule])
def test_bad_numbers_are_refused_when_built(cls, option, value, minimum):
    message = f"{cls.__name__}.{option} must be at least {minimum}, got {value}"
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        cls(**{option: value})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 1, "eval_batch_size": 1, "num_workers": 0},
        {"max_examples": 1, "max_eval_examples": 1, "max_target_tokens": 1},
        {"max_examples": None, "max_eval_examples": None, "eval_batch_size": None},
    ],
)
def test_boundary_numbers_are_accepted(kwargs):
    HotpotQADataModule(**kwargs)


def test_rationales_of_ids_outside_the_split_are_reported(
    shared_data, tokenizer_dir, datasets_cache, tmp_path, caplog
):
    from lm_guided_cot.rationales import RationaleConfig
    from tests.helpers import write_rationales

    dm = _hotpot(
        shared_data,
        tokenizer_dir,
        datasets_cache,
        max_examples=3,
        rationales=RationaleConfig(dir=str(tmp_path / "rationales")),
    )
    ids = dm.records("train")["id"]
    rows = [(rid, f"because {rid}") for rid in [*ids, "not-a-train-id", "other-id"]]
    path = write_rationales(tmp_path / "rationales", "train", rows)
    with caplog.at_level("WARNING", logger="lm_guided_cot.datamodules"):
        assert len(dm.targets("train")) == 3
    assert (
        f"{path}: 2 kept rationale(s) of 2 question id(s) belong to no record of the train split "
        "(3 questions; max_examples caps it at 3) and are left out; first ids: not-a-train-id, "
        "other-id" in caplog.text
    )
