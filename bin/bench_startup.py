"""Start-up of the verbs that need no model: ``lmcot --help``, ``lmcot models list`` and
``lmcot score PRED GOLD`` on 500 HotpotQA records, against the official HotpotQA evaluation script
(a stdlib transcription of hotpot_evaluate_v1.py's ``eval``, below) on the same files. Each
command runs in a fresh process, alternated over the repeats; wall time and peak resident memory
(``/usr/bin/time``), median of the repeats, and the ratio to the official script.

    python bin/bench_startup.py [--repeats 5] [--src OTHER_CHECKOUT/src]

``--src`` measures another checkout the same way (its ``lm_guided_cot`` first on the path), for a
before/after table. Stop other work first: the targets are for idle cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DATA = Path(os.environ.get("LMCOT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

OFFICIAL = r"""
import json, re, string, sys
from collections import Counter

def normalize_answer(s):
    def remove_articles(text): return re.sub(r"\b(a|an|the)\b", " ", text)
    def white_space_fix(text): return " ".join(text.split())
    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)
    return white_space_fix(remove_articles(remove_punc(s.lower())))

def f1_score(prediction, ground_truth):
    p, g = normalize_answer(prediction), normalize_answer(ground_truth)
    zero = (0, 0, 0)
    if p in ["yes", "no", "noanswer"] and p != g: return zero
    if g in ["yes", "no", "noanswer"] and p != g: return zero
    p, g = p.split(), g.split()
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0: return zero
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall), precision, recall

def update_answer(metrics, prediction, gold):
    em = float(normalize_answer(prediction) == normalize_answer(gold))
    f1, prec, recall = f1_score(prediction, gold)
    metrics["em"] += em; metrics["f1"] += f1; metrics["prec"] += prec; metrics["recall"] += recall
    return em, prec, recall

def update_sp(metrics, prediction, gold):
    cur_sp_pred, gold_sp_pred = set(map(tuple, prediction)), set(map(tuple, gold))
    tp = len(cur_sp_pred & gold_sp_pred)
    fp, fn = len(cur_sp_pred - gold_sp_pred), len(gold_sp_pred - cur_sp_pred)
    prec = 1.0 * tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = 1.0 * tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * prec * recall / (prec + recall) if prec + recall > 0 else 0.0
    em = 1.0 if fp + fn == 0 else 0.0
    metrics["sp_em"] += em; metrics["sp_f1"] += f1; metrics["sp_prec"] += prec; metrics["sp_recall"] += recall
    return em, prec, recall

def eval(prediction_file, gold_file):
    prediction = json.load(open(prediction_file)); gold = json.load(open(gold_file))
    keys = ["em", "f1", "prec", "recall", "sp_em", "sp_f1", "sp_prec", "sp_recall",
            "joint_em", "joint_f1", "joint_prec", "joint_recall"]
    metrics = dict.fromkeys(keys, 0)
    for dp in gold:
        cur_id = dp["_id"]
        em, prec, recall = update_answer(metrics, prediction["answer"][cur_id], dp["answer"])
        sp_em, sp_prec, sp_recall = update_sp(metrics, prediction["sp"][cur_id], dp["supporting_facts"])
        joint_prec, joint_recall = prec * sp_prec, recall * sp_recall
        joint_f1 = 2 * joint_prec * joint_recall / (joint_prec + joint_recall) if joint_prec + joint_recall > 0 else 0.0
        metrics["joint_em"] += em * sp_em; metrics["joint_f1"] += joint_f1
        metrics["joint_prec"] += joint_prec; metrics["joint_recall"] += joint_recall
    for k in metrics: metrics[k] /= len(gold)
    print(metrics)

eval(sys.argv[1], sys.argv[2])
"""


def write_files(folder: Path, n: int) -> tuple[Path, Path]:
    """500 HotpotQA records (train, then validation) in the official layout, and predictions
    (the gold answer or another record's, the gold facts with one dropped now and then)."""
    rows = []
    for split in ("train", "validation"):
        with open(DATA / "hotpotqa" / f"{split}.jsonl", encoding="utf-8") as f:
            rows += [json.loads(line) for line in f]
    rows = rows[:n]
    if len(rows) < n:
        sys.exit(f"{DATA}/hotpotqa holds {len(rows)} records, not {n}")
    rng = random.Random(0)
    gold, answers, facts = [], {}, {}
    for row in rows:
        sp = [
            [t, s]
            for t, s in zip(row["supporting_facts"]["title"], row["supporting_facts"]["sent_id"])
        ]
        context = [[t, s] for t, s in zip(row["context"]["title"], row["context"]["sentences"])]
        gold.append(
            {
                "_id": row["id"],
                "question": row["question"],
                "answer": row["answer"],
                "type": row["type"],
                "level": row["level"],
                "supporting_facts": sp,
                "context": context,
            }
        )
        answers[row["id"]] = row["answer"] if rng.random() < 0.5 else rng.choice(rows)["answer"]
        facts[row["id"]] = sp[1:] if rng.random() < 0.3 else sp
    gold_file, pred_file = folder / "gold.json", folder / "pred.json"
    gold_file.write_text(json.dumps(gold), encoding="utf-8")
    pred_file.write_text(json.dumps({"answer": answers, "sp": facts}), encoding="utf-8")
    return pred_file, gold_file


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one run (it must succeed)."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", *command], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    seconds, kib = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--src", help="another checkout's src folder, measured instead of this one")
    args = parser.parse_args()
    env = dict(os.environ)
    src = Path(args.src or Path(__file__).resolve().parents[1] / "src").resolve()
    env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as tmp:
        pred, gold = write_files(Path(tmp), args.records)
        official = Path(tmp) / "hotpot_evaluate_v1.py"
        official.write_text(OFFICIAL, encoding="utf-8")
        lmcot = [sys.executable, "-m", "lm_guided_cot.cli"]
        commands = {
            "official script": [sys.executable, str(official), str(pred), str(gold)],
            "lmcot --help": [*lmcot, "--help"],
            f"lmcot score ({args.records} records)": [
                *lmcot,
                "score",
                str(pred),
                str(gold),
                "--source",
                "hotpotqa",
            ],
            "lmcot models list": [*lmcot, "models", "list"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        peaks: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                seconds, mib = measure(command, env)
                times[name].append(seconds)
                peaks[name].append(mib)
    base_s = statistics.median(times["official script"])
    base_m = statistics.median(peaks["official script"])
    print(f"src: {src}; {args.repeats} runs each, medians; {os.cpu_count()} cores")
    print("| command | wall s | x official | peak MiB | x official |\n|---|---:|---:|---:|---:|")
    for name in commands:
        s, m = statistics.median(times[name]), statistics.median(peaks[name])
        print(f"| {name} | {s:.2f} | {s / base_s:.1f} | {m:.0f} | {m / base_m:.1f} |")


if __name__ == "__main__":
    main()
