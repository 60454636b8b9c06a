"""The verb table of ``lmcot``: each verb's module (under ``lm_guided_cot.cli``), function and
one-line summary. Nothing here imports a verb: ``main`` imports the one that runs."""

from __future__ import annotations

from typing import NamedTuple


class Verb(NamedTuple):
    module: str  # under lm_guided_cot.cli; its function of the same name takes the arguments
    function: str
    summary: str


VERBS: dict[str, Verb] = {
    "score": Verb("score", "score", "Score an official-format prediction file"),
    "ask": Verb(
        "ask", "ask", "Send one message to the configured large LM and print the reply and usage"
    ),
    "rationales": Verb(
        "rationales",
        "rationales",
        "Build stage 1's teacher rationales for a config (lmcot rationales -c CONFIG)",
    ),
    "evaluate": Verb(
        "evaluate",
        "evaluate",
        "Compare standard, CoT, LM-guided and self-consistency settings (lmcot evaluate -c CONFIG)",
    ),
    "judge-check": Verb(
        "evaluate",
        "judge_check",
        "Check that the judge rates gold sentences above a decoy, per aspect (lmcot judge-check)",
    ),
    "export": Verb(
        "export",
        "export",
        "Write a checkpoint's small LM (ZeRO folders too) as a save_pretrained folder",
    ),
    "models": Verb(
        "models",
        "models",
        "List the models known by name, or fetch one (lmcot models list | fetch NAME)",
    ),
    "serve": Verb(
        "serve",
        "serve",
        "Run a llama.cpp server for a GGUF model in the foreground (lmcot serve MODEL)",
    ),
    "demo": Verb(
        "demo",
        "main",
        "Run the quickstart: the pipeline on this machine, then the committed guide's comparison",
    ),
    "reproduce": Verb(
        "reproduce",
        "main",
        "Run the CPU recipe of a benchmark end to end, resumable (lmcot reproduce BENCHMARK)",
    ),
}
TRAINER_VERBS = ("fit", "validate", "test")  # the modules have no predict_step
