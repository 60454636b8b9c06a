"""An OpenAI-compatible chat-completions server for tests and benchmarks, with faults on demand.

It answers ``POST /v1/chat/completions`` with a deterministic reply (by default
``"Answer: <last user message>"``, or what a ``responder`` returns) after a fixed latency, and
can inject, per request and with given probabilities (seeded):

- ``error500``: HTTP 500 (its body echoes the Authorization header, as careless servers do, to
  prove the client never lets a key through);
- ``rate429``: HTTP 429 with ``Retry-After``;
- ``slow``: the reply comes after ``slow_seconds`` (longer than a client's timeout);
- ``malformed``: HTTP 200 with a body that is not JSON;
- ``shape``: HTTP 200 with JSON of another API's shape (the completions API's ``text``);
- ``empty``: HTTP 200 with empty content;
- ``drop``: the connection is closed without a reply.

``first_attempt_fault`` makes every prompt's first request fail with the given fault (and
its retries succeed); a prompt containing ``ALWAYS_FAIL`` always gets a 500.

What a server may or may not support, on demand: ``logprobs`` (a function of the messages
giving the first token's alternatives, ``{token: log-probability}``) is returned as OpenAI's
``choices[0].logprobs.content[0].top_logprobs`` (the ``top_logprobs`` most likely) to a request
with ``logprobs: true``; without it the server ignores ``logprobs``, as many do.
``structured`` (a function of the messages and the JSON schema) answers a request whose
``response_format`` asks for a ``json_schema``, as a server that constrains its output would;
without it ``response_format`` is ignored. ``reject`` names request fields answered with HTTP
400 (a server that refuses ``logprobs`` or ``response_format``).

``request_params`` keeps each request's body less its messages (temperature, seed, ...), in
arrival order. ``GET /stats`` reports what it saw: requests in total and per prompt, faults by kind, and the
most requests it was answering at once (``max_in_flight``: give a latency, so that they
overlap, to check a client's concurrency limit). Run it
in a thread (``FakeLLMServer().start()``) or as a process:
``python -m lm_guided_cot.testing.fake_llm --latency 0.1`` (prints the port).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from typing import Any

from aiohttp import web

from lm_guided_cot.testing.local_server import LocalServer

FAULTS = ("error500", "rate429", "slow", "malformed", "shape", "empty", "drop")
Messages = list[dict[str, Any]]
ALWAYS_FAIL = "ALWAYS_FAIL"  # a prompt containing this always gets a 500


def prompt_key(messages: list[dict[str, Any]]) -> str:
    """How the server tells requests apart: a hash of the messages."""
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


def echo_responder(messages: list[dict[str, Any]]) -> str:
    last = next((m for m in reversed(messages) if m.get("role") == "user"), messages[-1])
    return f"Answer: {last.get('content', '')}"


class FakeLLMServer(LocalServer):
    """See the module docstring. ``fault_rates`` maps fault names to probabilities."""

    name = "fake LLM server"

    def __init__(
        self,
        responder: Callable[[list[dict[str, Any]]], str] = echo_responder,
        latency: float = 0.0,
        fault_rates: dict[str, float] | None = None,
        slow_seconds: float = 2.0,
        retry_after: float = 0.05,
        first_attempt_fault: str | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        logprobs: Callable[[Messages], Mapping[str, float]] | None = None,
        structured: Callable[[Messages, dict[str, Any]], str] | None = None,
        reject: Collection[str] = (),
    ) -> None:
        unknown = (set(fault_rates or {}) | {first_attempt_fault} - {None}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {FAULTS}")
        self.responder = responder
        self.latency = latency
        self.fault_rates = dict(fault_rates or {})
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.first_attempt_fault = first_attempt_fault
        self.logprobs = logprobs
        self.structured = structured
        self.reject = frozenset(reject)
        self.authorizations: Counter[str] = Counter()  # Authorization headers seen
        self.rng = random.Random(seed)
        super().__init__(host, port)
        self.requests = 0
        self.per_prompt: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()  # 200 replies with content, per prompt
        self.faults: Counter[str] = Counter()
        self.request_params: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    # ---- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_get("/stats", self._stats)
        return app

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "per_prompt": dict(self.per_prompt),
                "answered": dict(self.answered),
                "faults": dict(self.faults),
                "max_in_flight": self.max_in_flight,
            }

    # ---- handlers ----------------------------------------------------------------------------

    def _pick_fault(self, messages: list[dict[str, Any]]) -> str | None:
        if any(ALWAYS_FAIL in str(m.get("content", "")) for m in messages):
            return "error500"
        if self.first_attempt_fault and self.per_prompt[prompt_key(messages)] == 1:
            return self.first_attempt_fault
        draw = self.rng.random()
        for name in FAULTS:
            rate = self.fault_rates.get(name, 0.0)
            if draw < rate:
                return name
            draw -= rate
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        messages = body.get("messages", [])
        key = prompt_key(messages)
        with self.lock:
            self.requests += 1
            self.per_prompt[key] += 1
            self.request_params.append({k: v for k, v in body.items() if k != "messages"})
            self.authorizations[request.headers.get("Authorization", "")] += 1
            fault = self._pick_fault(messages)
            if fault:
                self.faults[fault] += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        refused = sorted(self.reject & set(body))
        if refused:
            return web.json_response(
                {"error": {"message": f"unsupported parameter(s): {', '.join(refused)}"}},
                status=400,
            )
        if fault == "error500":
            auth = request.headers.get("Authorization", "")
            return web.json_response(
                {"error": {"message": f"internal error (auth was {auth})"}}, status=500
            )
        if fault == "rate429":
            return web.json_response(
                {"error": {"message": "rate limited"}},
                status=429,
                headers={"Retry-After": str(self.retry_after)},
            )
        if fault == "drop":
            request.transport.close()
            return web.Response(status=500)
        if fault == "malformed":
            return web.Response(
                text='{"choices": [ this is not json', content_type="application/json"
            )
        if fault == "shape":  # the legacy completions API's reply to a chat request
            return web.json_response(
                {"object": "text_completion", "choices": [{"index": 0, "text": "hello"}]}
            )
        if fault == "slow":
            await asyncio.sleep(self.slow_seconds)
        schema = _json_schema(body.get("response_format"))
        if fault == "empty":
            content = ""
        elif schema is not None and self.structured is not None:
            content = self.structured(messages, schema)
        else:
            content = self.responder(messages)
        if content:
            with self.lock:
                self.answered[key] += 1
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(content.split())
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }
        if body.get("logprobs") and self.logprobs is not None and fault != "empty":
            choice["logprobs"] = _first_token_logprobs(
                self.logprobs(messages), int(body.get("top_logprobs") or 0)
            )
        return web.json_response(
            {
                "id": f"chatcmpl-{key}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [choice],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())


def _json_schema(response_format: Any) -> dict[str, Any] | None:
    """The schema of an OpenAI ``response_format`` that asks for one, else ``None``."""
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        return dict((response_format.get("json_schema") or {}).get("schema") or {})
    return None


def _first_token_logprobs(alternatives: Mapping[str, float], top: int) -> dict[str, Any]:
    """OpenAI's ``logprobs`` of a chat choice for a one-token reply: the most likely token,
    and the ``top`` most likely alternatives."""
    ranked = sorted(alternatives.items(), key=lambda item: -item[1])

    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    first = entry(*ranked[0]) if ranked else entry("", 0.0)
    first["top_logprobs"] = [entry(t, p) for t, p in ranked[:top]]
    return {"content": [first]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--faults", type=json.loads, default={}, help='e.g. {"error500": 0.1}')
    args = parser.parse_args()
    server = FakeLLMServer(latency=args.latency, fault_rates=args.faults, port=args.port)

    async def serve() -> None:
        await server.start_async()
        print(server.port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
