"""bin/pack_guides.py: adapters committed in fp16, each stage-2 adapter on its own stage-1 guide."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]


def _export(folder: Path, base: str, export_dir: str) -> None:
    folder.mkdir(parents=True)
    save_file({"lora_A": torch.ones(2, 2)}, folder / "adapter_model.safetensors")
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    card = f'guide = "{folder}"\n```yaml\nmodel:\n  init_args:\n    export_dir: {export_dir}\n```\n'
    (folder / "README.md").write_text(card)


def _pack(cwd: Path, *guides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "bin" / "pack_guides.py"), "bench", "--runs", "runs"]
    return subprocess.run(
        [*command, "--guides", *guides], cwd=cwd, capture_output=True, text=True, check=False
    )


def _base(folder: Path) -> str:
    return json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]


def test_a_stage2_adapter_is_rebased_on_the_stage1_guide_it_started_from(tmp_path):
    runs = tmp_path / "runs" / "bench"
    _export(runs / "distill" / "export", "smollm2", "runs/bench/distill/export")
    _export(runs / "distill_768" / "export", "smollm2", "runs/bench/distill_768/export")
    _export(runs / "ppo_768" / "export", "../../distill_768/export", "runs/bench/ppo_768/export")
    done = _pack(tmp_path, "kd=distill", "kd_768=distill_768", "kd_rl_768=ppo_768")
    assert done.returncode == 0, done.stderr
    guides = tmp_path / "docs" / "results" / "bench" / "guides"
    assert _base(guides / "kd_768") == "smollm2"  # a stage-1 guide keeps its base model
    assert _base(guides / "kd_rl_768") == "../kd_768"  # not the recipe's ../kd
    weights = load_file(guides / "kd_rl_768" / "adapter_model.safetensors")
    assert weights["lora_A"].dtype == torch.float16
    assert (
        f'"{Path("docs/results/bench/guides/kd_rl_768")}"'
        in (guides / "kd_rl_768" / "README.md").read_text()
    )


def test_a_stage2_adapter_whose_stage1_guide_is_not_committed_is_refused(tmp_path):
    runs = tmp_path / "runs" / "bench"
    _export(runs / "distill_768" / "export", "smollm2", "runs/bench/distill_768/export")
    _export(runs / "ppo_768" / "export", "../../distill_768/export", "runs/bench/ppo_768/export")
    done = _pack(tmp_path, "kd_rl_768=ppo_768")
    assert done.returncode != 0
    assert "pack the stage-1 guide first" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "docs" / "results" / "bench" / "guides" / "kd_rl_768").exists()
