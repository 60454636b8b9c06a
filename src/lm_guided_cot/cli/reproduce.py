"""``lmcot reproduce``: the CPU recipe of ``configs/recipe/<benchmark>/`` end to end, resumable.

Teacher rationales -> distillation -> PPO -> the comparison table (docs/results.md), each stage
the command a user would run by hand, printed as it starts. A stage whose output exists is
skipped (rationale files, the stage's whole export: ``output_folders.is_export``); a training
stage with a ``last.ckpt`` resumes from it; large-LM replies are cached, so a rerun sends only
what had no reply.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

from jsonargparse import auto_cli
from rich.console import Console

from lm_guided_cot.cli import evaluate, rationales, trainer
from lm_guided_cot.errors import ConfigurationError, MissingFileError
from lm_guided_cot.output_folders import is_export
from lm_guided_cot.paths import expand_path, repository_configs

Benchmark = Literal["hotpotqa", "2wikimultihopqa"]
Stage = Literal["teacher", "distill", "ppo", "evaluate"]
STAGES: tuple[str, ...] = ("teacher", "distill", "ppo", "evaluate")


def _recipe_dir(config_dir: str | None, benchmark: str) -> Path:
    root = repository_configs(config_dir)
    folder = root / "recipe" / benchmark
    if not (folder / "data.yaml").exists():
        raise MissingFileError(
            f"{folder}: the recipe's configs are not there; run from a clone of the repository "
            "(pip install -e .) or pass --config_dir CLONE/configs"
        )
    return folder


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _fit_args(folder: Path, stage: str) -> tuple[list[str], Path, Path]:
    """``fit`` arguments of a training stage, its export folder and its ``last.ckpt``."""
    path = folder / f"{stage}.yaml"
    config = _yaml(path)
    export = _setting(path, config, "model.init_args.export_dir", "where the stage's export goes")
    callbacks = (config.get("trainer") or {}).get("callbacks") or []
    savers = [
        c
        for c in (callbacks if isinstance(callbacks, list) else [callbacks])
        if isinstance(c, dict) and str(c.get("class_path", "")).endswith("ModelCheckpoint")
    ]
    dirpath = ((savers[0] if savers else {}).get("init_args") or {}).get("dirpath")
    if not dirpath:
        raise ConfigurationError(
            f"{path}: trainer.callbacks needs a ModelCheckpoint with init_args.dirpath (the "
            f"recipe resumes from its last.ckpt); see configs/recipe/hotpotqa/{path.name}"
        )
    checkpoints = Path(expand_path(str(dirpath)))
    export = Path(expand_path(str(export)))
    args = ["fit", "-c", str(folder / "data.yaml"), "-c", str(folder / f"{stage}.yaml")]
    return args, export, checkpoints / "last.ckpt"


def _setting(path: Path, config: object, key: str, what: str) -> object:
    """``config``'s value at the dotted ``key``, or a ``ConfigurationError`` naming the file."""
    value = config
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        raise ConfigurationError(
            f"{path}: {key} is not set; the recipe needs it ({what}); see "
            f"configs/recipe/hotpotqa/{path.name}"
        )
    return value


def run_recipe(
    benchmark: Benchmark = "hotpotqa",
    stages: list[Stage] | None = None,
    eval_file: str | None = None,
    output_dir: str | None = None,
    config_dir: str | None = None,
) -> None:
    """Run the CPU recipe for a benchmark: teacher, distillation, PPO, evaluation.

    Args:
        benchmark: ``hotpotqa`` or ``2wikimultihopqa`` (``configs/recipe/<benchmark>/``).
        stages: the stages to run, in order (default: all four).
        eval_file: evaluate on this file (either official layout of the benchmark) instead of
            the recipe's validation questions; every question in it is evaluated.
        output_dir: where the evaluation writes (default: the recipe's, or
            ``<its folder>-<file stem>`` with ``eval_file``).
        config_dir: the repository's ``configs`` folder (found beside the package by default).
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    console = Console(soft_wrap=True)  # lines stay whole in log files
    # bin/reproduce runs from the repository root: paths the caller gave are theirs
    caller = Path(os.environ.get("LMCOT_CALLER_DIR", "."))
    eval_file = str(caller / expand_path(eval_file)) if eval_file else None
    output_dir = str(caller / expand_path(output_dir)) if output_dir else None
    config_dir = str(caller / expand_path(config_dir)) if config_dir else None
    folder = _recipe_dir(config_dir, benchmark)
    data = ["-c", str(folder / "data.yaml")]
    chosen = list(stages or STAGES)
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        raise ConfigurationError(f"--stages: unknown {unknown}; use {list(STAGES)}")
    start = time.perf_counter()
    for number, stage in enumerate(chosen, 1):
        title = f"{number}/{len(chosen)} {stage}"
        console.rule(f"[bold]{title}")
        stage_start = time.perf_counter()
        if stage == "teacher":
            settings = _yaml(folder / "data.yaml")["data"]["init_args"]["rationales"]
            done = [
                Path(expand_path(settings["dir"]), f"{s}.jsonl") for s in ("train", "validation")
            ]
            if all(path.exists() for path in done):
                console.print(f"{done[0].parent}: teacher rationales exist: skipped")
                continue
            args = ["rationales", *data, "-c", str(folder / "distill.yaml")]
            console.print("lmcot " + " ".join(args), style="dim", soft_wrap=True)
            rationales.rationales(args[1:])
        elif stage in ("distill", "ppo"):
            args, export, last = _fit_args(folder, stage)
            if is_export(export):  # a whole export, not a folder that merely has a config
                console.print(
                    f"{export} exists: skipped (to train again, delete it and {last.parent}; "
                    "a new distill export also needs the PPO stage's folders deleted)"
                )
                continue
            if last.exists():
                args += ["--ckpt_path", str(last)]
            console.print("lmcot " + " ".join(args), style="dim", soft_wrap=True)
            trainer.run_trainer(args)
        else:
            args = ["evaluate", *data, "-c", str(folder / "evaluate.yaml")]
            if eval_file is not None:
                default = _yaml(folder / "evaluate.yaml")["output_dir"]
                args += ["--data.init_args.test", eval_file]
                output_dir = output_dir or f"{default}-{Path(eval_file).stem}"
            if output_dir is not None:
                args += ["--output_dir", output_dir]
            console.print("lmcot " + " ".join(args), style="dim", soft_wrap=True)
            evaluate.evaluate(args[1:])
        console.print(f"{title}: {time.perf_counter() - stage_start:.0f} s")
    console.rule(f"[bold]done in {(time.perf_counter() - start) / 60:.1f} min")


def main(argv: list[str]) -> None:
    """Run the CPU recipe of a benchmark end to end, resumable (lmcot reproduce BENCHMARK)."""
    if argv and not argv[0].startswith("-"):
        argv = ["--benchmark", argv[0], *argv[1:]]
    auto_cli(run_recipe, args=argv, prog="lmcot reproduce")
