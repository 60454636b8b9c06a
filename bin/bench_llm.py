#!/usr/bin/env python
"""Throughput of the large-LM client against a server with a fixed latency.

Starts the fake OpenAI-compatible server (lm_guided_cot.testing.fake_llm) in its own process
with a fixed latency, then for each concurrency sends the same requests through
- ``LLMClient`` (async, with its SQLite cache on, as runs use it), and
- ``litellm.batch_completion`` (threads), the peer a user would otherwise reach for,
and prints completions per second, as a fraction of the limit (concurrency / latency), and
the ratio of the two. Last, cache lookups per second (a batch answered from the cache).

    python bin/bench_llm.py [--latency 0.1] [--concurrency 8 32 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

from lm_guided_cot.llm.cache import ReplyCache, cache_key
from lm_guided_cot.llm.client import LLMClient, LLMRequest
from lm_guided_cot.llm.config import LLMConfig, SamplingParams

MODEL = "openai/bench-model"
FAILURES: Counter[str] = Counter()


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lm_guided_cot.testing.fake_llm", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


def messages(i: int, tag: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{tag} question {i}: which river flows through Paris?"}]


def run_client(base: str, concurrency: int, n: int, tag: str, cache_dir: str) -> float:
    config = LLMConfig(
        model=MODEL,
        api_base=base,
        max_concurrency=concurrency,
        timeout=30,
        cache_path=str(Path(cache_dir) / f"{tag}.sqlite"),
        sampling=SamplingParams(max_tokens=16),
    )
    client = LLMClient(config)
    requests = [LLMRequest(tuple(messages(i, tag))) for i in range(n)]
    start = time.perf_counter()
    results = client.complete(requests, role="bench")
    elapsed = time.perf_counter() - start
    client.close()
    failed = sum(not r.ok for r in results)
    if failed:
        raise RuntimeError(f"{failed} of {n} client calls failed: {results[0].error}")
    return n / elapsed


def run_batch_completion(base: str, concurrency: int, n: int, tag: str) -> float:
    start = time.perf_counter()
    responses = litellm.batch_completion(
        model=MODEL,
        messages=[messages(i, tag) for i in range(n)],
        api_base=base,
        api_key="EMPTY",
        max_workers=concurrency,
        max_tokens=16,
        timeout=30,
        num_retries=0,
    )
    elapsed = time.perf_counter() - start
    failed = sum(isinstance(r, Exception) for r in responses)
    if failed:  # a peer failure is reported, not fatal: the row says how many
        FAILURES[f"batch_completion c={concurrency}"] += failed
    return n / elapsed


def cache_rates(cache_dir: str, n: int = 2000) -> tuple[float, float]:
    """(raw ReplyCache.get per second, client batch answered from the cache per second)."""
    path = Path(cache_dir) / "lookups.sqlite"
    cache = ReplyCache(path)
    params = SamplingParams(max_tokens=16).to_params()
    from lm_guided_cot.llm.cache import CachedReply

    keys = [cache_key(MODEL, messages(i, "hit"), params, 0) for i in range(n)]
    for key in keys:
        cache.put(key, MODEL, CachedReply("Answer: Seine", 10, 2, 0.0))
    start = time.perf_counter()
    for key in keys:
        cache.get(key)
    raw = n / (time.perf_counter() - start)
    client = LLMClient(
        LLMConfig(
            model=MODEL,
            api_base="http://127.0.0.1:9/v1",
            cache_path=str(path),
            sampling=SamplingParams(max_tokens=16),
        )
    )
    start = time.perf_counter()
    results = client.complete([LLMRequest(tuple(messages(i, "hit"))) for i in range(n)])
    through_client = n / (time.perf_counter() - start)
    assert all(r.cached for r in results)
    return raw, through_client


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Large-LM client throughput vs litellm.batch_completion."
    )
    parser.add_argument("--latency", type=float, default=0.1, help="server latency in seconds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs")
    parser.add_argument(
        "--requests", type=int, default=0, help="requests per run (default 8 x concurrency, >= 128)"
    )
    args = parser.parse_args()

    server, base = start_server(args.latency)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as cache_dir:
            run_client(base, 8, 16, "warmup", cache_dir)
            run_batch_completion(base, 8, 16, "warmup-bc")
            for c in args.concurrency:
                n = args.requests or max(8 * c, 128)
                ours, peer = [], []
                for r in range(args.repeats):
                    ours.append(run_client(base, c, n, f"c{c}r{r}", cache_dir))
                    peer.append(run_batch_completion(base, c, n, f"bc{c}r{r}"))
                rows.append((c, n, statistics.median(ours), statistics.median(peer)))
            raw, via_client = cache_rates(cache_dir)
    finally:
        server.terminate()

    print(
        f"server latency {args.latency * 1000:.0f} ms, median of {args.repeats} runs, {os.cpu_count()} CPUs"
    )
    print(
        f"{'concurrency':>11} {'requests':>8} {'limit/s':>8} {'LLMClient/s':>12} {'of limit':>8} "
        f"{'batch_completion/s':>19} {'of limit':>8} {'ratio':>6}"
    )
    for c, n, ours, peer in rows:
        limit = c / args.latency
        print(
            f"{c:>11} {n:>8} {limit:>8.0f} {ours:>12.1f} {ours / limit:>8.2f} {peer:>19.1f} "
            f"{peer / limit:>8.2f} {ours / peer:>6.2f}"
        )
    print(
        f"cache lookups: {raw:,.0f}/s raw (ReplyCache.get), {via_client:,.0f}/s through LLMClient.complete"
    )


if __name__ == "__main__":
    main()
