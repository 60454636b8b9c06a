"""`lmcot demo`: part 1 trains and says what shows it works; part 2 compares the committed guide
with standard prompting from the committed reply cache. Tiny models and the fake large LM stand
in for SmolLM2 and the llama.cpp reader; the presets are the shipped ones, shrunk."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from lm_guided_cot.cli.demo import COMMITTED_CACHE, _flags, run_demo
from lm_guided_cot.errors import ConfigurationError, MissingFileError
from lm_guided_cot.llm.cache import CachedReply, ReplyCache
from lm_guided_cot.testing.fake_llm import FakeLLMServer

REPO = Path(__file__).resolve().parents[1]


def _shrink(node, fake_llm: dict, tiny: str, guide: str):
    """The shipped preset with the tiny model, the fake server and small sizes."""
    if isinstance(node, list):
        return [_shrink(v, fake_llm, tiny, guide) for v in node]
    if not isinstance(node, dict):
        return {"smollm2": tiny, "docs/results/2wikimultihopqa/guides/kd_rl": guide}.get(node, node)
    if "server" in node:  # an LLM block: the fake server, the preset's cache file and sampling
        return {**fake_llm, **{k: node[k] for k in ("cache_path", "sampling") if k in node}}
    sizes = {"max_tokens": 96, "max_new_tokens": 12, "max_examples": 8, "max_eval_examples": 6}
    out = {}
    for key, value in node.items():
        too_big = isinstance(value, int) and value > sizes.get(key, value)
        if too_big or (key == "max_eval_examples" and value is None):
            out[key] = sizes[key]
        else:
            out[key] = _shrink(value, fake_llm, tiny, guide)
    return out


@pytest.fixture
def demo_root(tmp_path, tiny_causal_dir, shared_data, monkeypatch):
    """A clone-like folder: shrunk presets, a committed reply cache holding one reply."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LMCOT_DATA", str(shared_data))
    return tmp_path


def _write_presets(root: Path, fake_llm: dict, tiny: Path) -> None:
    guide = "runs/demo/ppo/export"  # part 1's export stands in for the committed guide
    for name in ("demo/distill", "demo/ppo", "demo/evaluate", "recipe/2wikimultihopqa/data"):
        config = yaml.safe_load((REPO / f"configs/{name}.yaml").read_text())
        target = root / f"configs/{name}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(_shrink(config, fake_llm, str(tiny), guide)))
    committed = ReplyCache(root / COMMITTED_CACHE)
    committed.put("committed-key", "m", CachedReply("Answer: committed", 1, 1, 0.0))
    committed.close()


def test_both_parts_run_and_report(demo_root, tiny_causal_dir, capsys):
    with FakeLLMServer(responder=lambda m: "Answer: Paris") as server:
        fake_llm = {"model": "openai/fake-large", "api_base": server.base_url, "timeout": 5}
        _write_presets(demo_root, fake_llm, tiny_causal_dir)
        run_demo(config_dir=str(demo_root / "configs"))
    out = capsys.readouterr().out
    assert "part 1 of 2" in out and "part 2 of 2" in out
    assert "stage 1: training loss" in out and "stage 2: reward per step" in out
    assert "runs/demo/ppo/export" in out and "model card README.md" in out
    for export in ("runs/demo/distill/export", "runs/demo/ppo/export"):
        assert (demo_root / export / "README.md").is_file()
    assert "KD+RL guide - standard prompting" in out and "unseen" in out
    with open(demo_root / "runs/demo/method/comparisons.csv", encoding="utf-8") as handle:
        pairs = {(r["setting"], r["vs"]) for r in csv.DictReader(handle)}
    assert pairs == {("kd_rl", "standard"), ("oracle", "standard")}
    assert list((demo_root / "runs/demo/method/figures").glob("*.png"))
    cache = ReplyCache(demo_root / "runs/demo/llm_cache.sqlite")  # configs/demo/evaluate.yaml's
    assert "committed-key" in cache.keys()  # noqa: SIM118 (a set of keys, no __contains__)  # the committed replies were copied in
    cache.close()


def test_eval_only_runs_part_two_alone(demo_root, tiny_causal_dir, capsys):
    with FakeLLMServer(responder=lambda m: "Answer: Paris") as server:
        fake_llm = {"model": "openai/fake-large", "api_base": server.base_url, "timeout": 5}
        _write_presets(demo_root, fake_llm, tiny_causal_dir)
        for name in ("demo/evaluate",):  # the committed guide: here the tiny model itself
            path = demo_root / f"configs/{name}.yaml"
            path.write_text(path.read_text().replace("runs/demo/ppo/export", str(tiny_causal_dir)))
        run_demo(config_dir=str(demo_root / "configs"), eval_only=True)
    out = capsys.readouterr().out
    assert "part 1 of 2" not in out and "part 2 of 2" in out
    assert not (demo_root / "runs/demo/distill").exists()
    assert (demo_root / "runs/demo/method/results.md").is_file()


def test_options_that_cannot_go_together_and_missing_data_are_named(demo_root, monkeypatch):
    with pytest.raises(ConfigurationError, match="choose one"):
        run_demo(config_dir=str(REPO / "configs"), train_only=True, eval_only=True)
    monkeypatch.setenv("LMCOT_DATA", str(demo_root / "nowhere"))
    with pytest.raises(MissingFileError, match=r"2wikimultihopqa.*LMCOT_DATA"):
        run_demo(config_dir=str(REPO / "configs"))


def test_bare_flags_take_the_spellings_users_type():
    assert _flags(["--train-only"]) == ["--train_only", "true"]
    assert _flags(["--eval_only", "false", "--full"]) == ["--eval_only", "false", "--full", "true"]


@pytest.mark.parametrize(
    ("options", "parts"),
    [
        ({}, ["pipeline", "method"]),
        ({"train_only": True}, ["pipeline"]),
        ({"eval_only": True}, ["method"]),
        ({"full": True}, ["recipe 2wikimultihopqa"]),
    ],
)
def test_each_option_runs_its_parts(demo_root, monkeypatch, options, parts):
    import lm_guided_cot.cli.demo as demo

    ran = []
    monkeypatch.setattr(demo, "_pipeline", lambda *a: ran.append("pipeline"))
    monkeypatch.setattr(demo, "_method", lambda *a: ran.append("method"))
    monkeypatch.setattr(demo, "run_recipe", lambda b, **k: ran.append(f"recipe {b}"))
    run_demo(config_dir=str(REPO / "configs"), **options)
    assert ran == parts
