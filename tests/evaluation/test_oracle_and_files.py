"""The oracle row, rows read from rationale files, and the question-major reader pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_guided_cot.data.errors import DataFormatError
from lm_guided_cot.evaluation.check import require_supporting_facts
from lm_guided_cot.evaluation.settings import gold_rationale, read_rationale_file
from lm_guided_cot.testing.fake_llm import FakeLLMServer
from tests.helpers import evaluation_responder, hotpot_gold_answers, qa_record, run_evaluate

REPO = Path(__file__).resolve().parents[2]
N = 5


def test_the_oracle_rationale_is_the_gold_sentences_in_order():
    record = qa_record("q1", n_paragraphs=3)  # supporting: sentence 0 of Title 0, 1 of Title 2
    assert gold_rationale(record) == "Sentence zero of Title 0. Sentence one of Title 2."
    no_facts = qa_record("q2", supporting_facts={"title": [], "sent_id": []})
    assert gold_rationale(no_facts) == ""
    with pytest.raises(ValueError, match="1 of the 2 test questions have no supporting facts"):
        require_supporting_facts([record, no_facts], "test")


def test_rationale_files_in_both_layouts_and_their_errors(tmp_path):
    records = [qa_record("a"), qa_record("b")]
    mapping = tmp_path / "guide.json"
    mapping.write_text(json.dumps({"a": "first", "b": ["one", "two"], "extra": "ignored"}))
    assert read_rationale_file(mapping, records) == [["first"], ["one", "two"]]
    lines = tmp_path / "guide.jsonl"
    lines.write_text(
        '{"id": "b", "rationale": "x"}\n\n{"id": "a", "rationales": ["y"]}\n'
        '{"id": "b", "rationale": "z"}\n'
    )
    assert read_rationale_file(lines, records) == [["y"], ["x", "z"]]

    # a teacher's file: failed calls (error set) are left out
    lines.write_text(
        '{"id": "a", "rationale": "", "error": "timeout"}\n{"id": "a", "rationale": "y", '
        '"error": null}\n{"id": "b", "rationale": "z"}\n'
    )
    assert read_rationale_file(lines, records) == [["y"], ["z"]]

    lines.write_text('{"id": "a", "rationale": "y"}\n')
    with pytest.raises(DataFormatError, match=r"guide.jsonl: no rationale for 1 of the 2 .*: b"):
        read_rationale_file(lines, records)
    lines.write_text('{"id": "a", "rationale": "y"}\n\n{"id": "b", "text": "y"}\n')
    with pytest.raises(DataFormatError, match=r"record 1 \(line 3\): field 'rationale': missing"):
        read_rationale_file(lines, records)
    lines.write_text('{"id": "a", "rationale": 3}\n')
    with pytest.raises(DataFormatError, match="must be a string"):
        read_rationale_file(lines, records)
    with pytest.raises(DataFormatError, match="cannot read it"):
        read_rationale_file(tmp_path / "absent.jsonl", records)


@pytest.mark.slow
def test_oracle_and_file_rows_from_one_question_major_pass(tmp_path, shared_data):
    gold = hotpot_gold_answers(shared_data)
    rows = [json.loads(x) for x in (shared_data / "hotpotqa/validation.jsonl").open()][:N]
    guide = tmp_path / "guide.jsonl"  # even lengths: the scripted reader answers right
    guide.write_text("".join(json.dumps({"id": r["id"], "rationale": "ab"}) + "\n" for r in rows))
    out = tmp_path / "eval"
    with FakeLLMServer(responder=evaluation_responder(gold)) as server:
        config = {
            "llm": {
                "model": "openai/fake-large",
                "api_base": server.base_url,
                "cache_path": str(tmp_path / "llm.sqlite"),
                "timeout": 5,
            },
            "cot": False,
            "judge": None,
            "oracle": True,
            "rationale_files": [{"name": "file guide", "path": str(guide)}],
            "row_names": {"standard": "standard"},
            "question_major": True,
            "output_dir": str(out),
            "bootstrap_resamples": 200,
        }
        run = run_evaluate(tmp_path, shared_data, config, N)
        assert run.returncode == 0, run.stderr[-3000:]
        sent = server.stats()["requests"]

    summary = json.loads((out / "summary.json").read_text())
    settings = summary["settings"]
    assert list(settings) == ["standard", "file guide", "oracle (gold supporting sentences)"]
    assert settings["file guide"]["metrics"]["answer_em"] == 1.0
    assert settings["file guide"]["metrics"]["rationale_words"] == 1.0  # "ab"
    assert "rationale_words" not in settings["standard"]["metrics"]
    # one pass sent every reader request; the rows then read them all from the cache
    shared = summary["shared_reader_pass"]
    assert shared["asked"] == 3 * N and sent == shared["requests"] == 3 * N
    for name in settings:
        assert settings[name]["usage"]["requests"] == 0
        assert settings[name]["usage"]["cache_hits"] == N
        # the row's tokens are those of the replies it used, though the pass paid for them
        assert settings[name]["usage"]["cached_tokens"] > 0
    oracle = [
        json.loads(x) for x in (out / "examples/oracle_gold_supporting_sentences.jsonl").open()
    ]
    by_id = {r["id"]: r for r in rows}
    for example in oracle:
        facts = by_id[example["id"]]["supporting_facts"]
        paragraphs = dict(
            zip(
                by_id[example["id"]]["context"]["title"],
                by_id[example["id"]]["context"]["sentences"],
            )
        )
        first = paragraphs[facts["title"][0]][facts["sent_id"][0]].strip()
        assert example["rationales"][0].startswith(first)
    assert "question by question" in (out / "results.md").read_text()
