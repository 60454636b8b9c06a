"""Paired F1 and EM differences, with 95% bootstrap intervals, between the same rows of two
evaluation runs (their ``examples/<row>.jsonl`` files), question by question. For levers that
change what a row's rationales meet rather than the rationales (a reader prompt, a reader model):
``lmcot evaluate`` compares rows of one run; this compares one row across two runs.

    python bin/compare_examples.py NEW_RUN/examples OLD_RUN/examples kd_rl kd oracle
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lm_guided_cot.evaluation.bootstrap import paired_bootstrap


def read_row(folder: Path, row: str) -> dict[str, dict]:
    path = folder / f"{row}.jsonl"
    if not path.is_file():
        sys.exit(
            f"{path}: no such examples file (rows there: {sorted(p.stem for p in folder.glob('*.jsonl'))})"
        )
    with open(path, encoding="utf-8") as handle:
        return {example["id"]: example for example in map(json.loads, handle)}


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    new_dir, old_dir, rows = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    print(f"new: {new_dir}\nold: {old_dir}\n")
    print(
        "| row | questions | new F1 | old F1 | F1 new - old [95% CI] | EM new - old [95% CI] | questions changed |"
    )
    print("|---|---:|---:|---:|---|---|---:|")
    for row in rows:
        new, old = read_row(new_dir, row), read_row(old_dir, row)
        ids = sorted(new.keys() & old.keys())
        if len(ids) != len(new) or len(ids) != len(old):
            print(
                f"{row}: {len(new)} and {len(old)} questions, {len(ids)} shared; comparing those",
                file=sys.stderr,
            )
        cells = []
        for metric in ("f1", "em"):
            d = paired_bootstrap([new[i][metric] for i in ids], [old[i][metric] for i in ids])
            cells.append(f"{100 * d.mean:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}]")
        changed = sum(new[i]["f1"] != old[i]["f1"] for i in ids)
        f1_new = 100 * sum(new[i]["f1"] for i in ids) / len(ids)
        f1_old = 100 * sum(old[i]["f1"] for i in ids) / len(ids)
        print(
            f"| {row} | {len(ids)} | {f1_new:.1f} | {f1_old:.1f} | {cells[0]} | {cells[1]} | {changed} |"
        )


if __name__ == "__main__":
    main()
