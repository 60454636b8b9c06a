"""Every shipped stage and evaluation preset resolves with its benchmark's data config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lm_guided_cot.cli import build_cli
from lm_guided_cot.commands import evaluation_parser

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = {"hotpotqa": "hotpotqa", "2wikimultihopqa": "2wikimultihopqa", "demo": "hotpotqa"}
STAGES = sorted(
    (folder, p.name)
    for folder in BENCHMARKS
    for p in (REPO / "configs" / folder).glob("*.yaml")
    if p.name not in ("data.yaml", "evaluate.yaml")
)
EVALUATIONS = sorted(f for f in BENCHMARKS if (REPO / "configs" / f / "evaluate.yaml").exists())


@pytest.mark.parametrize(("folder", "name"), STAGES)
def test_stage_preset_resolves(folder, name, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    data = f"configs/{BENCHMARKS[folder]}/data.yaml"
    with pytest.raises(SystemExit) as done:
        build_cli(["fit", "-c", data, "-c", f"configs/{folder}/{name}", "--print_config"])
    assert done.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["init_args"]["model"]
    assert config["data"]["class_path"].startswith("lm_guided_cot.data.")
    assert config["trainer"]["default_root_dir"].startswith("runs/")


@pytest.mark.parametrize("folder", EVALUATIONS)
def test_evaluation_preset_resolves(folder, monkeypatch):
    monkeypatch.chdir(REPO)
    parser = evaluation_parser()
    config = parser.parse_args(
        ["-c", f"configs/{BENCHMARKS[folder]}/data.yaml", "-c", f"configs/{folder}/evaluate.yaml"]
    )
    init = parser.instantiate_classes(config)
    assert init.small_lms and {s.name for s in init.small_lms} >= {
        "LM-guided (KD)",
        "LM-guided (KD+RL)",
    }
    assert any(s.samples > 1 for s in init.small_lms)  # self-consistency
    assert init.judge is not None and init.output_dir.startswith("runs/")
