"""What the benchmark scripts share: each contender in its own process, alternated over the
repeats (so drift hits all alike), one JSON line back from each, medians, peak memory."""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import torch

# arguments of the parent that the children must not get again
_PARENT_ONLY = ("child", "model", "workdir", "runs")


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
    parser.add_argument("--child", choices=runs, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)


def parse(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, with the precision defaulting by device."""
    args = parser.parse_args()
    args.precision = args.precision or ("bf16-mixed" if args.device == "cuda" else "32-true")
    return args


def run_children(
    script: Path, runs: list[str], args: argparse.Namespace, model: Path, workdir: str
) -> dict[str, list[dict]]:
    """Run ``script --child RUN`` for each run, ``args.repeats`` times; their JSON results."""
    results: dict[str, list[dict]] = {run: [] for run in runs}
    forwarded = [
        f"--{k}={v}" for k, v in vars(args).items() if k not in _PARENT_ONLY and v is not None
    ]
    for _ in range(args.repeats):
        for run in runs:
            cmd = [sys.executable, str(script), "--child", run, "--model", str(model)]
            cmd += ["--workdir", workdir, *forwarded]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{run} failed:\n{done.stderr[-4000:]}")
            results[run].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def medians(results: dict[str, list[dict]], keys: tuple[str, ...]) -> dict[str, dict[str, float]]:
    return {
        run: {k: statistics.median(r[k] for r in rows) for k in keys}
        for run, rows in results.items()
    }


def peak_memory_mib(device: str) -> float:
    """This process's peak: max allocated on CUDA, max resident set size on a CPU."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
