#!/usr/bin/env python
"""The reader's call pattern through LLMClient: the in-process provider against llama.cpp servers.

For N HotpotQA validation questions the reader is asked once without a rationale and k times
with one (as the marginal-utility reward and self-consistency ask it), all in one batch, with
full distractor contexts and with gold-only ones. Every contender serves the same model
(SmolLM2-135M-Instruct unless ``--model``; the in-process provider dequantises the same GGUF
file to fp32), the
same prompts and the same sampling (greedy, 32 tokens), with no reply cache, and is timed from
its first request to its last reply (model loading and server start-up excluded). Printed per
contender: calls/s, prompt and generated tokens/s, and for the servers the prompt tokens they
evaluated per call and the share taken from their KV cache (prefix reuse). Last, the machine's
limit for the model: prompt tokens/s of one bare forward at full batch (transformers, fp32) and
of one long uncached prompt (llama.cpp).

    python bin/bench_reader.py [--questions 6] [--k 4] [--contexts full gold_only]
        [--contenders in-process llama-server:1 llama-server:2 no-reuse:2 llama-cpp-python]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lm_guided_cot.data.readers import read_split
from lm_guided_cot.data.records import QARecord
from lm_guided_cot.llm.client import LLMClient, LLMRequest
from lm_guided_cot.llm.config import LLMConfig, SamplingParams, ServerConfig
from lm_guided_cot.llm.server import stop_all
from lm_guided_cot.paths import expand_path
from lm_guided_cot.roles import Reader, ReaderConfig

MAX_TOKENS = 32


def load_records(n: int) -> list[QARecord]:
    path = expand_path("$LMCOT_DATA/hotpotqa/validation.jsonl")
    rows = read_split(path, "hotpotqa", split="validation").dataset
    return [QARecord.from_row(rows[i]) for i in range(n)]


def rationales_for(record: QARecord, k: int) -> list[str]:
    """k distinct rationales from the gold supporting sentences (all, reversed, first, last...)."""
    by_title = {p.title: p.sentences for p in record.paragraphs}
    facts = [
        by_title[f.title][f.sent_id].strip()
        for f in record.supporting_facts
        if f.title in by_title and f.sent_id < len(by_title[f.title])
    ] or [record.question]
    variants = [facts, facts[::-1], facts[:1], facts[-1:], facts[1:], facts[:-1]]
    return [" ".join(variants[j % len(variants)]) + f" ({j + 1})" for j in range(k)]


def llm_config(contender: str, threads: int, log_dir: str, model: str) -> LLMConfig:
    common = {
        "sampling": SamplingParams(max_tokens=MAX_TOKENS),
        "max_concurrency": 8,
        "cache_path": None,
        "max_retries": 0,
    }
    if contender == "in-process":
        return LLMConfig(model=f"local/{model}", timeout=3600, **common)
    backend, _, parallel = contender.partition(":")
    server = ServerConfig(
        model=model,
        backend="llama-cpp-python" if backend == "llama-cpp-python" else "llama-server",
        parallel=int(parallel or 1),
        threads=threads,
        ctx_size=4096,
        log_dir=log_dir,
    )
    if backend == "no-reuse":
        # every prompt evaluated in full: what the servers do without prefix reuse
        return LLMConfig(
            server=server,
            timeout=3600,
            group_prefixes=False,
            extra_params={"extra_body": {"cache_prompt": False}},
            **common,
        )
    return LLMConfig(server=server, timeout=3600, **common)


def run_one(contender: str, records, k: int, context: str, threads: int, model: str) -> dict:
    with tempfile.TemporaryDirectory() as log_dir:
        client = LLMClient(llm_config(contender, threads, log_dir, model))
        warm = client.complete([LLMRequest(({"role": "user", "content": "Hello"},))], role="warm")
        if not warm[0].ok:
            raise RuntimeError(f"{contender}: warm-up failed: {warm[0].error}")
        reader = Reader(client, ReaderConfig(context=context))
        batch_records, batch_rationales = [], []
        for record in records:
            batch_records += [record] * (1 + k)
            batch_rationales += [None, *rationales_for(record, k)]
        before = client.server.metrics() if client.server else {}
        start = time.perf_counter()
        outputs = reader.answer(batch_records, batch_rationales)
        wall = time.perf_counter() - start
        after = client.server.metrics() if client.server else {}
        usage = client.role_usage("reader")
        failed = sum(o.error is not None for o in outputs)
        client.close()
        stop_all()
    if failed:
        raise RuntimeError(f"{contender}: {failed} of {len(outputs)} calls failed")
    calls = len(outputs)
    out = {
        "calls": calls,
        "wall_s": wall,
        "calls_per_s": calls / wall,
        "prompt_tok_per_s": usage.prompt_tokens / wall,
        "gen_tok_per_s": usage.completion_tokens / wall,
        "prompt_tok_per_call": usage.prompt_tokens / calls,
    }
    if after:
        evaluated = after["llamacpp:prompt_tokens_total"] - before["llamacpp:prompt_tokens_total"]
        cached = (
            after["llamacpp:prompt_tokens_cached_total"]
            - before["llamacpp:prompt_tokens_cached_total"]
        )
        out["evaluated_per_call"] = evaluated / calls
        out["cached_share"] = cached / max(evaluated + cached, 1)
    return out


def bare_forward_limit(threads: int, model_name: str, batch: int = 8, length: int = 512) -> float:
    """Prompt tokens/s of one no-grad forward of the fp32 model at full batch (transformers)."""
    import torch

    from lm_guided_cot.model_loading import load_model

    torch.set_num_threads(threads)
    model = load_model(model_name).eval()
    ids = torch.randint(100, 1000, (batch, length))
    with torch.inference_mode():
        model(ids[:1, :32])
        start = time.perf_counter()
        model(ids)
    return batch * length / (time.perf_counter() - start)


def llama_cpp_limit(threads: int, record: QARecord, model: str, runs: int = 3) -> float:
    """Prompt tokens/s llama.cpp reports for one long uncached prompt."""
    from lm_guided_cot.llm.server import ensure_server

    with tempfile.TemporaryDirectory() as log_dir:
        server = ensure_server(
            ServerConfig(model=model, threads=threads, ctx_size=4096), Path(log_dir)
        )
        prompt = Reader(None, ReaderConfig()).messages(record)[-1]["content"]  # type: ignore[arg-type]
        body = json.dumps({"prompt": prompt, "n_predict": 1, "cache_prompt": False}).encode()
        request = urllib.request.Request(
            f"{server.url}/completion", body, {"Content-Type": "application/json"}
        )
        rates = []
        for _ in range(runs):
            with urllib.request.urlopen(request, timeout=600) as reply:
                rates.append(json.load(reply)["timings"]["prompt_per_second"])
        stop_all()
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--k", type=int, default=4, help="rationales per question")
    parser.add_argument("--contexts", nargs="+", default=["full", "gold_only"])
    parser.add_argument(
        "--contenders",
        nargs="+",
        default=["in-process", "llama-server:1", "llama-server:2", "no-reuse:2"],
        help="in-process, llama-server:P, no-reuse:P (llama-server, no KV reuse), llama-cpp-python",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--model", default="smollm2", help="a registry name (lmcot models list) or a .gguf file"
    )
    parser.add_argument("--repeats", type=int, default=1, help="contenders alternate; medians")
    parser.add_argument(
        "--limit_batch", type=int, default=8, help="sequences in the bare forward (x 512 tokens)"
    )
    parser.add_argument(
        "--limit_runs", type=int, default=3, help="uncached llama.cpp prompts timed (median)"
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    records = load_records(args.questions)
    print(
        f"reader pattern: {args.questions} HotpotQA validation questions x (1 + {args.k}) calls, "
        f"{args.model}, greedy, {MAX_TOKENS} tokens, no reply cache, "
        f"{args.threads} threads, client concurrency 8"
    )
    results: dict[str, dict[str, dict]] = {}
    for context in args.contexts:
        selection = "all" if context == "full" else "gold_only"
        runs: dict[str, list[dict]] = {c: [] for c in args.contenders}
        for _ in range(args.repeats):
            for contender in args.contenders:
                runs[contender].append(
                    run_one(contender, records, args.k, selection, args.threads, args.model)
                )
        results[context] = {c: median_run(r) for c, r in runs.items()}
        print_table(context, results[context], args.repeats)
    bare = bare_forward_limit(args.threads, args.model, batch=args.limit_batch)
    native = llama_cpp_limit(args.threads, records[0], args.model, runs=args.limit_runs)
    print(
        f"\nmachine limit for this model: transformers fp32 bare forward {bare:,.0f} prompt tok/s "
        f"(batch {args.limit_batch} x 512); llama.cpp one uncached full-context prompt "
        f"{native:,.0f} prompt tok/s (median of {args.limit_runs})"
    )
    if args.json:
        results["limits"] = {"transformers_forward": bare, "llama_cpp_prompt": native}
        Path(args.json).write_text(json.dumps(results, indent=1))


def median_run(runs: list[dict]) -> dict:
    """The run with the median calls/s, with the spread of calls/s over all runs."""
    ordered = sorted(runs, key=lambda r: r["calls_per_s"])
    out = dict(ordered[(len(ordered) - 1) // 2])
    out["calls_per_s_all"] = [r["calls_per_s"] for r in runs]
    return out


def print_table(context: str, rows: dict[str, dict], repeats: int = 1) -> None:
    print(
        f"\ncontext: {context}"
        + (f" (median of {repeats}; calls/s min-max)" if repeats > 1 else "")
    )
    print(
        f"{'contender':<22}{'calls':>6}{'wall s':>9}{'calls/s':>9}{'prompt tok/s':>14}"
        f"{'gen tok/s':>11}{'prompt tok/call':>17}{'evaluated/call':>16}{'reused':>8}{'vs in-process':>15}"
    )
    base = rows.get("in-process", {}).get("calls_per_s")
    for name, r in rows.items():
        evaluated = f"{r['evaluated_per_call']:.0f}" if "evaluated_per_call" in r else "-"
        reused = f"{r['cached_share']:.0%}" if "cached_share" in r else "-"
        ratio = f"{r['calls_per_s'] / base:.2f}x" if base else "-"
        spread = r["calls_per_s_all"]
        if len(spread) > 1:
            ratio += f"  ({min(spread):.2f}-{max(spread):.2f} calls/s)"
        print(
            f"{name:<22}{r['calls']:>6}{r['wall_s']:>9.1f}{r['calls_per_s']:>9.2f}"
            f"{r['prompt_tok_per_s']:>14.0f}{r['gen_tok_per_s']:>11.1f}"
            f"{r['prompt_tok_per_call']:>17.0f}{evaluated:>16}{reused:>8}  {ratio}"
        )


if __name__ == "__main__":
    main()
