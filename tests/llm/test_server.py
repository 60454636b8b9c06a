"""The managed llama.cpp server with the real SmolLM2 GGUF: every role through LLMClient, counts
that agree with the server's own, queueing above the slots, clean stops, stale servers, errors.

The fake server (lm_guided_cot.testing.fake_llm) stays the place for fault injection.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lm_guided_cot.data.records import Paragraph, QARecord, SupportingFact
from lm_guided_cot.errors import ConfigurationError
from lm_guided_cot.llm.client import LLMClient, LLMRequest
from lm_guided_cot.llm.config import LLMConfig, SamplingParams, ServerConfig
from lm_guided_cot.llm.server import (
    ServerError,
    _free_port,
    ensure_server,
    find_llama_server,
    stop_all,
    stop_stale_servers,
)
from lm_guided_cot.roles import Aspect, Judge, JudgeConfig, Reader, Teacher
from tests.helpers import paris_record

REPO = Path(__file__).resolve().parents[2]

if find_llama_server() is None:
    # bin/test builds it; a suite run without it must say so, and CI must not pass without it.
    reason = "llama-server is not installed (bash bin/build_llama_server.sh .venv)"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("llama_server")]

RECORD = paris_record()
RECORDS = [
    RECORD,
    QARecord(
        id="r2",
        question="In which country is the city where Mozart was born?",
        answer="Austria",
        paragraphs=(
            Paragraph("Mozart", ("Mozart was born in Salzburg.",)),
            Paragraph("Salzburg", ("Salzburg is a city in Austria.",)),
        ),
        supporting_facts=(SupportingFact("Mozart", 0), SupportingFact("Salzburg", 0)),
    ),
]


def server_llm(tmp_path: Path, **server) -> LLMConfig:
    return LLMConfig(
        server=ServerConfig(**{"model": "smollm2", "threads": 1, **server}),
        sampling=SamplingParams(max_tokens=12),
        timeout=300,
        max_retries=1,
        cache_path=str(tmp_path / "cache.sqlite"),
    )


def served_requests(log_path: Path, expected: int | None = None) -> int:
    """The server's own count of finished requests (one 'stop processing' line each).

    The server logs a request just after sending its reply: wait a little for ``expected``.
    """
    deadline = time.monotonic() + 10
    while True:
        count = log_path.read_text(errors="replace").count("stop processing")
        if expected is None or count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def _stop_servers():
    yield
    stop_all()


def test_every_role_end_to_end_and_the_counts_agree_with_the_server(tmp_path):
    client = LLMClient(server_llm(tmp_path, parallel=2))
    assert client.config.model == "openai/smollm2"
    # the one-call protocol: one judge request per rationale (the yes/no one is tested below)
    reader, teacher = Reader(client), Teacher(client)
    judge = Judge(client, JudgeConfig(protocol="text"))
    answers = reader.answer(RECORDS * 2, [None, None, "Paris is on the Seine.", "Salzburg."])
    explained = teacher.explain(RECORDS, samples=1)
    scores = judge.score(RECORDS, ["Paris lies on the Seine.", "Mozart: Salzburg, Austria."])
    assert all(a.error is None and a.raw for a in answers)
    assert all(g[0].error is None and g[0].raw for g in explained)
    assert all(s.error is None and set(s.scores) for s in scores)

    usage = client.usage()
    assert usage["llm/reader/requests"] == 4
    assert usage["llm/teacher/requests"] == 2 and usage["llm/judge/requests"] == 2
    assert usage["llm/total/failures"] == 0 and usage["llm/total/retries"] == 0
    assert served_requests(client.server.log_path, 8) == usage["llm/total/requests"] == 8
    metrics = client.server.metrics()
    assert metrics["llamacpp:tokens_predicted_total"] == usage["llm/total/completion_tokens"]
    assert (
        metrics["llamacpp:prompt_tokens_total"] + metrics["llamacpp:prompt_tokens_cached_total"]
        == usage["llm/total/prompt_tokens"]
    )

    # The same batches again come from the cache: the server sees nothing new.
    reader.answer(RECORDS * 2, [None, None, "Paris is on the Seine.", "Salzburg."])
    judge.score(RECORDS, ["Paris lies on the Seine.", "Mozart: Salzburg, Austria."])
    usage = client.usage()
    assert usage["llm/total/requests"] == 8 and usage["llm/total/cache_hits"] == 6
    time.sleep(0.5)  # nothing more may arrive
    assert served_requests(client.server.log_path) == 8
    client.close()


def test_the_judge_settles_on_yes_no_logprobs_with_llama_server(tmp_path):
    client = LLMClient(server_llm(tmp_path, parallel=2))
    aspects = [Aspect("relevance", "states the facts"), Aspect("fluency", "reads well")]
    judge = Judge(client, JudgeConfig(aspects=aspects))
    outputs = judge.score(RECORDS, ["Paris lies on the Seine.", "Mozart: Salzburg, Austria."])
    assert judge.protocol == "logprobs", judge.protocol_reason
    assert all(o.error is None and o.protocol == "logprobs" and o.calls == 2 for o in outputs)
    assert all(1.0 <= v <= 5.0 for o in outputs for v in o.scores.values())
    sent = client.usage()["llm/judge/requests"]
    assert sent == 4  # the probe was the first question: the batch read it from the cache
    # a rerun reads the replies, first-token alternatives included, from the cache
    assert judge.score(RECORDS, ["Paris lies on the Seine.", "Mozart: Salzburg, Austria."]) == (
        outputs
    )
    assert client.usage()["llm/judge/requests"] == sent
    client.close()


def test_requests_that_share_a_context_reuse_the_servers_kv_cache(tmp_path):
    client = LLMClient(server_llm(tmp_path, parallel=2))
    reader = Reader(client)
    rationales = [None, "Paris is the capital.", "The Seine flows through Paris.", "France."]
    reader.answer([RECORDS[0]] * 4 + [RECORDS[1]] * 4, rationales + rationales)
    metrics = client.server.metrics()
    # each question's context is evaluated once; its 3 later prompts take it from the cache
    assert metrics["llamacpp:prompt_tokens_cached_total"] > metrics["llamacpp:prompt_tokens_total"]


def test_more_requests_than_slots_queue_without_failures(tmp_path):
    config = server_llm(tmp_path, parallel=1)
    config.max_concurrency = 8
    config.group_prefixes = False  # all 10 in flight at once against one slot
    client = LLMClient(config)
    requests = [LLMRequest(({"role": "user", "content": f"Count to {i}."},)) for i in range(10)]
    results = client.complete(requests)
    assert all(r.ok for r in results)
    usage = client.usage()
    assert usage["llm/total/requests"] == 10 and usage["llm/total/retries"] == 0
    assert served_requests(client.server.log_path, 10) == 10


def test_an_unknown_model_stops_at_once_with_the_known_names(tmp_path, monkeypatch):
    import lm_guided_cot.llm.server as server_module

    def no_server(*args, **kwargs):
        raise AssertionError("a server was started for an unknown model")

    monkeypatch.setattr(server_module.subprocess, "Popen", no_server)
    with pytest.raises(
        ConfigurationError, match=r"server.model: unknown model 'qwen-9000'.*qwen2.5-coder-0.5b"
    ):
        LLMClient(server_llm(tmp_path, model="qwen-9000"))
    assert not list(tmp_path.glob("llama-server.*.json"))


def test_a_port_held_by_another_model_is_refused(tmp_path):
    first = ensure_server(ServerConfig(model="smollm2", threads=1), tmp_path)
    # the same port, another model name: not ours to use
    other = ServerConfig(model="qwen2.5-coder-0.5b", threads=1, port=first.port)
    with pytest.raises(ServerError, match=f"port {first.port} is taken by a server of"):
        ensure_server(other, tmp_path)


def test_a_process_on_the_same_port_and_model_shares_the_server(tmp_path):
    first = ensure_server(ServerConfig(model="smollm2", threads=1), tmp_path)
    script = (
        "from lm_guided_cot.llm.server import ensure_server\n"
        "from lm_guided_cot.llm.config import ServerConfig\n"
        f"s = ensure_server(ServerConfig(model='smollm2', port={first.port}), {str(tmp_path)!r})\n"
        "print(s.owned, s.process)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.stdout.split() == ["False", "None"], done.stderr
    assert first.process.poll() is None  # the other process left it running


WORKER = """
import sys, time
from lm_guided_cot.llm.client import LLMClient
from lm_guided_cot.llm.config import LLMConfig, ServerConfig
client = LLMClient(LLMConfig(server=ServerConfig(model="smollm2", threads=1), cache_path=sys.argv[1]))
print(client.server.process.pid, flush=True)
if sys.argv[2] == "exit":
    sys.exit(0)
time.sleep(600)
"""


def _gone(pid: int, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("how", ["exit", "sigterm", "sigkill"])
def test_the_server_is_gone_when_the_run_ends(tmp_path, how):
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(tmp_path / "c.sqlite"), how],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    server_pid = int(worker.stdout.readline())
    if how == "sigterm":
        worker.send_signal(signal.SIGTERM)
    elif how == "sigkill":
        worker.kill()
    worker.wait(timeout=30)
    assert _gone(server_pid), f"llama-server {server_pid} outlived its run ({how})"
    if how != "sigkill":  # a killed run cannot clean up its record: the next run does
        assert not list(tmp_path.glob("llama-server.*.json"))


def test_a_server_left_by_a_killed_run_is_stopped(tmp_path, caplog):
    from lm_guided_cot.model_specs import gguf_path

    model = gguf_path("smollm2")
    orphan = subprocess.Popen(
        [find_llama_server(), "--model", str(model), "--port", str(_free_port()), "--threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = tmp_path / f"llama-server.{dead.pid}.1234.json"
    record.write_text(json.dumps({"pid": orphan.pid, "owner": dead.pid, "port": 1234, "log": "x"}))
    with caplog.at_level("WARNING"):
        assert stop_stale_servers(tmp_path) == [orphan.pid]
    assert "left running by a run that was killed" in caplog.text
    assert orphan.wait(timeout=15) is not None
    assert not record.exists()


def test_serve_command_runs_until_ctrl_c(tmp_path):
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lm_guided_cot.cli",
            "serve",
            "smollm2",
            "--port",
            "0",
            "--threads",
            "1",
            "--log_dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        first = serve.stdout.readline()
        assert "serving smollm2 at http://127.0.0.1:" in first, (
            serve.stderr.read() if serve.poll() else first
        )
        record = json.loads(next(tmp_path.glob("llama-server.*.json")).read_text())
        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=30) == 0
        assert _gone(record["pid"])
    finally:
        if serve.poll() is None:  # a failed test must not leave it (and its server) running
            serve.kill()


def test_a_server_that_died_is_started_again_on_next_use(tmp_path):
    config = ServerConfig(model="smollm2", threads=1)
    first = ensure_server(config, tmp_path)
    first.process.kill()
    first.process.wait()
    second = ensure_server(config, tmp_path)
    assert second is not first and second.process.poll() is None
    records = list(tmp_path.glob("llama-server.*.json"))
    assert [json.loads(r.read_text())["pid"] for r in records] == [second.process.pid]
