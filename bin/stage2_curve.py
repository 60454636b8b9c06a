"""Stage 2 step by step, from a PPO run's TensorBoard events: whether each step trained, and the
guide's reader F1 where an evaluation measured it. Writes CSV + PNG and prints the summary.

    python bin/stage2_curve.py runs/recipe/2wikimultihopqa/ppo/lightning_logs/version_{0,1} \
        --point 0=runs/recipe/2wikimultihopqa/evaluation_guides/examples/kd.jsonl \
        --point 30=runs/recipe/2wikimultihopqa/evaluation_guides/examples/kd_rl.jsonl \
        --out docs/results/2wikimultihopqa/stage2_curve

With ``--first N`` the points are the first N questions of each file: the slice a run's in-run
validation reads (``max_eval_examples``), whose means ``--validation learning_curve.csv`` (the
LearningCurve callback's file) adds to the same panel.

A ``--point BATCH=FILE`` is an evaluation's ``examples/<row>.jsonl`` (per-question ``f1``) of the
guide after BATCH PPO batches (rollouts; 0: the stage-1 guide); its mean and 95% bootstrap interval go on the curve. The training
side: the reward (mean over the step's rationales), the share of questions whose k rewards
differ (``ppo/informative_groups``), whether the policy moved (``ppo/policy_updated``) and the KL
to the stage-1 guide (``kl/mean``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from lm_guided_cot.evaluation.bootstrap import bootstrap_mean
from lm_guided_cot.files import write_atomically
from lm_guided_cot.plots import new_figure, save_png

SERIES = {
    "reward": "reward/total_mean",
    "informative_groups": "ppo/informative_groups",
    "policy_updated": "ppo/policy_updated",
    "policy_loss": "ppo/policy_loss",
    "kl": "kl/mean",
}


def training_series(runs: list[Path]) -> dict[str, dict[int, float]]:
    """``{name: {step: value}}`` for SERIES, the last value a step logged (the folders are read in
    the order given: a resumed run's values win over those its first run logged after the
    checkpoint)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, dict[int, float]] = {name: {} for name in SERIES}
    files = [f for run in runs for f in sorted(run.glob("events.out.tfevents.*"))]
    if not files:
        sys.exit(
            f"{', '.join(map(str, runs))}: no TensorBoard events files (events.out.tfevents.*)"
        )
    for file in files:
        events = EventAccumulator(str(file), size_guidance={"scalars": 0})
        events.Reload()
        tags = set(events.Tags()["scalars"])
        for name, tag in SERIES.items():
            if tag in tags:
                # logged at the batches done before this one: batch s is the s-th rollout
                series[name].update({e.step + 1: e.value for e in events.Scalars(tag)})
    return series


def evaluation_point(spec: str, first: int | None) -> tuple[int, float, float, float, int]:
    """``(step, mean, low, high, n)`` of the per-question F1 in an evaluation's examples file
    (its first ``first`` questions when given)."""
    step, _, path = spec.partition("=")
    if not step.isdigit() or not path:
        sys.exit(f"--point {spec!r}: write BATCH=examples/<row>.jsonl")
    with open(path, encoding="utf-8") as handle:
        scores = [float(json.loads(line)["f1"]) for line in handle if line.strip()]
    if first is not None:
        if len(scores) < first:
            sys.exit(f"--point {spec!r}: {len(scores)} questions, fewer than --first {first}")
        scores = scores[:first]
    interval = bootstrap_mean(scores)
    return int(step), interval.mean, interval.low, interval.high, len(scores)


def in_run_validation(path: Path) -> dict[int, float]:
    """``{batch: val/reward}`` from a LearningCurve CSV (``batches`` column)."""
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"batches", "val/reward"} <= set(rows[0]):
        sys.exit(
            f"--validation {path}: no 'batches' and 'val/reward' columns (a LearningCurve CSV?)"
        )
    return {int(float(r["batches"])): float(r["val/reward"]) for r in rows if r["val/reward"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "runs", type=Path, nargs="+", help="the run's lightning_logs/version_N folders, in order"
    )
    parser.add_argument("--point", action="append", default=[], help="BATCH=examples/<row>.jsonl")
    parser.add_argument("--first", type=int, default=None, help="points on the first N questions")
    parser.add_argument(
        "--validation",
        type=Path,
        default=None,
        help="a LearningCurve CSV: its val/reward (the guide's reader F1) per batch, drawn too",
    )
    parser.add_argument("--out", type=Path, required=True, help="path without extension")
    parser.add_argument("--title", default="Stage 2")
    args = parser.parse_args()

    series = training_series(args.runs)
    steps = sorted(set().union(*(s.keys() for s in series.values())))
    points = sorted(evaluation_point(p, args.first) for p in args.point)
    validation = in_run_validation(args.validation) if args.validation else {}

    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(
        ["batch", *SERIES, "eval_f1", "eval_f1_low", "eval_f1_high", "eval_n", "val_f1"]
    )
    by_step = {p[0]: p for p in points}
    for step in sorted(set(steps) | set(by_step) | set(validation)):
        point = by_step.get(step)
        writer.writerow(
            [
                step,
                *(series[n].get(step, "") for n in SERIES),
                *(point[1:] if point else [""] * 4),
                validation.get(step, ""),
            ]
        )
    write_atomically(args.out.with_suffix(".csv"), table.getvalue().encode())

    figure, axes = new_figure(2, 1, sharex=True, figsize=(7, 6))
    top, bottom = axes[0][0], axes[1][0]
    if points:
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        errors = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
        top.errorbar(xs, ys, yerr=errors, marker="o", capsize=4, label="guide's reader F1 (95% CI)")
        top.set_ylabel(f"answer F1 ({points[0][4]} questions)")
    if validation:
        xs = sorted(validation)
        top.plot(xs, [validation[x] for x in xs], "s--", label="in-run validation (mean)")
    if points or validation:
        top.legend(loc="lower right")
    top.set_title(args.title)
    reward = series["reward"]
    xs = sorted(reward)
    bottom.plot(xs, [reward[s] for s in xs], ".", alpha=0.4, label="reward (step)")
    window = 5
    smooth = [
        sum(reward[x] for x in xs[max(0, i - window + 1) : i + 1])
        / len(xs[max(0, i - window + 1) : i + 1])
        for i in range(len(xs))
    ]
    bottom.plot(xs, smooth, "-", label=f"reward ({window}-step mean)")
    informative = series["informative_groups"]
    bottom.plot(
        sorted(informative),
        [informative[s] for s in sorted(informative)],
        "s",
        ms=3,
        alpha=0.5,
        label="informative groups",
    )
    kl = series["kl"]
    if kl:
        twin = bottom.twinx()
        twin.plot(sorted(kl), [kl[s] for s in sorted(kl)], "k--", lw=1, label="KL to stage 1")
        twin.set_ylabel("KL (nats)")
        twin.legend(loc="upper right")
    bottom.set_xlabel("PPO batch (one rollout; an update unless every group was constant)")
    bottom.set_ylabel("reward / share")
    bottom.legend(loc="upper left")
    save_png(figure, args.out.with_suffix(".png"))

    updated = series["policy_updated"]
    print(
        f"{len(steps)} batches; policy updated on {sum(1 for v in updated.values() if v > 0)} of {len(updated)}"
    )
    if informative:
        print(f"informative groups: mean share {sum(informative.values()) / len(informative):.2f}")
    for step, value in sorted(validation.items()):
        print(f"in-run validation after batch {step}: F1 {100 * value:.1f}")
    for step, mean, low, high, n in points:
        print(
            f"after batch {step}: F1 {100 * mean:.1f} [{100 * low:.1f}, {100 * high:.1f}] on {n} questions"
        )
    print(f"wrote {args.out.with_suffix('.csv')} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
