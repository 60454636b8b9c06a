"""The teacher-rationale builder: keep rules, faults, summaries, atomic files."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from lm_guided_cot.data.errors import DataFormatError
from lm_guided_cot.data.records import Paragraph, QARecord, SupportingFact
from lm_guided_cot.errors import ConfigurationError, RunError
from lm_guided_cot.llm.config import LLMConfig, SamplingParams
from lm_guided_cot.rationales import (
    RationaleConfig,
    build_rationales,
    judge_answer,
    read_kept,
    select_kept,
)
from lm_guided_cot.roles import TeacherConfig
from lm_guided_cot.testing.fake_llm import FakeLLMServer
from tests.helpers import fake_llm_config

# question -> the teacher's answers to its 1st and 2nd request
SCRIPT = {
    "Q-exact": ["Paris", "the Paris."],
    "Q-partial": ["New York City", "New York"],  # F1 0.8 then exact
    "Q-wrong": ["Lyon", "Marseille"],
    "Q-inclusion": ["It is Berlin, Germany", "Germany"],
    "Q-unparseable": [None, None],  # no answer marker at all
}
GOLD = {
    "Q-exact": "Paris",
    "Q-partial": "New York",
    "Q-wrong": "Paris",
    "Q-inclusion": "Berlin",
    "Q-unparseable": "Rome",
}


def _records() -> list[QARecord]:
    return [
        QARecord(id=q, question=q, answer=GOLD[q], paragraphs=(Paragraph("T", ("Some text.",)),))
        for q in SCRIPT
    ]


def _responder():
    seen: Counter[str] = Counter()

    def respond(messages):
        question = messages[-1]["content"].rsplit("Question: ", 1)[1]
        k = seen[question]
        seen[question] += 1
        answer = SCRIPT[question][k % 2]
        if answer is None:
            return "I would rather not say."
        return f"Reasoning about {question} (sample {k}). So the answer is: {answer}"

    return respond


def _config(server, tmp_path, **overrides) -> RationaleConfig:
    llm = fake_llm_config(
        server, tmp_path, model="openai/teacher", max_concurrency=1, timeout=1.0, max_retries=8
    )
    values = dict(
        dir=str(tmp_path / "rationales"),
        llm=llm,
        samples=2,
        teacher=TeacherConfig(sampling=SamplingParams(temperature=0.8)),
    )
    values.update(overrides)
    return RationaleConfig(**values)


def _kept(path) -> set[tuple[str, int]]:
    return {(row["id"], row["sample"]) for row in read_kept(path)}


@pytest.mark.parametrize(
    ("rule", "keep", "expected"),
    [
        ("em", "all", {("Q-exact", 0), ("Q-exact", 1), ("Q-partial", 1)}),
        # "It is Berlin, Germany" has F1 0.4 against "Berlin": under the 0.5 threshold
        ("f1", "all", {("Q-exact", 0), ("Q-exact", 1), ("Q-partial", 0), ("Q-partial", 1)}),
        ("f1", "best", {("Q-exact", 0), ("Q-partial", 1)}),
        (
            "inclusion",
            "all",
            {
                ("Q-exact", 0),
                ("Q-exact", 1),
                ("Q-partial", 0),
                ("Q-partial", 1),
                ("Q-inclusion", 0),
            },
        ),
    ],
)
def test_kept_set_follows_the_rule_exactly(tmp_path, rule, keep, expected):
    with FakeLLMServer(responder=_responder()) as server:
        config = _config(server, tmp_path, rule=rule, keep=keep, threshold=0.5)
        summary = build_rationales(_records(), config, "train")
    assert _kept(config.path("train")) == expected
    rows = [json.loads(line) for line in config.path("train").read_text().splitlines()]
    assert len(rows) == 10 and {r["id"] for r in rows} == set(SCRIPT)
    assert summary["asked"] == 10 and summary["answered"] == 10 and summary["failed"] == 0
    assert summary["parse_failures"] == 2  # Q-unparseable, both samples
    assert summary["kept"] == len(expected)
    assert summary["questions_with_kept"] == len({q for q, _ in expected})
    assert summary["kept_fraction"] == pytest.approx(len(expected) / 10)
    assert json.loads(config.summary_path("train").read_text()) == summary
    first = rows[0]
    assert first["teacher_model"] == "openai/teacher" and first["sampling"]["temperature"] == 0.8
    assert len(first["prompt_template_hash"]) == 12
    assert (
        first["rationale"].startswith("Reasoning about Q-exact")
        and "answer is" not in first["rationale"]
    )


def test_faults_do_not_change_what_is_kept(tmp_path):
    # 30% of requests fail in mixed ways; retries hide that from the result
    faults = {"error500": 0.1, "rate429": 0.05, "malformed": 0.05, "empty": 0.05, "drop": 0.05}
    with FakeLLMServer(
        responder=_responder(), fault_rates=faults, seed=4
    ) as server:  # seed 4: faults early
        config = _config(server, tmp_path, samples=1, rule="f1")
        summary = build_rationales(_records(), config, "train")
        assert sum(server.stats()["faults"].values()) > 0
    assert _kept(config.path("train")) == {("Q-exact", 0), ("Q-partial", 0)}
    assert summary["answered"] == 5 and summary["failed"] == 0
    assert summary["requests_sent"] == server.stats()["requests"]


def test_a_right_answer_without_reasoning_is_not_kept(tmp_path):
    def bare(messages):
        return "So the answer is: Paris"

    with FakeLLMServer(responder=bare) as server:
        config = _config(server, tmp_path, samples=1)
        summary = build_rationales(_records()[:1], config, "train")
    assert summary["correct"] == 1 and summary["empty_rationales"] == 1 and summary["kept"] == 0


def test_summary_counts_failed_calls(tmp_path):
    with FakeLLMServer(responder=_responder()) as server:
        config = _config(server, tmp_path, samples=1)
        config.llm.max_retries = 0
        records = [
            *_records(),
            QARecord(
                id="boom", question="ALWAYS_FAIL", answer="x", paragraphs=(Paragraph("T", ("t",)),)
            ),
        ]
        summary = build_rationales(records, config, "train")
    assert summary["asked"] == 6 and summary["failed"] == 1 and summary["answered"] == 5
    assert summary["asked"] == summary["answered"] + summary["failed"]
    failed = [
        json.loads(line) for line in config.path("train").read_text().splitlines() if "boom" in line
    ]
    assert failed[0]["error"] and not failed[0]["kept"]


def test_rebuild_is_served_from_the_cache(tmp_path):
    with FakeLLMServer(responder=_responder()) as server:
        config = _config(server, tmp_path)
        build_rationales(_records(), config, "train")
        first = config.path("train").read_text()
        sent = server.stats()["requests"]
        build_rationales(_records(), config, "train")
        assert server.stats()["requests"] == sent
    assert config.path("train").read_text() == first


def test_keep_rules_by_hand():
    assert judge_answer("the Paris", ["Paris"], "em", 0.5) == (True, 1.0)
    assert judge_answer("New York City", ["New York"], "f1", 0.8) == (True, pytest.approx(0.8))
    assert judge_answer("New York City", ["New York"], "f1", 0.81)[0] is False
    assert judge_answer("in Berlin", ["Munich", "Berlin"], "inclusion", 0.5) == (True, 1.0)
    assert select_kept([True, True, False], [0.5, 0.9, 1.0], "best") == [False, True, False]
    assert select_kept([True, True], [0.9, 0.9], "best") == [True, False]
    assert select_kept([False, False], [0.0, 0.0], "best") == [False, False]


def test_bad_rationale_file_names_file_line_and_field(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"id": "a", "rationale": "r", "kept": true}\n{"id": "b", "kept": true}\n')
    with pytest.raises(ValueError, match=r"train\.jsonl: record 1 \(line 2\): field 'rationale'"):
        read_kept(path)


def test_the_reader_can_judge_which_rationales_to_keep(tmp_path):
    """judge_by: reader keeps what leads the reader to the gold answer: here the second sample
    of each question, including an unparseable teacher reply the teacher's own rule drops."""
    teacher = _responder()

    def respond(messages):
        user = messages[-1]["content"]
        if "Reasoning: " not in user:
            return teacher(messages)
        question = user.split("Question: ", 1)[1].split("\n", 1)[0]
        rationale = user.split("Reasoning: ", 1)[1]
        helped = "(sample 1)" in rationale or (
            "rather" in rationale and question == "Q-unparseable"
        )
        return f"Answer: {GOLD[question] if helped else 'nobody'}"

    with FakeLLMServer(responder=respond) as server:
        config = _config(server, tmp_path, rule="em", judge_by="reader")
        summary = build_rationales(_records(), config, "train")
    kept = _kept(config.path("train"))
    assert kept == {(q, 1) for q in SCRIPT if q != "Q-unparseable"} | {
        ("Q-unparseable", 0),
        ("Q-unparseable", 1),
    }
    rows = [json.loads(line) for line in config.path("train").read_text().splitlines()]
    assert all("reader_answer" in r for r in rows)
    # 10 checks, 9 sent: Q-unparseable's two replies are the same text, asked once
    assert summary["judged_by"] == "reader" and summary["reader_requests_sent"] == 9


def test_supporting_facts_source_writes_the_gold_sentences_without_a_large_lm(tmp_path):
    paragraphs = (Paragraph("A", ("A one.", " A two.")), Paragraph("B", ("B one.",)))
    with_facts = QARecord(
        id="q1",
        question="?",
        answer="x",
        paragraphs=paragraphs,
        supporting_facts=(SupportingFact("B", 0), SupportingFact("A", 1)),
    )
    without = QARecord(id="q2", question="?", answer="y", paragraphs=paragraphs)
    # An LLM config that could not be reached: the source must not build a client at all.
    config = RationaleConfig(
        dir=str(tmp_path),
        source="supporting_facts",
        llm=LLMConfig(model="openai/none", api_base="http://127.0.0.1:9"),
    )
    summary = build_rationales([with_facts, without], config, "train")
    kept = read_kept(config.path("train"))
    assert [(r["id"], r["rationale"]) for r in kept] == [("q1", "B one. A two.")]
    assert summary["kept"] == 1 and summary["without_supporting_facts"] == 1
    assert summary["requests_sent"] == 0
    with pytest.raises(DataFormatError, match="no validation question has any"):
        build_rationales([without], config, "validation")
    assert not config.path("validation").exists()


def test_a_supporting_fact_outside_its_paragraph_is_reported_per_record(tmp_path, caplog):
    paragraphs = (Paragraph("A", ("A one.", " A two.")), Paragraph("B", ("B one.",)))
    record = QARecord(
        id="q1",
        question="?",
        answer="x",
        paragraphs=paragraphs,
        supporting_facts=(SupportingFact("A", 0), SupportingFact("B", 3), SupportingFact("A", -1)),
    )
    config = RationaleConfig(dir=str(tmp_path), source="supporting_facts")
    with caplog.at_level("WARNING", logger="lm_guided_cot.rationales"):
        summary = build_rationales([record], config, "train")
    assert [r["rationale"] for r in read_kept(config.path("train"))] == ["A one."]
    assert summary["facts_outside_paragraphs"] == 2
    assert (
        "supporting-fact rationales (train): record 'q1': supporting_facts[1] ['B', 3]: "
        "paragraph 'B' has 1 sentence(s); the fact is left out of its stage-1 target"
    ) in caplog.text
    assert "record 'q1': supporting_facts[2] ['A', -1]: paragraph 'A' has 2" in caplog.text


def _failing_records(n: int) -> list[QARecord]:
    return [
        QARecord(
            id=f"boom{i}",
            question=f"ALWAYS_FAIL {i}",
            answer="x",
            paragraphs=(Paragraph("T", ("t",)),),
        )
        for i in range(n)
    ]


def test_every_call_failed_writes_the_summary_then_stops(tmp_path):
    with FakeLLMServer(responder=_responder()) as server:
        config = _config(server, tmp_path, samples=1)
        config.llm.max_retries = 0
        with pytest.raises(RunError) as caught:
            build_rationales(_failing_records(3), config, "train")
    message = str(caught.value)
    summary_path = config.summary_path("train")
    assert f"all 3 teacher calls to openai/teacher at {server.base_url} failed (first error: " in (
        message
    )
    assert f"the summary is in {summary_path}" in message
    assert f"{config.path('train')} is not written" in message
    assert caught.value.exit_code == 1
    summary = json.loads(summary_path.read_text())
    assert (summary["asked"], summary["failed"], summary["answered"]) == (3, 3, 0)
    assert summary["first_error"] and summary["first_error"] in message
    # no file of failures: fit's prepare_data, which builds a missing file, tries again
    assert not config.path("train").exists()


def test_every_call_failed_leaves_an_earlier_rationale_file_alone(tmp_path):
    with FakeLLMServer(responder=_responder()) as server:
        config = _config(server, tmp_path, samples=1)
        build_rationales(_records(), config, "train")
        before = config.path("train").read_text()
    # the server is gone, nothing is cached for these questions: every call fails
    config.llm.max_retries = 0
    config.llm.api_base = server.base_url
    with pytest.raises(RunError, match=r"train\.jsonl is left as it was, the summary is in"):
        build_rationales(_failing_records(2), config, "train")
    assert config.path("train").read_text() == before
    assert json.loads(config.summary_path("train").read_text())["failed"] == 2


def test_unreachable_teacher_server_is_a_run_error_naming_the_summary(tmp_path):
    llm = LLMConfig(
        model="openai/teacher",
        api_base="http://127.0.0.1:9/v1",  # nothing listens there
        cache_path=str(tmp_path / "cache.sqlite"),
        max_retries=0,
        timeout=2.0,
    )
    config = RationaleConfig(dir=str(tmp_path / "rationales"), llm=llm)
    with pytest.raises(RunError) as caught:
        build_rationales(_records()[:2], config, "validation")
    assert f"the summary is in {config.summary_path('validation')}" in str(caught.value)
    assert config.summary_path("validation").exists()


def test_some_calls_failed_keeps_the_rest_and_warns(tmp_path, caplog):
    with FakeLLMServer(responder=_responder()) as server:
        config = _config(server, tmp_path, samples=1)
        config.llm.max_retries = 0
        with caplog.at_level("WARNING", logger="lm_guided_cot.rationales"):
            summary = build_rationales([*_records(), *_failing_records(1)], config, "train")
    assert (summary["failed"], summary["answered"]) == (1, 5)
    assert summary["first_error"]
    assert "1 of 6 teacher calls failed" in caplog.text
    assert config.path("train").exists() and _kept(config.path("train"))


def test_max_failure_rate_stops_a_split_that_is_partly_failed(tmp_path):
    with FakeLLMServer(responder=_responder()) as server:
        config = _config(server, tmp_path, samples=1)
        config.llm.max_retries = 0
        config.llm.max_failure_rate = 0.1
        with pytest.raises(RunError, match=r"1 of 6 teacher calls .* max_failure_rate 0.1"):
            build_rationales([*_records(), *_failing_records(1)], config, "train")
    assert not config.path("train").exists() and config.summary_path("train").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"samples": 0}, "RationaleConfig.samples must be at least 1, got 0"),
        ({"threshold": -0.1}, "RationaleConfig.threshold must be in [0, 1], got -0.1"),
        ({"threshold": 1.5}, "RationaleConfig.threshold must be in [0, 1], got 1.5"),
        ({"chunk_size": 0}, "RationaleConfig.chunk_size must be at least 1, got 0"),
    ],
)
def test_rationale_config_refuses(kwargs, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        RationaleConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"samples": 1, "chunk_size": 1, "threshold": 0.0}, {"threshold": 1.0}]
)
def test_rationale_config_accepts_the_boundaries(kwargs):
    RationaleConfig(**kwargs)


def test_a_rationale_dir_that_cannot_be_written_is_named_before_any_call(tmp_path):
    from lm_guided_cot.errors import OutputError
    from lm_guided_cot.rationales import RationaleConfig, build_rationales

    blocker = tmp_path / "rationales"
    blocker.write_text("a file\n")
    config = RationaleConfig(dir=str(blocker), llm=LLMConfig(api_base="http://127.0.0.1:9"))
    with pytest.raises(OutputError, match=r"^rationales\.dir .*rationales: is a file"):
        build_rationales(iter(()), config, "train")
