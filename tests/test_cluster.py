"""The SLURM job template and the conda environment file describe runs that resolve."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.mark.slow
def test_slurm_template_launches_lmcot_fit_that_resolves(tmp_path):
    # a stand-in srun that runs its command once with --print_config, as one task would
    srun = tmp_path / "bin/srun"
    srun.parent.mkdir()
    srun.write_text('#!/usr/bin/env bash\necho "$@" > "$SRUN_LOG"\n"$@" --print_config\n')
    srun.chmod(0o755)
    python = tmp_path / "bin/python"  # the job's `python`: this test's interpreter
    python.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{srun.parent}:{os.environ['PATH']}",
        "SLURM_NNODES": "2",
        "SLURM_NTASKS_PER_NODE": "4",
        "STRATEGY": "deepspeed_stage_3",
        "EXTRA_ARGS": "--trainer.max_steps 7",
        "SRUN_LOG": str(tmp_path / "srun.log"),
    }
    done = subprocess.run(
        [
            "bash",
            "bin/slurm/train.sbatch",
            "configs/hotpotqa/data.yaml",
            "configs/hotpotqa/ppo.yaml",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    command = (tmp_path / "srun.log").read_text().split()
    assert command[:4] == ["python", "-m", "lm_guided_cot.cli", "fit"]
    assert "configs/strategy/deepspeed_stage_3.yaml" in command
    config = yaml.safe_load(done.stdout)
    trainer = config["trainer"]
    assert (trainer["num_nodes"], int(trainer["devices"]), trainer["max_steps"]) == (2, 4, 7)
    assert trainer["strategy"]["init_args"]["stage"] == 3
    assert config["model"]["class_path"] == "lm_guided_cot.stages.PPOModule"


def test_slurm_template_refuses_a_missing_strategy(tmp_path):
    done = subprocess.run(
        ["bash", "bin/slurm/train.sbatch", "configs/hotpotqa/data.yaml"],
        cwd=REPO,
        env={**os.environ, "STRATEGY": "zero_9"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "no strategy preset" in done.stderr


def test_environment_file_installs_this_project_with_deepspeed():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    project = _pyproject()["project"]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python.split("=")[1] + ".0" in SpecifierSet(project["requires-python"])
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    editable = next(line for line in pip if line.startswith("-e "))
    extras = Requirement("lm-guided-cot" + editable.removeprefix("-e .")).extras
    assert {"deepspeed", "dev"} <= extras <= set(project["optional-dependencies"])
    # the torch range of the environment admits the version the tests run with
    torch_line = next(line for line in pip if line.startswith("torch"))
    import torch

    assert torch.__version__.split("+")[0] in Requirement(torch_line).specifier
    assert any(line.startswith("--extra-index-url https://download.pytorch.org/") for line in pip)
