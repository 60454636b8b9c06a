"""The one client: faults, retries, resume after a kill, a cache shared by processes, secrets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from lm_guided_cot.llm.client import LLMClient, LLMConfigurationError, LLMRequest
from lm_guided_cot.llm.config import LLMConfig, SamplingParams
from lm_guided_cot.llm.limits import RateLimiter, backoff_delay
from lm_guided_cot.testing.fake_llm import ALWAYS_FAIL, FakeLLMServer, prompt_key
from tests.helpers import fake_llm_config

WORKER = Path(__file__).with_name("client_worker.py")
REPO = Path(__file__).resolve().parents[2]


def _requests(n: int, fail: set[int] = frozenset()) -> list[LLMRequest]:
    return [
        LLMRequest(
            (
                {
                    "role": "user",
                    "content": f"question number {i}" + (f" {ALWAYS_FAIL}" if i in fail else ""),
                },
            )
        )
        for i in range(n)
    ]


def _config(server: FakeLLMServer, tmp_path: Path, **overrides) -> LLMConfig:
    return fake_llm_config(
        server, tmp_path, **{"timeout": 0.5, "max_retries": 6, "max_concurrency": 32, **overrides}
    )


def _worker(server, cache, n, concurrency, out, *extra, env=None):
    """Start client_worker.py; its stdout and stderr go to files beside OUT (a pipe nobody
    reads would fill up with debug logs and stall it)."""
    out = Path(out)
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            server.base_url,
            str(cache),
            str(n),
            str(concurrency),
            str(out),
            *extra,
        ],
        stdout=out.with_suffix(".stdout").open("w"),
        stderr=out.with_suffix(".stderr").open("w"),
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


def _finish(proc, out) -> tuple[str, str]:
    """Wait for a worker; return its stdout and stderr."""
    proc.wait(timeout=300)
    out = Path(out)
    stdout, stderr = out.with_suffix(".stdout").read_text(), out.with_suffix(".stderr").read_text()
    assert proc.returncode == 0, stderr[-2000:]
    return stdout, stderr


def test_mixed_faults_every_request_ends_answered_or_counted(tmp_path):
    rates = {
        "error500": 0.05,
        "rate429": 0.05,
        "slow": 0.05,
        "malformed": 0.05,
        "empty": 0.05,
        "drop": 0.05,
    }
    with FakeLLMServer(fault_rates=rates, slow_seconds=1.0, seed=1) as server:
        # 30% of attempts fail by design, more when a loaded CPU adds timeouts: with 6 retries
        # one of 198 requests ran out of attempts in about 1 run of 25 (0.3**7 * 198 = 4%);
        # with 12 it is 0.3**13 * 198 = 3e-5 (0.1% at 40% failed attempts)
        client = LLMClient(_config(server, tmp_path, max_retries=12))
        always_fail = {7, 123}
        results = client.complete(_requests(200, always_fail), role="reader")
        stats = server.stats()
    assert len(results) == 200
    assert sum(stats["faults"].values()) >= 0.25 * stats["requests"]  # the faults really happened
    assert {kind for kind, count in stats["faults"].items() if count} >= set(rates)
    for i, result in enumerate(results):
        if i in always_fail:
            assert not result.ok and "InternalServerError" in result.error
        else:
            assert result.ok, result.error
            assert result.text == f"Answer: question number {i}"  # its own answer, no mix-ups
    usage = client.role_usage("reader")
    assert usage.replies == 198 and usage.failures == 2
    # every request the server saw is counted; on a loaded CPU a request can also time out
    # (0.5 s) before the server reads it, counted as sent on this side only (9 of 336, and 22 of
    # 344, with the 2 cores shared with other jobs); counting every request twice is far above
    assert stats["requests"] <= usage.requests <= stats["requests"] * 1.25 + 3
    assert usage.retries == usage.requests - 200
    assert sum(r.attempts for r in results) == usage.requests
    assert all(
        stats["per_prompt"][prompt_key([{"role": "user", "content": f"question number {i}"}])] >= 1
        for i in range(3)
    )
    flat = client.usage()
    assert flat["llm/reader/replies"] + flat["llm/reader/failures"] == 200
    assert flat["llm/total/requests"] == usage.requests  # the server-side bound is above


def test_second_run_is_served_from_the_cache(tmp_path):
    with FakeLLMServer() as server:
        config = _config(server, tmp_path)
        first = LLMClient(config).complete(_requests(20), role="reader")
        second_client = LLMClient(config)
        second = second_client.complete(_requests(20), role="reader")
        assert server.stats()["requests"] == 20
    assert [r.text for r in first] == [r.text for r in second]
    assert all(r.cached for r in second)
    assert second_client.role_usage("reader").cache_hits == 20


def test_duplicates_in_a_batch_are_sent_once(tmp_path):
    with FakeLLMServer() as server:
        client = LLMClient(_config(server, tmp_path, cache_path=None))
        results = client.complete(_requests(5) + _requests(5), role="reader")
        assert server.stats()["requests"] == 5
    assert [r.text for r in results[:5]] == [r.text for r in results[5:]]


def test_progress_block_shows_each_request_finishing(tmp_path, monkeypatch):
    from lm_guided_cot.llm import client as client_module

    advanced = []

    class Recorder:
        def __init__(self, description, total):
            advanced.append((description, total))

        def advance(self, n=1):
            advanced.append(n)

        def close(self):
            advanced.append("closed")

    monkeypatch.setattr(client_module, "BatchProgress", Recorder)
    with FakeLLMServer() as server:
        client = LLMClient(_config(server, tmp_path, cache_path=None))
        with client.progress("readers"):
            results = client.complete(_requests(4) + _requests(2), role="reader")
        client.complete(_requests(3), role="reader")  # outside the block: no bar
    assert all(r.ok for r in results)
    assert advanced[0] == ("readers", 6) and advanced[-1] == "closed"
    assert sum(n for n in advanced[1:-1]) == 6  # 4 sent, 2 copies of them


def test_sample_index_and_sampling_params_are_part_of_the_key(tmp_path):
    with FakeLLMServer() as server:
        client = LLMClient(_config(server, tmp_path))
        messages = ({"role": "user", "content": "same prompt"},)
        client.complete([LLMRequest(messages, sample_index=k) for k in range(3)], role="teacher")
        client.complete(
            [LLMRequest(messages)], role="teacher", sampling=SamplingParams(temperature=0.7)
        )
        assert server.stats()["requests"] == 4
        client.complete([LLMRequest(messages, sample_index=k) for k in range(3)], role="teacher")
        assert server.stats()["requests"] == 4


def test_seeded_samples_are_sent_with_a_seed_each_and_cached_under_the_configured_one(tmp_path):
    with FakeLLMServer() as server:
        client = LLMClient(_config(server, tmp_path))
        messages = ({"role": "user", "content": "same prompt"},)
        seeded = SamplingParams(temperature=0.7, seed=11)
        requests = [LLMRequest(messages, sample_index=k) for k in range(3)]
        client.complete(requests, role="teacher", sampling=seeded)
        assert sorted(p["seed"] for p in server.request_params) == [11, 12, 13]
        client.complete(requests, role="teacher", sampling=seeded)  # the keys keep seed 11
        assert server.stats()["requests"] == 3


def test_retry_after_is_honoured(tmp_path):
    with FakeLLMServer(first_attempt_fault="rate429", retry_after=0.6) as server:
        client = LLMClient(_config(server, tmp_path, backoff_base=0.001, backoff_max=0.001))
        start = time.monotonic()
        result = client.complete(_requests(1), role="reader")[0]
        elapsed = time.monotonic() - start
    assert result.ok and result.attempts == 2
    assert elapsed >= 0.6


def test_configuration_errors_stop_the_run():
    with _RejectingServer() as url:
        client = LLMClient(
            LLMConfig(model="openai/fake-model", api_base=url, cache_path=None, max_retries=2)
        )
        with pytest.raises(LLMConfigurationError, match="AuthenticationError"):
            client.complete(_requests(3), role="reader")


class _RejectingServer:
    """A server that answers 401 to everything."""

    def __enter__(self) -> str:
        self.server = FakeLLMServer()

        async def reject(request):
            from aiohttp import web

            return web.json_response({"error": {"message": "invalid key"}}, status=401)

        self.server._chat = reject  # routes are built from the bound attribute at start
        self.server.start()
        return self.server.base_url

    def __exit__(self, *exc):
        self.server.stop()


def _cached_keys(path: Path) -> set[str]:
    """Keys with a reply, read through a short-lived connection (never holding the file)."""
    if not path.exists():
        return set()
    conn = sqlite3.connect(path, timeout=30)
    try:
        return {row[0] for row in conn.execute("SELECT key FROM replies")}
    except sqlite3.OperationalError:  # the table is not created yet
        return set()
    finally:
        conn.close()


def _cached_count(path: Path) -> int:
    return len(_cached_keys(path))


@pytest.mark.slow
def test_killed_batch_resends_only_unanswered_requests(tmp_path):
    cache = tmp_path / "cache.sqlite"
    with FakeLLMServer(latency=0.05) as server:
        proc = _worker(server, cache, 200, 4, tmp_path / "first.json")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if _cached_count(cache) >= 80:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        answered_before = _cached_keys(cache)
        sent_before = server.stats()["requests"]
        assert 80 <= len(answered_before) < 200
        assert not (tmp_path / "first.json").exists()  # it really died mid-batch

        proc = _worker(server, cache, 200, 4, tmp_path / "second.json")
        _finish(proc, tmp_path / "second.json")
        stats = server.stats()
    second = json.loads((tmp_path / "second.json").read_text())
    assert second["texts"] == [f"Answer: question number {i}" for i in range(200)]
    # only the unanswered ones went out again: the second worker sent exactly those
    assert second["usage"]["llm/reader/cache_hits"] == len(answered_before)
    assert second["usage"]["llm/reader/requests"] == 200 - len(answered_before)
    # the server saw the same, give or take the killed worker's last in-flight requests
    # (sent before the kill, counted by the server only after we read its counter)
    sent_after = stats["requests"] - sent_before
    assert 200 - len(answered_before) <= sent_after <= 200 - len(answered_before) + 4


@pytest.mark.slow
def test_two_processes_sharing_a_cache_send_each_request_once(tmp_path):
    cache = tmp_path / "shared.sqlite"
    with FakeLLMServer(latency=0.05) as server:
        procs = [_worker(server, cache, 100, 8, tmp_path / f"out{k}.json") for k in range(2)]
        for k, proc in enumerate(procs):
            _finish(proc, tmp_path / f"out{k}.json")
        stats = server.stats()
    assert stats["requests"] == 100
    assert set(stats["per_prompt"].values()) == {1}
    outs = [json.loads((tmp_path / f"out{k}.json").read_text()) for k in range(2)]
    expected = [f"Answer: question number {i}" for i in range(100)]
    assert outs[0]["texts"] == expected and outs[1]["texts"] == expected
    sent = [o["usage"]["llm/reader/requests"] for o in outs]
    hits = [o["usage"]["llm/reader/cache_hits"] for o in outs]
    assert sum(sent) == 100 and sum(hits) == 100


@pytest.mark.slow
def test_planted_api_key_reaches_the_server_but_no_file_or_log(tmp_path):
    secret = "sk-planted-test-key-0123456789abcdef"
    cache = tmp_path / "cache.sqlite"
    # Every 500 body echoes the Authorization header, so the key is in the error messages.
    with FakeLLMServer(fault_rates={"error500": 0.3}, seed=3) as server:
        proc = _worker(
            server, cache, 40, 8, tmp_path / "out.json", "PLANTED_KEY", env={"PLANTED_KEY": secret}
        )
        stdout, stderr = _finish(proc, tmp_path / "out.json")
        authorizations = server.stats() and dict(server.authorizations)
    assert authorizations == {f"Bearer {secret}": sum(authorizations.values())}  # the key was used
    assert "internal error (auth was Bearer ***)" in stderr  # the echo was seen, and redacted
    assert secret not in stdout and secret not in stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    config = LLMConfig(model="openai/x", api_key_env="PLANTED_KEY")
    assert secret not in yaml.safe_dump(asdict(config))


def test_credentials_are_refused_in_config():
    with pytest.raises(ValueError, match="may not hold credentials"):
        LLMConfig(extra_params={"api_key": "sk-abc"})


def test_cost_is_counted_for_a_priced_model(tmp_path):
    with FakeLLMServer() as server:
        client = LLMClient(_config(server, tmp_path, model="openai/gpt-4o-mini"))
        client.complete(_requests(3), role="judge")
    usage = client.role_usage("judge")
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.cost > 0


def test_rate_limiter_paces_beyond_the_burst():
    async def run():
        limiter = RateLimiter(per_minute=120)  # 2 a second, bursts of up to 120
        start = time.monotonic()
        for _ in range(121):
            await limiter.acquire()
        return time.monotonic() - start

    assert 0.4 <= asyncio.run(run()) < 2.0


def test_backoff_grows_and_respects_retry_after():
    delays = [max(backoff_delay(a, 1.0, 60.0) for _ in range(200)) for a in range(4)]
    assert delays == sorted(delays) and delays[-1] > 4.0
    assert all(backoff_delay(a, 1.0, 2.0) <= 2.0 for a in range(10))
    assert backoff_delay(0, 0.01, 0.01, retry_after=3.0) == 3.0


# ---- a cache_path that cannot be the reply cache: one message naming it ----------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"question,answer\nq,a\n", "not an SQLite file, so it cannot be the reply cache"),
        (bytes(range(256)) * 20, "not an SQLite file, so it cannot be the reply cache"),
    ],
    ids=["text", "binary"],
)
def test_cache_path_that_is_not_sqlite_names_the_file(tmp_path, content, problem):
    from lm_guided_cot.errors import InputError
    from lm_guided_cot.llm.cache import ReplyCache

    path = tmp_path / "llm.sqlite"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        ReplyCache(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {problem}")
    assert "move it away or set cache_path to another file" in message
    assert path.read_bytes() == content  # left as it was
    # through the client too: it fails where it is built, before any request
    config = LLMConfig(
        model="openai/fake-model", api_base="http://127.0.0.1:9", cache_path=str(path)
    )
    with pytest.raises(InputError, match=f"^{re.escape(str(path))}: not an SQLite file"):
        LLMClient(config)


def test_cache_path_that_is_a_folder_or_under_a_file(tmp_path):
    from lm_guided_cot.errors import InputError
    from lm_guided_cot.llm.cache import ReplyCache

    with pytest.raises(InputError) as caught:
        ReplyCache(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: cache_path is a folder; name a file in it")
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache's folder should be\n")
    with pytest.raises(InputError) as caught:
        ReplyCache(blocker / "llm.sqlite")
    assert str(caught.value).startswith(
        f"{blocker / 'llm.sqlite'}: the reply cache's folder cannot be made ({blocker} is a file"
    )


def test_sqlite_file_of_another_program_is_refused_and_left_alone(tmp_path):
    from lm_guided_cot.errors import InputError
    from lm_guided_cot.llm.cache import ReplyCache

    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE replies (id INTEGER, body TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match=r"other\.sqlite: an SQLite file, but not a reply cache"):
        ReplyCache(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("replies",)]
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()


def test_an_existing_cache_and_an_empty_file_open_as_before(tmp_path):
    from lm_guided_cot.llm.cache import CachedReply, ReplyCache

    path = tmp_path / "llm.sqlite"
    first = ReplyCache(path)
    first.put("k", "m", CachedReply("reply", 1, 2, 0.0))
    first.close()
    again = ReplyCache(path)
    assert again.get("k") == CachedReply("reply", 1, 2, 0.0)
    again.close()
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")  # SQLite takes an empty file for an empty database
    assert len(ReplyCache(empty)) == 0


@pytest.mark.parametrize("value", [None, "", "  "])
def test_api_key_env_without_a_key_stops_before_any_request(monkeypatch, tmp_path, value):
    if value is None:
        monkeypatch.delenv("LMCOT_TEST_KEY", raising=False)
    else:
        monkeypatch.setenv("LMCOT_TEST_KEY", value)
    with FakeLLMServer() as server:
        config = LLMConfig(
            model="openai/x",
            api_base=server.base_url,
            api_key_env="LMCOT_TEST_KEY",
            cache_path=None,
        )
        state = "not set" if value is None else "empty"
        with pytest.raises(LLMConfigurationError, match=f"LMCOT_TEST_KEY, which is {state}"):
            LLMClient(config)
        assert server.requests == 0


def test_cache_locked_by_another_process_waits_then_names_the_file(tmp_path, monkeypatch, capsys):
    import sqlite3
    import time

    from lm_guided_cot.errors import RunError
    from lm_guided_cot.llm.cache import LOCK_TIMEOUT_ENV, ReplyCache

    path = tmp_path / "llm.sqlite"
    other = sqlite3.connect(path, isolation_level=None)  # another process's exclusive lock
    other.execute("CREATE TABLE held (x)")
    other.execute("BEGIN EXCLUSIVE")
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "1")
    start = time.monotonic()
    with pytest.raises(RunError) as caught:
        ReplyCache(path)
    assert time.monotonic() - start < 10
    assert str(caught.value) == (
        f"{path}: the reply cache is locked by another process (waited 1 s); let it finish, "
        "or set cache_path to another file"
    )
    told = capsys.readouterr().err
    assert told.count("is locked by another process; waiting up to 1 s") == 1
    other.execute("ROLLBACK")  # released in time: the cache opens and works
    cache = ReplyCache(path)
    assert len(cache) == 0
    other.close()
    cache.close()


def test_cache_lock_timeout_must_be_a_number(monkeypatch, tmp_path):
    from lm_guided_cot.errors import ConfigurationError
    from lm_guided_cot.llm.cache import LOCK_TIMEOUT_ENV, ReplyCache

    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigurationError, match="LMCOT_CACHE_LOCK_TIMEOUT='soon'"):
        ReplyCache(tmp_path / "llm.sqlite")


def test_reply_of_the_wrong_shape_is_one_line_without_litellm_traceback():
    with FakeLLMServer(fault_rates={"shape": 1.0}) as server:
        client = LLMClient(
            LLMConfig(model="openai/fake-model", api_base=server.base_url, max_retries=0)
        )
        result = client.complete([LLMRequest(({"role": "user", "content": "hi"},))])[0]
        client.close()
    assert "Traceback" not in result.error and "\n" not in result.error
    assert "Invalid response object (KeyError: 'message')" in result.error
    assert "not a chat completion" in result.error


def test_local_model_that_is_a_text_file_fails_where_the_client_is_built(tmp_path):
    from lm_guided_cot.errors import InputError

    notes = tmp_path / "notes.txt"
    notes.write_text("not a model\n")
    with pytest.raises(InputError, match=f"^{re.escape(str(notes))}: a file, not a model"):
        LLMClient(LLMConfig(model=f"local/{notes}"))
