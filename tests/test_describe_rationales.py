"""bin/describe_rationales.py: the per-row counts results.md quotes, on hand-made examples."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.helpers import hotpot_record, write_jsonl

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("describe", REPO / "bin/describe_rationales.py")
describe_rationales = importlib.util.module_from_spec(spec)
spec.loader.exec_module(describe_rationales)


def write_row(folder: Path, row: str, examples: list[tuple[str, str, float]]) -> None:
    with open(folder / f"{row}.jsonl", "w", encoding="utf-8") as handle:
        for qid, rationale, f1 in examples:
            record = {"id": qid, "gold": ["Paris", "City of Light"], "rationales": [rationale]}
            handle.write(json.dumps({**record, "f1": f1}) + "\n")


def test_helps_hurts_gold_names_and_overlap(tmp_path):
    write_row(tmp_path, "standard", [("a", "", 0.5), ("b", "", 0.5), ("c", "", 0.5)])
    write_row(tmp_path, "oracle", [(q, "The capital is Paris.", 1.0) for q in "abc"])
    write_row(
        tmp_path,
        "kd",
        [("a", "The capital is Paris.", 1.0), ("b", "the city of light", 0.0), ("c", "x", 0.5)],
    )
    (row,) = describe_rationales.describe(tmp_path, ["kd"], "standard", "oracle")
    assert (row["helps"], row["hurts"], row["names_gold"]) == (1, 1, 2)  # an alias counts
    assert row["differs"] == 3  # standard prompting has no rationale
    assert row["gold_overlap"] == pytest.approx(1 / 3)  # one rationale equals the oracle's


def test_f1_by_type_reads_both_benchmarks_files(tmp_path, shared_data):
    write_row(tmp_path, "kd", [("a", "", 1.0), ("b", "", 0.0), ("c", "", 0.5)])
    types = ["bridge", "bridge", "comparison"]
    data = write_jsonl(
        tmp_path / "validation.jsonl", [hotpot_record(q, type=t) for q, t in zip("abc", types)]
    )
    table = describe_rationales.f1_by_type(tmp_path, ["kd"], data, "hotpotqa")
    assert table == {
        "bridge": {"questions": 2, "kd": 50.0},
        "comparison": {"questions": 1, "kd": 50.0},
    }
    dev = shared_data / "2wikimultihopqa/dev.json"  # one JSON array, ids in _id
    first, second = json.loads(dev.read_text(encoding="utf-8"))[:2]
    write_row(tmp_path, "kd", [(first["_id"], "", 1.0), (second["_id"], "", 0.0)])
    table = describe_rationales.f1_by_type(tmp_path, ["kd"], dev, "2wikimultihopqa")
    if first["type"] == second["type"]:
        assert table == {first["type"]: {"questions": 2, "kd": 50.0}}
    else:
        assert table[first["type"]]["kd"] == 100.0 and table[second["type"]]["kd"] == 0.0


def test_sampled_f1_scores_each_answer_before_the_vote(tmp_path):
    def write(row, answers):
        with open(tmp_path / f"{row}.jsonl", "w", encoding="utf-8") as handle:
            for qid, got in answers.items():
                record = {"id": qid, "gold": ["Paris", "City of Light"], "answers": got}
                handle.write(json.dumps({**record, "rationales": [""] * len(got), "f1": 0}) + "\n")

    write("kd", {"a": ["Paris", "Rome", "Rome", "Rome"], "b": []})
    write("kd_rl", {"a": ["Paris", "city of light", "Rome", "Rome"], "b": ["Paris"]})
    assert describe_rationales.sampled_f1(tmp_path, "kd") == {"a": 25.0, "b": 0.0}
    first, second = describe_rationales.sampled_table(tmp_path, ["kd", "kd_rl"])
    assert (first["mean"], first["diff"]) == (12.5, None)
    assert second["mean"] == 75.0  # (50 + 100) / 2: an alias counts, no answers score 0
    assert second["diff"].mean == pytest.approx(62.5)
