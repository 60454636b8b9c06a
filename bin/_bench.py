"""What the benchmark scripts share: each contender in its own process, alternated over the
repeats (so drift hits all alike), one JSON line back from each, medians, peak memory."""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

# arguments of the parent that the children must not get again
_PARENT_ONLY = ("child", "model", "workdir", "runs", "no_live_memory")


def add_common_arguments(parser: argparse.ArgumentParser, runs: list[str]) -> None:
    """Repeats, device, precision and threads, plus the hidden arguments of a child run."""
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument(
        "--precision", default=None, help="default: bf16-mixed on cuda, 32-true on cpu"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--gradient_checkpointing",
        action="store_true",
        help="every contender recomputes activations in backward",
    )
    parser.add_argument(
        "--no_live_memory",
        action="store_true",
        help="on a CPU, skip the extra run per contender that measures the live peak (shown -)",
    )
    parser.add_argument("--child", choices=runs, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)


def parse(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, with the precision defaulting by device."""
    args = parser.parse_args()
    args.precision = args.precision or ("bf16-mixed" if args.device == "cuda" else "32-true")
    return args


# glibc serves a freed block of up to 32 MiB again from its heap instead of unmapping it, so a
# CPU run's peak RSS carries a fragmentation high-water mark that moves by +-100 MiB between
# identical runs (seen in bin/bench_distill.py). With a fixed, low mmap threshold every tensor
# is mapped and unmapped on its own: RSS then follows the bytes in use, run after run, at about
# half the speed. So CPU memory is measured in one extra run per contender, with this setting.
LIVE_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def stamp(device: str, stamps: list[float]) -> None:
    """Append the time at which the device has finished all work queued so far."""
    if device == "cuda":
        torch.cuda.synchronize()
    stamps.append(time.perf_counter())


def lightning_trainer(args: argparse.Namespace, stamps: list[float], **limits):
    """Lightning's Trainer doing nothing but training (no logger, checkpoints, progress bar,
    summary or sanity validation), stamping the clock after every training batch."""
    import lightning as L

    class Stamp(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            stamp(args.device, stamps)

    return L.Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1,
        precision=args.precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[Stamp()],
        **limits,
    )


def common_settings(args: argparse.Namespace) -> str:
    """The end of a table's title: what every contender ran with."""
    checkpointing = "on" if args.gradient_checkpointing else "off"
    return (
        f"gradient checkpointing {checkpointing}, {args.device}, {args.precision}, "
        f"{args.threads} threads, median of {args.repeats}"
    )


def run_children(
    script: Path, runs: list[str], args: argparse.Namespace, model: Path, workdir: str
) -> dict[str, list[dict]]:
    """Run ``script --child RUN`` for each run, ``args.repeats`` times; their JSON results.

    On a CPU, one more run of each (with ``LIVE_MEMORY_ENV``) adds ``live_mib`` to every result.
    """
    results: dict[str, list[dict]] = {run: [] for run in runs}
    forwarded = [
        f"--{k}" if v is True else f"--{k}={v}"
        for k, v in vars(args).items()
        if k not in _PARENT_ONLY and v is not None and v is not False
    ]

    def one(run: str, env: dict[str, str] | None = None) -> dict:
        cmd = [sys.executable, str(script), "--child", run, "--model", str(model)]
        cmd += ["--workdir", workdir, *forwarded]
        done = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}
        )
        if done.returncode != 0:
            sys.exit(f"{run} failed:\n{done.stderr[-4000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if result["checkpointing"] != args.gradient_checkpointing:  # not a like-for-like run
            sys.exit(f"{run} ran with gradient checkpointing {result['checkpointing']}")
        return result

    if args.device == "cuda":
        # Discarded: on a fresh H100 the first process timed ~2x slower (twice, 2026-11-26:
        # 11.4k and 11.6k tokens/s against 23k-27k for every later one), GPU warm-up or not.
        one(runs[0])
    for _ in range(args.repeats):
        for run in runs:
            results[run].append(one(run))
    for run in runs:
        if args.device == "cuda":
            live = None  # max allocated is already the live peak
        elif args.no_live_memory:
            live = float("nan")
        else:
            live = one(run, LIVE_MEMORY_ENV)["peak_mib"]
        for result in results[run]:
            result["live_mib"] = live if live is not None else result["peak_mib"]
    return results


def medians(results: dict[str, list[dict]], keys: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per run, the median of each key over the repeats, and its spread as ``KEY_min/_max``."""
    out = {}
    for run, rows in results.items():
        out[run] = {k: statistics.median(r[k] for r in rows) for k in keys}
        out[run].update({f"{k}_min": min(r[k] for r in rows) for k in keys})
        out[run].update({f"{k}_max": max(r[k] for r in rows) for k in keys})
    return out


def print_table(
    title: str, speed: str, rows: dict[str, str], med: dict[str, dict[str, float]], device: str
) -> None:
    """One line per contender: speed (median, min-max) and memory; a CPU adds the live peak."""
    print(title)
    unit = {"tokens_per_s": "tokens/s", "samples_per_s": "samples/s"}[speed]
    if device == "cpu":
        print(
            f"{'trainer':34s} {unit:>10s} {'(min-max)':>15s} {'peak RSS MiB':>20s} {'live MiB':>9s}"
        )
    else:
        print(f"{'trainer':34s} {unit:>10s} {'(min-max)':>15s} {'max allocated MiB':>20s}")
    for run, label in rows.items():
        m = med[run]
        spread = f"({m[speed + '_min']:.2f}-{m[speed + '_max']:.2f})"
        line = f"{label:34s} {m[speed]:10.2f} {spread:>15s}"
        if device == "cpu":
            rss = f"{m['peak_mib']:.0f} ({m['peak_mib_min']:.0f}-{m['peak_mib_max']:.0f})"
            live = "-" if math.isnan(m["live_mib"]) else f"{m['live_mib']:.0f}"  # nan: skipped
            line += f" {rss:>20s} {live:>9s}"
        else:
            line += f" {m['peak_mib']:20.0f}"
        print(line)


def print_ratio(med: dict[str, dict[str, float]], ours: str, theirs: str, speed: str) -> None:
    """Ours over theirs: speed, and memory by the measure that is not allocator noise."""
    memory = med[ours]["live_mib"] / med[theirs]["live_mib"]
    print(
        f"ratio {ours}/{theirs}: speed {med[ours][speed] / med[theirs][speed]:.2f}x, "
        f"memory {'-' if math.isnan(memory) else f'{memory:.2f}x'}"
    )


def peak_memory_mib(device: str) -> float:
    """This process's peak: max allocated on CUDA, max resident set size on a CPU."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
