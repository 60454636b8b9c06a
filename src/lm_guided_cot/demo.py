"""``lmcot demo``: the CPU recipe on a HotpotQA slice, on a CPU, with nothing to configure.

Distillation -> PPO -> the comparison table, each stage the same command a user would run by
hand (printed as it starts), with the presets in ``configs/demo/`` and
``configs/recipe/hotpotqa/data.yaml``. SmolLM2-135M-Instruct from its PyPI wheel is the small
LM; Qwen2.5-Coder-0.5B-Instruct, served by llama.cpp's server (in-process when none is
installed), is the reader. Everything lands under ``runs/demo/``; large-LM replies are cached
there, so a rerun after an interruption skips what was answered.

Data: ``$LMCOT_DATA/hotpotqa`` (default ``../shared/data``); when that folder is missing the
demo reads ``hotpotqa/hotpot_qa`` (distractor) from the Hugging Face hub instead.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from jsonargparse import auto_cli
from rich.console import Console

from lm_guided_cot import commands, trainer_cli
from lm_guided_cot.errors import MissingFileError
from lm_guided_cot.paths import expand_path

HUB_DATASET = "hotpotqa/hotpot_qa"
EXPORTS = ("runs/demo/distill/export", "runs/demo/ppo/export")  # as configs/demo/*.yaml say


def _config_dir(config_dir: str | None) -> Path:
    folder = Path(config_dir) if config_dir else Path(__file__).resolve().parents[2] / "configs"
    if not (folder / "demo" / "distill.yaml").exists():
        raise MissingFileError(
            f"{folder}: the demo presets (demo/*.yaml) are not there; run the demo from a clone "
            "of the repository (pip install -e .) or pass --config_dir CLONE/configs"
        )
    return folder


def _data_overrides(console: Console) -> list[str]:
    """Point the stages at the hub when the local HotpotQA files are missing."""
    local = Path(expand_path("$LMCOT_DATA/hotpotqa/train.jsonl"))
    if local.exists():
        console.print(f"data: {local.parent}")
        return []
    console.print(f"data: {local.parent} not found, reading {HUB_DATASET} from the hub")
    return [
        *("--data.init_args.train", HUB_DATASET),
        *("--data.init_args.validation", HUB_DATASET),
        *("--data.init_args.test", "null"),
        *("--data.init_args.hub_config", "distractor"),
    ]


def run_demo(config_dir: str | None = None, skip_training: bool = False) -> None:
    """Run distillation -> PPO -> evaluation on a HotpotQA slice on the CPU.

    Args:
        config_dir: the repository's ``configs`` folder (found beside the package by default).
        skip_training: only evaluate (the two stages' exports under runs/demo must exist).
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    missing = [f for f in EXPORTS if not Path(f, "config.json").is_file()] if skip_training else []
    if missing:
        raise MissingFileError(
            f"--skip_training needs the two stages' exports: {', '.join(missing)} "
            "missing (run `lmcot demo` once without it)"
        )
    console = Console()
    configs = _config_dir(config_dir)
    data = ["-c", str(configs / "recipe" / "hotpotqa" / "data.yaml")]
    overrides = _data_overrides(console)
    # without the local data there are no CoT demonstrations either: zero-shot prompts then
    zero_shot = bool(overrides)
    stages = [
        (
            "1/3 distillation",
            ["fit", *data, "-c", str(configs / "demo/distill.yaml"), *overrides]
            + ["--data.init_args.rationales.teacher.demonstrations", "null"] * zero_shot,
        ),
        ("2/3 PPO", ["fit", *data, "-c", str(configs / "demo/ppo.yaml"), *overrides]),
        (
            "3/3 evaluation",
            ["evaluate", *data, "-c", str(configs / "demo/evaluate.yaml"), *overrides]
            + ["--cot_prompt.demonstrations", "null"] * zero_shot,
        ),
    ]
    if skip_training:
        stages = stages[2:]
    start = time.perf_counter()
    for title, args in stages:
        console.rule(f"[bold]{title}")
        console.print("lmcot " + " ".join(args), style="dim", soft_wrap=True)
        stage_start = time.perf_counter()
        if args[0] == "evaluate":
            commands.evaluate(args[1:])
        else:
            trainer_cli.run_trainer(args)
        console.print(f"{title}: {time.perf_counter() - stage_start:.0f} s")
    minutes = (time.perf_counter() - start) / 60
    console.rule("[bold]done")
    console.print(
        f"demo finished in {minutes:.1f} min.\n"
        "  table:        runs/demo/evaluation/results.md (and results.csv, comparisons.csv)\n"
        "  per question: runs/demo/evaluation/examples/*.jsonl, predictions/*.json\n"
        "  TensorBoard:  tensorboard --logdir runs/demo\n"
        "  exports:      runs/demo/distill/export (KD), runs/demo/ppo/export (KD+RL)\n"
        "Next: the whole recipe (bash bin/reproduce hotpotqa, docs/results.md), a real large LM\n"
        "(--llm configs/llm/openai.yaml, vllm.yaml, ...) and the paper-scale presets in\n"
        "configs/hotpotqa/ and configs/2wikimultihopqa/ (see the README)."
    )


def main(argv: list[str]) -> None:
    """Run the quickstart: teacher, distillation, PPO and the comparison table on the CPU."""
    auto_cli(run_demo, args=argv, prog="lmcot demo")
