"""``lmcot ask``: one message through the large-LM client, to check model, server, key and cache."""

from __future__ import annotations

import dataclasses
import json

from jsonargparse import auto_cli

from lm_guided_cot.llm.config import LLMConfig


def ask_llm(question: str, llm: LLMConfig | None = None, system: str = "") -> dict[str, object]:
    """Send one message through the large-LM client: checks model, server, key and cache.

    Args:
        question: the user message.
        llm: the large LM (a YAML preset such as configs/llm/openai.yaml, or --llm.model ...).
        system: an optional system message.
    """
    from lm_guided_cot.llm.client import LLMClient, LLMRequest

    client = LLMClient(llm or LLMConfig())
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}
    ]
    try:
        result = client.complete([LLMRequest(tuple(messages))], role="ask")[0]
    finally:
        client.close()  # stop the background loop before the interpreter's exit handlers run
    asked = client.role_usages().get("ask")
    usage = dataclasses.asdict(asked) if asked is not None else {}
    return {
        "model": client.config.model,
        "reply": result.text,
        "error": result.error,
        "usage": usage,
    }


def ask(argv: list[str]) -> None:
    """Send one message to the configured large LM and print the reply and usage."""
    result = auto_cli(ask_llm, args=argv, prog="lmcot ask")
    print(json.dumps(result, indent=2))
    if result["error"]:
        raise SystemExit(1)
