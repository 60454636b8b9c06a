"""``lmcot demo``: the quickstart, in two parts, on a CPU, with nothing to configure.

1. The pipeline on this machine: stage 1 and a few PPO steps of the 2WikiMultiHopQA CPU recipe
   on a slice (``configs/demo/distill.yaml``, ``ppo.yaml``), ending with what shows it works
   here: the loss fell, the reward per step, the exports and their model cards.
2. The method: the committed, fully trained KD+RL guide
   (``docs/results/2wikimultihopqa/guides/kd_rl``) against standard prompting and the oracle
   on the 100 2WikiMultiHopQA dev questions of the shared data (``configs/demo/evaluate.yaml``),
   with paired bootstrap intervals. The committed reply cache answers the reader's calls.

Each stage is the command a user would run by hand, printed as it starts. Everything lands
under ``runs/demo/``; large-LM replies are cached there.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

from jsonargparse import auto_cli
from rich.console import Console

from lm_guided_cot.cli import evaluate, trainer
from lm_guided_cot.cli.reproduce import run_recipe
from lm_guided_cot.errors import ConfigurationError, MissingFileError
from lm_guided_cot.llm.cache import ReplyCache
from lm_guided_cot.paths import expand_path, repository_configs

BENCHMARK = "2wikimultihopqa"
# what the method part replays: the committed guides' reader replies (docs/results.md)
COMMITTED_CACHE = f"docs/results/{BENCHMARK}/llm_cache.sqlite"
GUIDE, BASELINE = "kd_rl", "standard"


def _config_dir(config_dir: str | None) -> Path:
    folder = repository_configs(config_dir)
    if not (folder / "demo" / "distill.yaml").exists():
        raise MissingFileError(
            f"{folder}: the demo presets (demo/*.yaml) are not there; run the demo from a clone "
            "of the repository (pip install -e .) or pass --config_dir CLONE/configs"
        )
    return folder


def _check_data() -> None:
    folder = Path(expand_path(f"$LMCOT_DATA/{BENCHMARK}"))
    missing = [p for p in ("train.json", "dev.json") if not (folder / p).is_file()]
    if missing:
        raise MissingFileError(
            f"{folder}: {', '.join(missing)} missing; the demo reads the shared 2WikiMultiHopQA "
            "files (set LMCOT_DATA to the folder that holds 2wikimultihopqa/)"
        )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _trend(steps: list[dict[str, float]], key: str, ends: int = 3) -> tuple[float, float] | None:
    values = [s[key] for s in steps if key in s]
    if len(values) < 2:
        return None
    ends = max(1, min(ends, len(values) // 2))
    return _mean(values[:ends]), _mean(values[-ends:])


def _history(cli) -> list[dict[str, float]]:
    from lm_guided_cot.stages import StepHistory

    found = [c for c in cli.trainer.callbacks if isinstance(c, StepHistory)]
    return found[0].steps if found else []


def _export_line(folder: str) -> str:
    path = Path(folder)
    card = path / "README.md"
    size = sum(f.stat().st_size for f in path.glob("*.safetensors")) / 1e6
    return f"{path} ({size:.1f} MB of weights{', model card README.md' if card.is_file() else ''})"


def _pipeline(console: Console, configs: Path, data: list[str]) -> None:
    history = ["--trainer.callbacks+=lm_guided_cot.stages.StepHistory"]
    stages = [
        ("1a stage 1: distillation", "distill.yaml"),
        ("1b stage 2: PPO", "ppo.yaml"),
    ]
    found: dict[str, tuple[list[dict[str, float]], str]] = {}
    for title, preset in stages:
        args = ["fit", *data, "-c", str(configs / "demo" / preset), *history]
        console.rule(f"[bold]{title}")
        console.print("lmcot " + " ".join(args[:-1]), style="dim", soft_wrap=True)
        start = time.perf_counter()
        cli = trainer.run_trainer(args)
        console.print(f"{title}: {time.perf_counter() - start:.0f} s")
        found[preset] = (_history(cli), cli.model.hparams.export_dir)
    console.rule("[bold]the pipeline works here")
    (distill, distill_export), (ppo, ppo_export) = found["distill.yaml"], found["ppo.yaml"]
    loss = _trend(distill, "train/loss")
    if loss is not None:
        verdict = "it learns" if loss[1] < loss[0] else "[yellow]it did not fall[/]"
        console.print(
            f"stage 1: training loss {loss[0]:.3f} (first steps) -> {loss[1]:.3f} (last steps): "
            f"{verdict}"
        )
    rewards = [s["reward/total_mean"] for s in ppo if "reward/total_mean" in s]
    updated = sum(s.get("ppo/policy_updated", 0) > 0 for s in ppo)
    kl = ppo[-1].get("kl/k3") if ppo else None  # k3: never negative, unlike the plain mean
    console.print(
        "stage 2: reward per step (the reader's answer F1) "
        + ", ".join(f"{r:.2f}" for r in rewards)
        + f"; the policy moved on {updated} of {len(ppo)} steps"
        + (f"; KL to the stage-1 guide {kl:.4f}" if kl is not None else "")
    )
    console.print(f"exports: {_export_line(distill_export)}\n         {_export_line(ppo_export)}")


def _method_settings(configs: Path) -> tuple[str, Path]:
    """The reply cache and the output folder part 2's preset names (one place says them)."""
    import yaml

    preset = configs / "demo" / "evaluate.yaml"
    settings = yaml.safe_load(preset.read_text(encoding="utf-8"))
    try:
        return settings["llm"]["cache_path"], Path(settings["output_dir"])
    except (KeyError, TypeError):
        raise ConfigurationError(f"{preset}: needs llm.cache_path and output_dir") from None


def _seed_cache(console: Console, root: Path, cache_path: str) -> None:
    committed = root / COMMITTED_CACHE
    if not committed.is_file():
        raise MissingFileError(f"{committed}: the committed reply cache the method part replays")
    cache = ReplyCache(cache_path)
    try:
        added = cache.add_from(committed)
    finally:
        cache.close()
    if added:
        console.print(f"reply cache: {added:,} committed replies copied into {cache_path}")


def _method(console: Console, configs: Path, data: list[str]) -> Path:
    cache_path, output = _method_settings(configs)
    _seed_cache(console, configs.parent, cache_path)
    args = ["evaluate", *data, "-c", str(configs / "demo" / "evaluate.yaml")]
    console.rule("[bold]2 the method: the committed KD+RL guide against standard prompting")
    console.print("lmcot " + " ".join(args), style="dim", soft_wrap=True)
    start = time.perf_counter()
    evaluate.evaluate(args[1:])
    console.print(f"evaluation: {time.perf_counter() - start:.0f} s")
    with open(output / "comparisons.csv", encoding="utf-8") as handle:
        rows = {(r["setting"], r["vs"], r["metric"]): r for r in csv.DictReader(handle)}
    console.rule("[bold]what the numbers mean")
    row = rows.get((GUIDE, BASELINE, "f1"))
    if row is not None:
        low, high = 100 * float(row["ci low"]), 100 * float(row["ci high"])
        sign = "above" if low > 0 else "below" if high < 0 else "not clearly apart from"
        console.print(
            f"KD+RL guide - standard prompting: {100 * float(row['difference']):+.1f} F1 "
            f"[{low:+.1f}, {high:+.1f}] (95% paired bootstrap): the small guide's rationales "
            f"put the reader {sign} its own answers on these questions."
        )
    console.print(
        "These are the 100 dev questions of the shared data, on which the recipe was chosen: "
        "a previous guide that beat standard prompting here was below it on 200 unseen "
        "questions. docs/results.md has the whole comparison (CoT, KD, the judge's rationale "
        f"scores) and how each number was made. Figures: {output}/figures/."
    )
    return output


def run_demo(
    config_dir: str | None = None,
    train_only: bool = False,
    eval_only: bool = False,
    full: bool = False,
) -> None:
    """Run the quickstart: the pipeline on this machine, then the method with the committed guide.

    Args:
        config_dir: the repository's ``configs`` folder (found beside the package by default).
        train_only: only part 1 (distillation and a few PPO steps on a slice).
        eval_only: only part 2 (the committed guide against standard prompting).
        full: the whole 2WikiMultiHopQA recipe instead (``lmcot reproduce 2wikimultihopqa``:
            hours on 2 cores).
    """
    if sum((train_only, eval_only, full)) > 1:
        raise ConfigurationError("lmcot demo: choose one of --train_only, --eval_only, --full")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    configs = _config_dir(config_dir)
    if full:
        run_recipe(BENCHMARK, config_dir=str(configs))
        return
    _check_data()
    console = Console(soft_wrap=True)  # lines stay whole in log files
    data = ["-c", str(configs / "recipe" / BENCHMARK / "data.yaml")]
    start = time.perf_counter()
    if not eval_only:
        console.print(
            "[bold]part 1 of 2[/]: the pipeline on this machine (about 7 min on 2 cores): stage 1 "
            "and 3 PPO steps on a 2WikiMultiHopQA slice"
        )
        _pipeline(console, configs, data)
    if not train_only:
        console.print(
            "[bold]part 2 of 2[/]: the method (about 3 min on 2 cores): the committed KD+RL "
            "guide against standard prompting and the oracle on 100 2WikiMultiHopQA questions"
        )
        output = _method(console, configs, data)
    console.rule("[bold]done")
    where = (
        f"  table:        {output}/results.md (and results.csv, comparisons.csv)\n"
        f"  per question: {output}/examples/*.jsonl\n"
        if not train_only
        else ""
    )
    console.print(
        f"demo finished in {(time.perf_counter() - start) / 60:.1f} min.\n"
        + where
        + "  TensorBoard:  tensorboard --logdir runs/demo\n"
        "Next: the whole recipe (lmcot demo --full, or bash bin/reproduce 2wikimultihopqa), a "
        "real large LM (--llm configs/llm/openai.yaml, vllm.yaml, ...) and the paper-scale "
        "presets in configs/hotpotqa/ and configs/2wikimultihopqa/ (see the README)."
    )


def main(argv: list[str]) -> None:
    """Run the quickstart: the pipeline on this machine, then the committed guide's comparison."""
    auto_cli(run_demo, args=_flags(argv), prog="lmcot demo")


def _flags(argv: list[str]) -> list[str]:
    """``--train-only`` / ``--train_only`` alone mean ``--train_only true`` (the parser's bool
    options want a value), likewise ``--eval-only`` and ``--full``."""
    names = {"--train-only": "--train_only", "--eval-only": "--eval_only"}
    out: list[str] = []
    for i, arg in enumerate(argv):
        arg = names.get(arg, arg)
        out.append(arg)
        bare = i + 1 == len(argv) or argv[i + 1].startswith("-")
        if arg in ("--train_only", "--eval_only", "--full") and bare:
            out.append("true")
    return out
