"""The shipped large-LM presets load into LLMConfig, and `lmcot ask` reaches a server with them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jsonargparse import ArgumentParser

from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.testing.fake_llm import FakeLLMServer

REPO = Path(__file__).resolve().parents[2]
PRESETS = sorted((REPO / "configs/llm").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_parses_into_llm_config(preset):
    parser = ArgumentParser()
    parser.add_argument("--llm", type=LLMConfig)
    config = parser.instantiate_classes(parser.parse_args(["--llm", str(preset)])).llm
    assert isinstance(config, LLMConfig)
    assert "/" in config.model
    assert "api_key" not in preset.read_text().replace("api_key_env", "")


def test_presets_cover_the_usual_backends():
    assert {p.stem for p in PRESETS} >= {"local_smollm2", "openai", "anthropic", "vllm", "ollama"}


def test_ask_command_against_a_server(tmp_path):
    with FakeLLMServer() as server:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "lm_guided_cot.cli",
                "ask",
                "Which river flows through Paris?",
                "--llm",
                str(REPO / "configs/llm/vllm.yaml"),
                "--llm.api_base",
                server.base_url,
                "--llm.cache_path",
                str(tmp_path / "c.sqlite"),
                "--llm.timeout",  # the preset's 120 s would turn one lost request into minutes
                "20",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
            env=dict(os.environ),
        )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["reply"] == "Answer: Which river flows through Paris?"
    assert result["usage"]["requests"] == 1 and result["error"] is None
