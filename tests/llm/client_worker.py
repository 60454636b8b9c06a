"""Run by the client tests in a separate process: one batch of requests through LLMClient.

Usage: client_worker.py BASE_URL CACHE N CONCURRENCY OUT [API_KEY_ENV]
Writes {"texts": [...], "errors": [...], "usage": {...}} to OUT when the batch is done.
"""

from __future__ import annotations

import json
import logging
import sys

from lm_guided_cot.llm.client import LLMClient, LLMRequest
from lm_guided_cot.llm.config import LLMConfig


def requests(n: int) -> list[LLMRequest]:
    return [LLMRequest(({"role": "user", "content": f"question number {i}"},)) for i in range(n)]


def main() -> None:
    base_url, cache, n, concurrency, out = sys.argv[1:6]
    key_env = sys.argv[6] if len(sys.argv) > 6 else None
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    config = LLMConfig(
        model="openai/fake-model",
        api_base=base_url,
        api_key_env=key_env,
        cache_path=cache,
        max_concurrency=int(concurrency),
        timeout=2.0,
        max_retries=3,
        backoff_base=0.01,
        backoff_max=0.05,
    )
    client = LLMClient(config)
    results = client.complete(requests(int(n)), role="reader")
    usage = client.usage()
    logging.getLogger("worker").info("usage %s config %s", usage, config)
    with open(out, "w") as handle:
        json.dump(
            {
                "texts": [r.text for r in results],
                "errors": [r.error for r in results],
                "usage": usage,
            },
            handle,
        )


if __name__ == "__main__":
    main()
