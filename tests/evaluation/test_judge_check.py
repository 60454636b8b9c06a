"""``lmcot judge-check``: decoys, the per-aspect paired comparison, the files, the verb."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lm_guided_cot.data.records import Paragraph, QARecord, SupportingFact
from lm_guided_cot.datamodules import HotpotQADataModule
from lm_guided_cot.errors import ConfigurationError, InputError, MissingFileError
from lm_guided_cot.evaluation.decoys import decoy_rationale
from lm_guided_cot.evaluation.judge_check import judge_check
from lm_guided_cot.evaluation.judge_comparison import (
    CANNOT_TELL,
    DECOY,
    MEAN,
    ORACLE,
    compare_rows,
    question_scores,
)
from lm_guided_cot.evaluation.parser import judge_check_parser
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.roles import Aspect, JudgeConfig, JudgeOutput
from lm_guided_cot.testing.fake_llm import FakeLLMServer

REPO = Path(__file__).resolve().parents[2]
N = 6
ASPECTS = [
    Aspect("relevance", "states the facts", "Does it state the facts?"),
    Aspect("fluency", "reads well", "Does it read well?"),
]


def _record(rid: str = "q1") -> QARecord:
    return QARecord(
        id=rid,
        question="Who?",
        answer="x",
        paragraphs=(
            Paragraph("Gold A", ("A0.", " A1.")),
            Paragraph("Other B", ("B0.", " B1.", " B2.")),
            Paragraph("Gold C", ("C0.",)),
            Paragraph("Other D", ("D0.", "")),
        ),
        supporting_facts=(SupportingFact("Gold A", 1), SupportingFact("Gold C", 0)),
    )


# ---- decoys -----------------------------------------------------------------------------


def test_a_decoy_has_as_many_sentences_from_the_other_paragraphs_in_context_order():
    record = _record()
    decoy = decoy_rationale(record, seed=0)
    sentences = decoy.split(" ")
    assert len(sentences) == len(record.gold_sentences) == 2
    order = ["B0.", "B1.", "B2.", "D0."]
    assert all(s in order for s in sentences)
    assert sentences == sorted(sentences, key=order.index)
    # deterministic: the seed and the record's id decide it, nothing else
    assert decoy_rationale(_record(), seed=0) == decoy
    draws = {decoy_rationale(_record(f"q{i}"), seed=0) for i in range(20)}
    assert len(draws) > 1
    assert {decoy_rationale(record, seed=s) for s in range(20)} != {decoy}


def test_a_decoy_takes_what_there_is_and_refuses_a_question_with_no_other_paragraph():
    few = QARecord(
        "q2",
        "Who?",
        "x",
        (Paragraph("Gold", ("G0.", "G1.", "G2.")), Paragraph("Other", ("O0.",))),
        (SupportingFact("Gold", 0), SupportingFact("Gold", 1), SupportingFact("Gold", 2)),
    )
    assert decoy_rationale(few) == "O0."
    none = QARecord("q3", "Who?", "x", (Paragraph("Gold", ("G0.",)),), (SupportingFact("Gold", 0),))
    with pytest.raises(InputError, match="record 'q3': every paragraph holds a supporting fact"):
        decoy_rationale(none)


# ---- the comparison ----------------------------------------------------------------------


def _output(**scores) -> JudgeOutput:
    return JudgeOutput(scores, True, None)


def test_question_scores_average_a_questions_rationales():
    outputs = [_output(a=1.0, b=3.0), _output(a=3.0, b=3.0), _output(a=5.0, b=1.0)]
    assert question_scores(outputs, [2, 1], ["a", "b"]) == [
        {"a": 2.0, "b": 3.0, MEAN: 2.5},
        {"a": 5.0, "b": 1.0, MEAN: 3.0},
    ]


def test_compare_rows_names_the_aspects_the_judge_cannot_tell_apart():
    oracle = [{"a": 5.0, "b": 3.0, MEAN: 4.0}, {"a": 4.0, "b": 3.0, MEAN: 3.5}] * 5
    decoy = [{"a": 1.0, "b": 2.5, MEAN: 1.75}, {"a": 2.0, "b": 3.5, MEAN: 2.75}] * 5
    other = [{"a": 3.0, "b": 3.0, MEAN: 3.0}] * 10
    checks = compare_rows(
        {ORACLE: oracle, DECOY: decoy, "kd": other}, ["a", "b"], resamples=500, seed=1
    )
    by = {c.aspect: c for c in checks}
    assert list(by) == ["a", "b", MEAN]
    assert by["a"].means == {ORACLE: 4.5, DECOY: 1.5, "kd": 3.0}
    assert by["a"].difference.mean == pytest.approx(3.0) and by["a"].oracle_higher == 10
    assert by["a"].verdict == "oracle higher"
    assert by["b"].difference.mean == pytest.approx(0.0) and by["b"].oracle_higher == 5
    assert by["b"].verdict == CANNOT_TELL  # +0.5 and -0.5, half each: the interval holds 0
    swapped = compare_rows({ORACLE: decoy, DECOY: oracle}, ["a"], resamples=200)
    assert swapped[0].verdict == "decoy higher"


# ---- against the fake server -------------------------------------------------------------


def _judge_alternatives(messages):
    """A judge that knows its job for relevance: yes (0.9) when every sentence of the rationale
    is in the paragraphs it was shown, else 0.3; fluency: 0.5 whatever it reads."""
    user = messages[-1]["content"]
    paragraphs, rest = user.split("\n\nQuestion: ", 1)
    rationale = rest.split("\nRationale: ", 1)[1].rsplit("\n\n", 1)[0]
    p_yes = 0.5
    if user.endswith("Does it state the facts? Answer yes or no."):
        sentences = [s.strip() for s in rationale.split(". ") if s.strip()]
        p_yes = 0.9 if all(s.rstrip(".") in paragraphs for s in sentences) else 0.3
    return {"Yes": math.log(p_yes), "No": math.log(1 - p_yes)}


def _data(tmp_path, shared_data, n=N) -> HotpotQADataModule:
    return HotpotQADataModule(
        validation=str(shared_data / "hotpotqa/validation.jsonl"),
        max_eval_examples=n,
        cache_dir=str(tmp_path / "hf"),
    )


def _llm(server, tmp_path) -> LLMConfig:
    return LLMConfig(
        model="openai/fake-judge",
        api_base=server.base_url,
        cache_path=str(tmp_path / "cache.sqlite"),
        timeout=5,
    )


def test_judge_check_tells_which_aspects_separate_oracle_from_decoy(
    tmp_path, shared_data, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "200")  # the printed table unwrapped
    data = _data(tmp_path, shared_data)
    ids = [r["id"] for r in data.records("validation")]
    guide = tmp_path / "kd.jsonl"  # an evaluation's examples file: the oracle, word for word
    records = [QARecord.from_row(r) for r in data.records("validation")]
    guide.write_text(
        "".join(json.dumps({"id": r.id, "rationales": [r.gold_rationale]}) + "\n" for r in records)
    )
    out = tmp_path / "check"
    with FakeLLMServer(responder=lambda m: "Yes", logprobs=_judge_alternatives) as server:
        report = judge_check(
            data,
            _llm(server, tmp_path),
            JudgeConfig(aspects=ASPECTS),
            max_questions=N,
            rationale_files=[{"name": "kd", "path": str(guide)}],
            bootstrap_resamples=500,
            output_dir=str(out),
        )
        sent = server.stats()["requests"]
    printed = capsys.readouterr().out
    assert report.questions == N and report.rows == [ORACLE, DECOY, "kd"]
    by = {c.aspect: c for c in report.checks}
    # 1 + 4 P(yes): the oracle 4.6 on relevance, the decoy 2.2
    assert by["relevance"].means == pytest.approx({ORACLE: 4.6, DECOY: 2.2, "kd": 4.6})
    assert by["relevance"].verdict == "oracle higher" and by["relevance"].oracle_higher == N
    assert by["fluency"].means == pytest.approx({ORACLE: 3.0, DECOY: 3.0, "kd": 3.0})
    assert report.cannot_tell_apart == ["fluency"]
    assert report.judge["protocol"] == "logprobs" and report.judge["counts"]["parsed"] == 3 * N
    # 2 aspects x 3 rows x N questions; kd asks what the oracle asked, and auto's probe was
    # the first question: the cache answers them
    assert sent == 2 * 2 * N and report.judge["usage"]["cache_hits"] == 2 * N + 1
    assert report.judge["prompt_tokens_per_call"] > 0

    for name in ("judge_check.md", "judge_check.csv", "judge_check.json", "scores.jsonl"):
        assert (out / name).is_file() and report.files[name] == out / name
    with (out / "judge_check.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:4] == ["aspect", ORACLE, DECOY, "kd"]
    assert [r["aspect"] for r in rows] == ["relevance", "fluency", MEAN]
    assert rows[1]["verdict"] == CANNOT_TELL and rows[0]["oracle higher"] == f"{N}/{N}"
    summary = json.loads((out / "judge_check.json").read_text())
    assert summary["cannot_tell_apart"] == ["fluency"]
    assert summary["judge"]["context"] == "gold_only"
    lines = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    # question by question, every row's rationales together
    assert [(x["id"], x["row"]) for x in lines[:3]] == [(ids[0], r) for r in report.rows]
    assert len(lines) == 3 * N
    markdown = (out / "judge_check.md").read_text()
    assert "Cannot tell apart: fluency." in markdown and "1 + 4 x P(yes)" in markdown
    assert "cannot tell apart" in printed and "Cannot tell apart: fluency." in printed


def test_the_judges_context_sets_its_prompt_length(tmp_path, shared_data):
    lengths = {}
    with FakeLLMServer(responder=lambda m: "Yes", logprobs=_judge_alternatives) as server:
        for context in ("gold_only", "all", "none"):
            report = judge_check(
                _data(tmp_path, shared_data, 2),
                _llm(server, tmp_path),
                JudgeConfig(aspects=ASPECTS, context=context),
                max_questions=2,
                bootstrap_resamples=50,
                output_dir=str(tmp_path / context),
                quiet=True,
            )
            lengths[context] = report.judge["prompt_tokens_per_call"]
    assert lengths["none"] < lengths["gold_only"] < lengths["all"]


def test_judge_check_refuses_bad_options_before_any_call(tmp_path, shared_data):
    data = _data(tmp_path, shared_data, 2)
    with FakeLLMServer() as server:
        llm = _llm(server, tmp_path)
        with pytest.raises(ConfigurationError, match="max_questions must be at least 1"):
            judge_check(data, llm, max_questions=0, output_dir=str(tmp_path / "x"))
        with pytest.raises(ConfigurationError, match=r"unique .* repeated: \['decoy'\]"):
            judge_check(data, llm, rationale_files=[{"name": "decoy", "path": "x"}], output_dir="x")
        with pytest.raises(MissingFileError, match=r"absent\.jsonl: no such rationale file"):
            judge_check(
                data,
                llm,
                rationale_files=[{"name": "kd", "path": str(tmp_path / "absent.jsonl")}],
                output_dir=str(tmp_path / "x"),
            )
        assert server.stats()["requests"] == 0


@pytest.mark.parametrize("benchmark", ["hotpotqa", "2wikimultihopqa"])
def test_the_shipped_config_resolves_with_each_recipes_data(benchmark, monkeypatch):
    monkeypatch.chdir(REPO)
    parser = judge_check_parser()
    args = ["-c", f"configs/recipe/{benchmark}/data.yaml", "-c", "configs/judge_check.yaml"]
    init = parser.instantiate_classes(parser.parse_args(args))
    assert init.llm.server.model == "qwen2.5-coder-0.5b" and init.llm.server.parallel == 2
    assert init.judge.protocol == "auto" and init.judge.context == "gold_only"
    assert init.data.max_eval_examples is None and init.max_questions == 30
    assert init.split == "validation"


@pytest.mark.slow
def test_lmcot_judge_check_runs_from_yaml(tmp_path, shared_data):
    data = {
        "data": {
            "class_path": "lm_guided_cot.datamodules.HotpotQADataModule",
            "init_args": {
                "validation": str(shared_data / "hotpotqa/validation.jsonl"),
                "cache_dir": str(tmp_path / "hf"),
            },
        }
    }
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    out = tmp_path / "check"
    with FakeLLMServer(responder=lambda m: "Yes", logprobs=_judge_alternatives) as server:
        check = {
            "llm": {"model": "openai/fake-judge", "api_base": server.base_url, "cache_path": None},
            "judge": {"aspects": [vars(a) for a in ASPECTS]},
            "max_questions": 4,
            "bootstrap_resamples": 100,
            "output_dir": str(out),
        }
        (tmp_path / "check.yaml").write_text(yaml.safe_dump(check))
        run = subprocess.run(
            [
                *(sys.executable, "-m", "lm_guided_cot.cli", "judge-check"),
                *("-c", str(tmp_path / "data.yaml"), "-c", str(tmp_path / "check.yaml")),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=REPO,
            env={**os.environ, "COLUMNS": "200"},
        )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Cannot tell apart: fluency." in run.stdout
    summary = json.loads((out / "judge_check.json").read_text())
    assert summary["questions"] == 4 and summary["judge"]["protocol"] == "logprobs"
