"""The judge's protocols against the fake server: yes/no log-probabilities, schema-constrained
JSON, free text; how ``auto`` picks one; the scores, fallbacks and counters each gives."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest

from lm_guided_cot.data.records import Paragraph, QARecord, SupportingFact
from lm_guided_cot.errors import ConfigurationError, InputError
from lm_guided_cot.llm.cache import CachedReply, ReplyCache
from lm_guided_cot.llm.calls import first_token_alternatives
from lm_guided_cot.llm.client import LLMClient
from lm_guided_cot.llm.parsing import yes_probability
from lm_guided_cot.rewards import AspectReward
from lm_guided_cot.roles import Aspect, Judge, JudgeConfig
from lm_guided_cot.roles.judge import aspect_schema, judge_counts
from lm_guided_cot.testing.fake_llm import FakeLLMServer
from tests.helpers import fake_llm_config

RECORD = QARecord(
    id="r1",
    question="Which river flows through the capital of France?",
    answer="Seine",
    paragraphs=(
        Paragraph("France", ("France is in Europe.", " Its capital is Paris.")),
        Paragraph("Paris", ("Paris lies on the Seine.",)),
        Paragraph("Lyon", ("Lyon lies on the Rhone.",)),
    ),
    supporting_facts=(SupportingFact("France", 1), SupportingFact("Paris", 0)),
)
ASPECTS = [
    Aspect("factuality", "true", "Is it true?"),
    Aspect("relevance", "on topic", "Is it on topic?"),
]
GOOD, BAD = "Paris lies on the Seine. GOOD", "Lyon lies on the Rhone."


def _alternatives(messages):
    """The judge's first token: P(yes) 0.8 for a GOOD rationale, 0.2 otherwise, in variants
    that have to be summed ("Yes", " yes"; "No", " no"), and a token that is neither."""
    p_yes = 0.8 if "GOOD" in messages[-1]["content"] else 0.2
    return {
        "Yes": math.log(0.6 * p_yes),
        " yes": math.log(0.4 * p_yes),
        "No": math.log(0.5 * (1 - p_yes)),
        " no": math.log(0.5 * (1 - p_yes)),
        "Maybe": math.log(0.01),
    }


def _json_scores(messages, schema=None):
    return json.dumps(
        {"factuality": 5, "relevance": 4} if "GOOD" in messages[-1]["content"] else {}
    )


def _judge(server, tmp_path, **config) -> Judge:
    config.setdefault("aspects", ASPECTS)
    return Judge(LLMClient(fake_llm_config(server, tmp_path)), JudgeConfig(**config))


# ---- pure pieces --------------------------------------------------------------------------


def test_yes_probability_sums_variants_and_normalises_over_yes_and_no():
    log = math.log
    assert yes_probability([("Yes", log(0.3)), (" yes", log(0.3)), ("\u2581No", log(0.2))]) == (
        pytest.approx(0.75)
    )
    # other tokens take no share; case, spaces and punctuation do not matter
    assert yes_probability([("YES.", log(0.1)), ("The", log(0.8)), ("no", log(0.1))]) == (
        pytest.approx(0.5)
    )
    assert yes_probability([("no", log(0.9))]) == 0.0
    assert yes_probability([("The", log(0.9)), ("A", log(0.1))]) is None
    assert yes_probability(None) is None and yes_probability([]) is None
    assert yes_probability([("oui", 0.0), ("non", log(0.5))], yes=["oui"], no=["non"]) == (
        pytest.approx(2 / 3)
    )


def test_first_token_alternatives_read_openais_layout():
    logprobs = {
        "content": [
            {
                "token": "Yes",
                "logprob": -0.1,
                "top_logprobs": [
                    {"token": "Yes", "logprob": -0.1},
                    {"token": "No", "logprob": -2.5},
                    {"token": None, "logprob": -3.0},  # unreadable entries are left out
                ],
            },
            {"token": ".", "logprob": -0.5, "top_logprobs": [{"token": "!", "logprob": -1}]},
        ]
    }
    assert first_token_alternatives(logprobs) == (("Yes", -0.1), ("No", -2.5))
    assert first_token_alternatives(None) is None
    assert first_token_alternatives({"content": []}) is None
    assert first_token_alternatives({"content": [{"token": "Yes", "logprob": 0.0}]}) is None


def test_aspect_schema_bounds_every_aspect():
    schema = aspect_schema(["a", "b"], 1, 5)
    assert schema["required"] == ["a", "b"] and schema["additionalProperties"] is False
    assert schema["properties"]["a"] == {"type": "integer", "minimum": 1, "maximum": 5}
    assert aspect_schema(["a"], 0, 0.5)["properties"]["a"] == {
        "type": "number",
        "minimum": 0.0,
        "maximum": 0.5,
    }


def test_judge_counts_add_up():
    from lm_guided_cot.roles import JudgeOutput

    outputs = [
        JudgeOutput({"a": 5.0}, True, "{}", None, "logprobs", 2, 30),
        JudgeOutput({"a": 3.0}, False, None, "boom", "logprobs", 2, 10),
        JudgeOutput({"a": 3.0}, False, "??", None, "text", 1, 7),
    ]
    assert judge_counts(outputs) == {
        "parsed": 1.0,
        "unparsed": 2.0,
        "calls": 5.0,
        "prompt_tokens": 47.0,
        "protocol/logprobs": 2.0,
        "protocol/json_schema": 0.0,
        "protocol/text": 1.0,
    }


def test_judge_config_refuses_bad_protocol_options():
    with pytest.raises(ConfigurationError, match=r"JudgeConfig\.protocol must be one of auto"):
        JudgeConfig(protocol="likert")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"JudgeConfig.top_logprobs must be in \[1, 20\]"):
        JudgeConfig(top_logprobs=0)
    with pytest.raises(ConfigurationError, match=r"JudgeConfig\.aspects\[0\] must have a name"):
        JudgeConfig(aspects=[{"name": "a"}])  # type: ignore[list-item]
    # as YAML writes them: mappings, the question optional
    made = JudgeConfig(aspects=[{"name": "a", "description": "true"}])  # type: ignore[list-item]
    assert made.aspects == [Aspect("a", "true")]
    assert made.aspects[0].yes_no_question == "Is this true of the rationale: true?"


# ---- the cache keeps a reply's log-probabilities ------------------------------------------


def test_the_cache_keeps_top_logprobs_and_opens_files_written_before_them(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # a cache written by code that knew no log-probabilities
        db.executescript(
            "CREATE TABLE replies (key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT NULL,"
            " prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cost REAL NOT "
            "NULL, created REAL NOT NULL); CREATE TABLE claims (key TEXT PRIMARY KEY, owner TEXT "
            "NOT NULL, expires REAL NOT NULL);"
            "INSERT INTO replies VALUES ('old', 'm', 'hello', 1, 2, 0.0, 0.0);"
        )
    cache = ReplyCache(path)
    assert cache.get("old") == CachedReply("hello", 1, 2, 0.0, None)
    cache.put("k", "m", CachedReply("Yes", 3, 1, 0.0, (("Yes", -0.1), ("No", -2.0))))
    assert cache.get("k").top_logprobs == (("Yes", -0.1), ("No", -2.0))
    cache.put("k", "m", CachedReply("Yes", 3, 1, 0.0))  # replaced by a reply without them
    assert cache.get("k").top_logprobs is None
    cache.close()
    with sqlite3.connect(path) as db:  # the old table is as it was: old code still reads it
        columns = [row[1] for row in db.execute("PRAGMA table_info(replies)")]
    assert columns == [
        "key",
        "model",
        "text",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "created",
    ]


def test_request_parameters_are_part_of_the_cache_key(tmp_path):
    from lm_guided_cot.llm.client import LLMRequest

    request = [LLMRequest(({"role": "user", "content": "GOOD. Is it true?"},))]
    schema = {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}
    with FakeLLMServer(responder=lambda m: "Yes", logprobs=_alternatives) as server:
        client = LLMClient(fake_llm_config(server, tmp_path))
        plain = client.complete(request)[0]
        asked = client.complete(request, params={"logprobs": True, "top_logprobs": 2})[0]
        structured = client.complete(request, params=schema)[0]
        assert client.complete(request, params={"logprobs": True, "top_logprobs": 2})[0].cached
        assert server.stats()["requests"] == 3 and len(client.cache) == 3
        with pytest.raises(ConfigurationError, match="may not hold credentials"):
            client.complete(request, params={"api_key": "sk-not-here"})
    assert plain.top_logprobs is None and structured.top_logprobs is None
    assert asked.top_logprobs == (
        ("Yes", pytest.approx(math.log(0.48))),
        (" yes", pytest.approx(math.log(0.32))),
    )


# ---- the protocols -------------------------------------------------------------------------


def test_logprobs_scores_the_expected_value_of_yes_no_questions(tmp_path):
    with FakeLLMServer(responder=lambda m: "Yes", logprobs=_alternatives) as server:
        judge = _judge(server, tmp_path, protocol="logprobs", top_logprobs=4)
        good, bad = judge.score([RECORD, RECORD], [GOOD, BAD])
        params, sent = list(server.request_params), server.stats()["requests"]
        # a rerun reads every reply, log-probabilities included, from the cache
        again = _judge(server, tmp_path, protocol="logprobs", top_logprobs=4)
        assert again.score([RECORD, RECORD], [GOOD, BAD]) == [good, bad]
        assert server.stats()["requests"] == sent
    # 1 + P(yes) * (5 - 1), P(yes) from the 4 most likely tokens ("Maybe" is 5th)
    assert good.scores == pytest.approx({"factuality": 4.2, "relevance": 4.2})
    assert bad.scores == pytest.approx({"factuality": 1.8, "relevance": 1.8})
    assert good.parsed and good.protocol == "logprobs" and good.calls == 2
    assert good.prompt_tokens > 0 and json.loads(good.raw) == {
        "factuality": "Yes",
        "relevance": "Yes",
    }
    # one greedy one-token question per aspect, asking for the first token's alternatives
    assert sent == 4
    assert all(
        p["logprobs"] is True and p["top_logprobs"] == 4 and p["max_tokens"] == 1 for p in params
    )
    assert {p["temperature"] for p in params} == {0.0}
    assert not any("response_format" in p for p in params)


def test_a_rationales_questions_share_their_prompt_up_to_the_aspect(tmp_path):
    judge = Judge(client=None, config=JudgeConfig(aspects=ASPECTS))  # type: ignore[arg-type]
    first, second = (judge.question_messages(RECORD, GOOD, a)[-1]["content"] for a in ASPECTS)
    assert first.endswith("Is it true? Answer yes or no.")
    assert second.endswith("Is it on topic? Answer yes or no.")
    shared = first.removesuffix("Is it true? Answer yes or no.")
    assert second.startswith(shared) and GOOD in shared
    # the gold paragraphs only (the default context), not the distractor
    assert "Paris: Paris lies on the Seine." in shared and "Lyon:" not in shared


def test_the_judges_context_options(tmp_path):
    def user(context):
        judge = Judge(None, JudgeConfig(aspects=ASPECTS, context=context))  # type: ignore[arg-type]
        return judge.messages(RECORD, "x")[-1]["content"]

    assert "Lyon: Lyon lies on the Rhone." in user("all")
    assert "Lyon" not in user("gold_only") and "France: France is in Europe." in user("gold_only")
    assert user("none").startswith("Question: Which river")  # no paragraphs, no blank lines
    no_facts = QARecord("q9", "Who?", "x", RECORD.paragraphs)
    judge = Judge(None, JudgeConfig(aspects=ASPECTS))  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"1 of the 2 questions have no supporting facts .*q9"):
        judge.check_records([RECORD, no_facts])
    Judge(None, JudgeConfig(context="all")).check_records([no_facts])  # type: ignore[arg-type]


def test_auto_picks_logprobs_where_the_server_returns_them(tmp_path):
    with FakeLLMServer(responder=lambda m: "Yes", logprobs=_alternatives) as server:
        judge = _judge(server, tmp_path)
        assert judge.protocol is None
        outputs = judge.score([RECORD, RECORD], [GOOD, BAD])
        first_batch = server.stats()["requests"]
        judge.score([RECORD], ["another rationale GOOD"])
        second_batch = server.stats()["requests"] - first_batch
    assert judge.protocol == "logprobs" and "top_logprobs" in judge.protocol_reason
    assert [o.protocol for o in outputs] == ["logprobs", "logprobs"]
    assert outputs[0].scores["factuality"] == pytest.approx(4.2)
    # the probe was the batch's first question: the batch read it from the cache
    assert first_batch == 4
    assert second_batch == 2  # decided once: no probe again


def test_auto_picks_json_schema_where_the_server_returns_no_logprobs(tmp_path):
    seen = []

    def structured(messages, schema):
        seen.append(schema)
        return _json_scores(messages)

    with FakeLLMServer(responder=lambda m: "Yes", structured=structured) as server:
        judge = _judge(server, tmp_path)
        good, bad = judge.score([RECORD, RECORD], [GOOD, BAD])
        params = list(server.request_params)
    assert judge.protocol == "json_schema"
    assert judge.protocol_reason == "logprobs gave a reply without top_logprobs"
    assert good.parsed and good.scores == {"factuality": 5.0, "relevance": 4.0}
    assert good.protocol == "json_schema" and good.calls == 1
    # a reply with neither log-probabilities nor readable scores: the fallback, unparsed
    assert not bad.parsed and bad.scores == {"factuality": 3.0, "relevance": 3.0}
    assert judge.client.role_usage("judge").parse_failures == 1
    # the probe asked for log-probabilities; then every request carried the schema
    assert params[0]["logprobs"] is True and "response_format" not in params[0]
    assert len(params) == 3 and all("logprobs" not in p for p in params[1:])
    response_format = params[1]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"] == aspect_schema(
        ["factuality", "relevance"], 1, 5
    )
    assert seen[0] == response_format["json_schema"]["schema"]


def test_auto_falls_back_to_text_where_the_server_refuses_both(tmp_path):
    with FakeLLMServer(responder=_json_scores, reject={"logprobs", "response_format"}) as server:
        judge = _judge(server, tmp_path)
        good, bad = judge.score([RECORD, RECORD], [GOOD, BAD])
        params = list(server.request_params)
        usage = judge.client.role_usage("judge")
    assert judge.protocol == "text"
    assert "logprobs gave a failed call" in judge.protocol_reason
    assert "json_schema gave a failed call" in judge.protocol_reason
    assert "BadRequestError" in judge.protocol_reason
    assert good.parsed and good.protocol == "text" and good.scores["relevance"] == 4.0
    assert not bad.parsed and bad.error is None
    # two refused probes (not retried), then plain requests
    assert len(params) == 4 and usage.failures == 2
    assert all("logprobs" not in p and "response_format" not in p for p in params[2:])


def test_forced_protocols_send_what_they_name(tmp_path):
    with FakeLLMServer(responder=_json_scores, structured=_json_scores) as server:
        _judge(server, tmp_path, protocol="json_schema").score([RECORD], [GOOD])
        _judge(server, tmp_path, protocol="text").score([RECORD], [GOOD])
        params = list(server.request_params)
    assert len(params) == 2  # no probes
    assert "response_format" in params[0] and "response_format" not in params[1]
    assert not any("logprobs" in p for p in params)


def test_logprobs_without_them_in_the_reply_is_the_fallback_and_unparsed(tmp_path):
    with FakeLLMServer(responder=lambda m: "Yes") as server:  # ignores logprobs
        judge = _judge(server, tmp_path, protocol="logprobs")
        (output,) = judge.score([RECORD], [GOOD])
    assert not output.parsed and output.error is None
    assert output.scores == {"factuality": 3.0, "relevance": 3.0}
    assert judge.client.role_usage("judge").parse_failures == 1


def test_a_first_token_that_is_only_a_space_still_counts_as_a_reply(tmp_path):
    # retry_on_empty would retry a blank reply; with the first token's alternatives it is read
    with FakeLLMServer(responder=lambda m: " ", logprobs=_alternatives) as server:
        judge = _judge(server, tmp_path, protocol="logprobs")
        (output,) = judge.score([RECORD], [GOOD])
        assert server.stats()["requests"] == 2
    assert output.parsed and output.scores["relevance"] == pytest.approx(4.2)


def test_aspect_reward_under_logprobs_is_the_mean_p_yes_and_logs_its_counters(tmp_path):
    with FakeLLMServer(responder=lambda m: "Yes", logprobs=_alternatives) as server:
        reward = AspectReward(
            llm=fake_llm_config(server, tmp_path), judge=JudgeConfig(aspects=ASPECTS)
        )
        out = reward([RECORD, RECORD], [GOOD, BAD])
        empty = reward([], [])
    assert out.total.tolist() == pytest.approx([0.8, 0.2])
    assert out.components["aspects/relevance"].tolist() == pytest.approx([0.8, 0.2])
    assert out.logs["aspects/parsed"] == 2.0 and out.logs["aspects/unparsed"] == 0.0
    assert out.logs["aspects/protocol/logprobs"] == 2.0 and out.logs["aspects/calls"] == 4.0
    assert out.logs["aspects/prompt_tokens"] > 0
    assert set(empty.logs) == set(out.logs)  # every batch logs the same keys
