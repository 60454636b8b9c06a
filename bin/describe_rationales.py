"""What an evaluation's rationale rows did, question by question, from its ``examples/`` folder:
against a base row (standard prompting), how many questions each row helps and hurts; how many of
its rationales name the gold answer (answer inclusion, aliases counted); how much they overlap the
gold supporting sentences (token F1 with the oracle row's rationale); with ``--data``, each row's
F1 by the data file's question ``type``; with ``--sampled``, the mean F1 of a row's individual
answers (under self-consistency, the F1 of one sampled rationale before the vote: what stage 2's
reward measures) and each row's paired difference to the first row named.

    python bin/describe_rationales.py RUN/examples kd kd_768 [--base standard] [--oracle oracle]
        [--data $LMCOT_DATA/hotpotqa/validation.jsonl [--source hotpotqa]] [--sampled]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from lm_guided_cot.data.readers import iter_file_rows
from lm_guided_cot.evaluation.bootstrap import paired_bootstrap
from lm_guided_cot.metrics.scores import answer_f1, best_inclusion, score_answer


def read_row(folder: Path, row: str) -> dict[str, dict]:
    path = folder / f"{row}.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path}: no such examples file")
    with open(path, encoding="utf-8") as handle:
        return {example["id"]: example for example in map(json.loads, handle)}


def describe(folder: Path, rows: list[str], base: str, oracle: str) -> list[dict]:
    """One dict per row: helps, hurts (F1 against ``base``), differs (first rationale not
    ``base``'s), names_gold, gold_overlap."""
    base_row, oracle_row = read_row(folder, base), read_row(folder, oracle)
    out = []
    for row in rows:
        examples = read_row(folder, row)
        ids = sorted(examples.keys() & base_row.keys() & oracle_row.keys())
        first = {i: (examples[i]["rationales"] or [""])[0] for i in ids}
        overlap = [answer_f1(first[i], oracle_row[i]["rationales"][0])[0] for i in ids]
        out.append(
            {
                "row": row,
                "questions": len(ids),
                "helps": sum(examples[i]["f1"] > base_row[i]["f1"] for i in ids),
                "hurts": sum(examples[i]["f1"] < base_row[i]["f1"] for i in ids),
                "differs": sum(first[i] != (base_row[i]["rationales"] or [""])[0] for i in ids),
                "names_gold": int(sum(best_inclusion(first[i], examples[i]["gold"]) for i in ids)),
                "gold_overlap": sum(overlap) / max(len(ids), 1),
            }
        )
    return out


def f1_by_type(
    folder: Path, rows: list[str], data: Path, source: str
) -> dict[str, dict[str, float]]:
    """Each row's mean F1 (0-100) by the data file's question ``type``, with the count per type;
    the file is read as the project reads it (``source``: hotpotqa or 2wikimultihopqa)."""
    types = {r["id"]: r["type"] or "?" for r in iter_file_rows(data, source)}
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        scores = defaultdict(list)
        for i, example in read_row(folder, row).items():
            scores[types.get(i, "?")].append(example["f1"])
        for kind, values in scores.items():
            table[kind]["questions"] = len(values)
            table[kind][row] = 100 * sum(values) / len(values)
    return dict(table)


def sampled_f1(folder: Path, row: str) -> dict[str, float]:
    """Per question, the mean F1 (0-100) of the row's answers, one per rationale (before any
    vote); a question with no answers scores 0."""
    out = {}
    for i, example in read_row(folder, row).items():
        answers = example.get("answers") or []
        scores = [score_answer(a, example["gold"]).f1 for a in answers]
        out[i] = 100 * sum(scores) / len(scores) if scores else 0.0
    return out


def sampled_table(folder: Path, rows: list[str]) -> list[dict]:
    """Each row's mean sampled F1 and, after the first, its paired bootstrap difference to the
    first row on the questions both answered."""
    first = sampled_f1(folder, rows[0])
    out = []
    for row in rows:
        scores = sampled_f1(folder, row)
        ids = sorted(scores.keys() & first.keys())
        diff = None
        if row != rows[0]:
            diff = paired_bootstrap([scores[i] for i in ids], [first[i] for i in ids])
        out.append({"row": row, "questions": len(ids), "mean": _mean(scores, ids), "diff": diff})
    return out


def _mean(scores: dict[str, float], ids: list[str]) -> float:
    return sum(scores[i] for i in ids) / max(len(ids), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("examples", type=Path)
    parser.add_argument("rows", nargs="+")
    parser.add_argument("--base", default="standard")
    parser.add_argument("--oracle", default="oracle")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--source", help="the data file's benchmark (default: its folder's name)")
    parser.add_argument("--sampled", action="store_true", help="mean F1 of each answer, unvoted")
    args = parser.parse_args()
    print(
        f"| row | questions | helps vs {args.base} | hurts | rationale differs |"
        f" names the gold answer | token F1 with {args.oracle} |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for d in describe(args.examples, args.rows, args.base, args.oracle):
        print(
            f"| {d['row']} | {d['questions']} | {d['helps']} | {d['hurts']} | {d['differs']} |"
            f" {d['names_gold']} |"
            f" {d['gold_overlap']:.3f} |"
        )
    if args.data:
        rows = list(dict.fromkeys([args.base, *args.rows, args.oracle]))
        print(f"\n| type | questions | {' | '.join(rows)} |")
        print("|---|---:|" + "---:|" * len(rows))
        source = args.source or args.data.resolve().parent.name
        for kind, cells in f1_by_type(args.examples, rows, args.data, source).items():
            values = " | ".join(f"{cells.get(r, float('nan')):.1f}" for r in rows)
            print(f"| {kind} | {int(cells['questions'])} | {values} |")
    if args.sampled:
        print(f"\n| row | questions | mean F1 of one answer | - {args.rows[0]} [95% CI] |")
        print("|---|---:|---:|---|")
        for d in sampled_table(args.examples, args.rows):
            diff = d["diff"]
            cell = "-" if diff is None else f"{diff.mean:+.1f} [{diff.low:+.1f}, {diff.high:+.1f}]"
            print(f"| {d['row']} | {d['questions']} | {d['mean']:.1f} | {cell} |")


if __name__ == "__main__":
    main()
