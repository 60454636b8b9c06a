"""Paired differences between any two rows of a judge check, per aspect, with 95% bootstrap
intervals (``lmcot judge-check`` itself reports oracle - decoy):

    python bin/judge_pairs.py runs/judge_check/2wikimultihopqa/scores.jsonl kd_rl:kd cot:oracle

or of an evaluation run with a judge (its ``examples/<row>.jsonl`` files; the evaluation's own
comparisons.csv has the rows' EM and F1 differences):

    python bin/judge_pairs.py runs/recipe/2wikimultihopqa/evaluation_judged/examples kd_rl:kd
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

from lm_guided_cot.evaluation.bootstrap import paired_bootstrap


def main() -> None:
    if len(sys.argv) < 3 or any(":" not in pair for pair in sys.argv[2:]):
        sys.exit(__doc__)
    rows: dict[str, dict[str, dict[str, float]]] = collections.defaultdict(dict)
    source = Path(sys.argv[1])
    if source.is_dir():  # an evaluation's examples: one file per row, judged rows only
        for path in sorted(source.glob("*.jsonl")):
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    record = json.loads(line)
                    if record.get("aspects"):
                        rows[path.stem][record["id"]] = record["aspects"]
    else:
        with open(source, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                rows[record["row"]][record["id"]] = record["scores"]
    print("| a - b | aspect | difference | ci low | ci high | questions |")
    print("|---|---|---|---|---|---|")
    for pair in sys.argv[2:]:
        a, b = pair.split(":")
        missing = [name for name in (a, b) if name not in rows]
        if missing:
            sys.exit(f"{sys.argv[1]}: no row {missing[0]!r} (rows: {', '.join(rows)})")
        ids = [i for i in rows[a] if i in rows[b]]
        aspects = list(rows[a][ids[0]])
        for aspect in [*aspects, "mean"]:

            def score(row: str, i: str, aspect: str = aspect) -> float:
                values = rows[row][i]
                return sum(values.values()) / len(values) if aspect == "mean" else values[aspect]

            d = paired_bootstrap([score(a, i) for i in ids], [score(b, i) for i in ids])
            print(
                f"| {a} - {b} | {aspect} | {d.mean:+.3f} | {d.low:+.3f} | {d.high:+.3f} | {len(ids)} |"
            )


if __name__ == "__main__":
    main()
