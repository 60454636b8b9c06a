"""The ``lmcot`` command: own verbs and LightningCLI configs, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lm_guided_cot.cli.score import score_file

REPO = Path(__file__).resolve().parents[1]


def _lmcot(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lm_guided_cot.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, **env},
    )


def test_score_verb_prints_official_metrics(shared_data, tmp_path):
    gold = shared_data / "hotpotqa/validation.jsonl"
    rows = [json.loads(line) for line in gold.read_text().splitlines()]
    # right answers and supporting facts for the first half, nothing for the rest
    half = rows[:150]
    predictions = {
        "answer": {r["id"]: r["answer"] for r in half},
        "sp": {
            r["id"]: [
                list(p)
                for p in zip(r["supporting_facts"]["title"], r["supporting_facts"]["sent_id"])
            ]
            for r in half
        },
    }
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(predictions))
    done = _lmcot("score", str(path), str(gold), HF_DATASETS_CACHE=str(tmp_path / "c"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for key in ("em", "f1", "sp_em", "sp_f1", "joint_em", "joint_f1"):
        assert result[key] == pytest.approx(0.5)
    assert result == score_file(str(path), str(gold))


def test_score_verb_on_2wiki_with_evidence_percent_and_bad_entries(shared_data, tmp_path):
    gold = shared_data / "2wikimultihopqa/dev.json"
    rows = json.loads(gold.read_text())
    half = rows[: len(rows) // 2]
    predictions = {
        "answer": {r["_id"]: r["answer"] for r in rows},
        # lowercased titles are right by 2Wiki's rules
        "sp": {r["_id"]: [[t.lower(), s] for t, s in r["supporting_facts"]] for r in rows},
        "evidence": {r["_id"]: r["evidences"] for r in half},  # the rest: missing, scored 0
    }
    first = rows[0]["_id"]
    predictions["sp"][first].append(["Beta", 0, 0.9])  # malformed: a false positive, reported
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(predictions))
    env = {"HF_DATASETS_CACHE": str(tmp_path / "c")}
    done = _lmcot("score", str(path), str(gold), "--percent", "true", **env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["em"], result["sp_recall"], result["evi_em"]) == (100.0, 100.0, 50.0)
    assert result["missing"] == {"evidence": len(rows) - len(half)}
    # the malformed entry costs the first record its sp and joint EM: 99 and 50 - 1 of 100
    assert (result["sp_em"], result["joint_em"]) == (99.0, 49.0)
    plain = score_file(str(path), str(gold))
    percent = {k: round(v * 100, 2) for k, v in plain.items() if isinstance(v, float)}
    assert result == {**plain, **percent}
    assert f"lmcot score: {path}: record {first!r}: field 'sp': entry" in done.stderr
    assert '["Beta", 0, 0.9]' in done.stderr

    predictions["sp"][first] = [["Beta", [0]]]  # the official script stops on it: so do we
    path.write_text(json.dumps(predictions))
    done = _lmcot("score", str(path), str(gold), **env)
    assert done.returncode == 2 and "Traceback" not in done.stderr  # bad input
    assert done.stderr.startswith(f"lmcot score: {path}: record {first!r}: field 'sp': entry")


def test_print_config_explains_the_data_preset():
    done = _lmcot(
        "fit",
        "-c",
        "configs/2wikimultihopqa/data.yaml",
        "--data.tokenizer",
        "some/tokenizer",
        "--model",
        "lightning.LightningModule",
        "--print_config",
    )
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)["data"]
    assert config["class_path"] == "lm_guided_cot.datamodules.TwoWikiMultiHopQADataModule"
    assert config["init_args"]["validation"] == "$LMCOT_DATA/2wikimultihopqa/dev.json"
    assert config["init_args"]["prompt"]["max_tokens"] == 1024


def test_data_module_help_documents_every_option():
    done = _lmcot("fit", "--data.help", "lm_guided_cot.datamodules.HotpotQADataModule")
    assert done.returncode == 0, done.stderr
    for option in (
        "--data.skip_invalid",
        "--data.prompt.paragraph_order",
        "--data.max_examples",
        "--data.hub_config",
    ):
        assert option in done.stdout
    assert "leak" in done.stdout  # the gold_first ablation warns that it leaks the gold


def test_an_unknown_verb_names_every_verb():
    done = _lmcot("scroe", "pred.json")
    assert done.returncode == 2, done.stderr
    assert "unknown verb 'scroe'" in done.stderr
    for verb in ("fit", "test", "score", "evaluate", "judge-check", "reproduce"):
        assert verb in done.stderr
    assert "Traceback" not in done.stderr


def test_help_lists_the_trainer_and_own_verbs():
    done = _lmcot("--help")
    assert done.returncode == 0, done.stderr
    assert "Trainer verbs: fit, validate, test" in done.stdout
    assert "score (Score an official-format prediction file)" in done.stdout
