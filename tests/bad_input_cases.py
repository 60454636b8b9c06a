"""Bad inputs for every ``lmcot`` verb, run as a user runs them, and what each must print.

``tests/test_bad_inputs.py`` runs each case as a test; ``python -m tests.bad_input_cases``
runs them all and prints the table (case, exit code, traceback, secret, first message line),
so the same cases measure a code before and after a change (``PYTHONPATH=OLD/src``).

In each case's text, ``@TMP@`` is the case's own folder (its working directory), ``@DATA@``
the real data samples, ``@MODEL@`` a tiny causal LM folder, ``@URL@`` a fake large LM,
``@ID@`` the first HotpotQA validation id, ``@KEY@`` a planted credential, which must
appear nowhere in the output or in any file the run wrote, ``@CKPT@`` a checkpoint of the tiny
model (written when a case names it) and ``@HUB@`` a stand-in Hub that refuses every token
(``HUB_TOKEN``, planted too, in a case's ``env``).

A case can run its command on a small tmpfs mounted read-only or filled up (``mounts``; needs
``unshare -m``, so root or a user namespace; the tests skip those cases elsewhere), hold an
exclusive lock on an SQLite file while it runs (``locked``) or copy the tiny model with its
weights cut or left out (``models``). ``--src OLD/src`` runs the command (only) on another
checkout, for a table's "before" column.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.fit_configs import answer_and_aspects_reward, hotpotqa_data, ppo_fit_config

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LMCOT_DATA", REPO.parent / "shared" / "data"))
PLANTED_KEY = "sk-planted-in-config-0123456789abcdef"
ENV_KEYS = {
    "OPENAI_API_KEY": "sk-planted-in-env-aaaaaaaaaaaaaaaa",
    "ANTHROPIC_API_KEY": "sk-ant-planted-in-env-bbbbbbbbbbbb",
    "MY_SERVER_KEY": "planted-server-key-cccccccccccc",
}
HUB_TOKEN = "hf_PlantedHubToken0123456789abcdef"
URL_PASSWORD = "planted-url-password-eeeeeeee"  # in api_base's user-info
SECRETS = (PLANTED_KEY, *ENV_KEYS.values(), HUB_TOKEN, URL_PASSWORD)
MAX_LINES = 40  # a message, perhaps a usage line and progress: never a traceback wall


@dataclass(frozen=True)
class Case:
    """One bad input: the arguments after ``lmcot``, the files to write first (relative to
    the case's folder), what the output must contain, and the exit code."""

    name: str
    args: tuple[str, ...]
    expect: tuple[str, ...]
    code: int = 2
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    faults: dict[str, float] = field(default_factory=dict)  # of the fake large LM
    no_requests: bool = False  # the fake large LM must see no request
    writes: tuple[str, ...] = ()  # files the run must still have written
    mounts: dict[str, str] = field(default_factory=dict)  # folder: "read-only" or "full"
    locked: str = ""  # an SQLite file (made if missing) held in an exclusive lock meanwhile
    models: dict[str, str] = field(default_factory=dict)  # folder: "cut weights", "no weights"
    zeros: dict[str, int] = field(default_factory=dict)  # files of this many zero bytes (sparse)


def _llm(**extra) -> dict:
    return {
        "model": "openai/fake-large",
        "api_base": "@URL@",
        "cache_path": "@TMP@/llm.sqlite",
        "timeout": 5,
        "max_retries": 1,
        "backoff_base": 0.01,
        "backoff_max": 0.02,
        **extra,
    }


def _data(**extra) -> dict:
    return hotpotqa_data("@DATA@", "@TMP@/hf", **extra)


_TRAINER = {
    "accelerator": "cpu",
    "max_steps": 1,
    "default_root_dir": "@TMP@/runs",
    "num_sanity_val_steps": 0,
    "limit_val_batches": 0,
    "enable_model_summary": False,
}

PPO_CONFIG = ppo_fit_config("@MODEL@", answer_and_aspects_reward(_llm()), _data(), trainer=_TRAINER)

DISTILL_CONFIG = {
    "trainer": _TRAINER,
    "model": {
        "class_path": "lm_guided_cot.stages.DistillationModule",
        "init_args": {"model": "@MODEL@", "generation": {"max_new_tokens": 4}},
    },
    "data": _data(rationales={"dir": "@TMP@/rationales", "llm": _llm(max_retries=0)}),
}

EVAL_CONFIG = {
    "llm": _llm(),
    "judge": None,
    "small_lms": [{"name": "guide", "model": "@MODEL@", "generation": {"max_new_tokens": 4}}],
    "split": "validation",
    "output_dir": "@TMP@/evaluation",
    "data": _data(),
}

JUDGE_CHECK_CONFIG = {
    "llm": _llm(),
    "max_questions": 2,
    "bootstrap_resamples": 20,
    "output_dir": "@TMP@/judge_check",
    "data": _data(),
}

BASE_FILES: dict[str, str] = {
    "ppo.yaml": yaml.safe_dump(PPO_CONFIG),
    "distill.yaml": yaml.safe_dump(DISTILL_CONFIG),
    "evaluate.yaml": yaml.safe_dump(EVAL_CONFIG),
    "judge_check.yaml": yaml.safe_dump(JUDGE_CHECK_CONFIG),
    "llm.yaml": yaml.safe_dump(_llm()),
}
GOLD = "@DATA@/hotpotqa/validation.jsonl"
PPO = ("fit", "-c", "@TMP@/ppo.yaml")
DISTILL = ("fit", "-c", "@TMP@/distill.yaml")
EVALUATE = ("evaluate", "-c", "@TMP@/evaluate.yaml")
JUDGE_CHECK = ("judge-check", "-c", "@TMP@/judge_check.yaml")
ASK = ("ask", "hello", "--llm", "@TMP@/llm.yaml")


def _reward(**llm) -> tuple[str, str]:
    """``--model.init_args.reward`` replaced by an answer reward whose large LM has ``llm``."""
    reward = {"class_path": "lm_guided_cot.rewards.AnswerReward", "init_args": {"llm": _llm(**llm)}}
    return "--model.init_args.reward", json.dumps(reward)


BAD_UTF8 = b'{"answer": {"x": "caf\xe9"}}'
UNREACHABLE = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there


def _cut_checkpoint() -> bytes:
    """The first half of a zip archive shaped like a ``torch.save`` file: a checkpoint whose
    copy was interrupted."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("last/data.pkl", b"\x80\x02}q\x00." + bytes(range(256)) * 64)
        archive.writestr("last/version", "3\n")
    data = buffer.getvalue()
    return data[: len(data) // 2]


# A recipe folder whose distill.yaml has no trainer.callbacks (lmcot reproduce --config_dir).
RECIPE_WITHOUT_CALLBACKS = {
    "configs/recipe/hotpotqa/data.yaml": yaml.safe_dump({"data": _data()}),
    "configs/recipe/hotpotqa/distill.yaml": yaml.safe_dump(
        {
            "trainer": _TRAINER,
            "model": {
                "class_path": "lm_guided_cot.stages.DistillationModule",
                "init_args": {"model": "@MODEL@", "export_dir": "@TMP@/runs/distill/export"},
            },
        }
    ),
}
EVAL_GUIDE = (*EVALUATE, "--small_lms")


def _guide(model: str) -> str:
    return json.dumps([{"name": "guide", "model": model, "generation": {"max_new_tokens": 4}}])


# Issue 31: the traceback walls left after issue 18 (docs/bad_inputs.md, "Issue 31 (tracebacks)").
ISSUE_31_CASES: list[Case] = [
    Case(
        "fit: --trainer.enable_progress_bar false",
        (*PPO, "--trainer.enable_progress_bar", "false"),
        ("exported the PPO policy",),
        code=0,
    ),
    Case(
        "fit: prompt given as a list",
        (*PPO, "--data.init_args.prompt", '["Question: {question}"]'),
        ("prompt",),
    ),
    Case(
        "fit: --ckpt_path a cut-off checkpoint",
        (*PPO, "--ckpt_path", "@TMP@/last.ckpt"),
        ("last.ckpt",),
        files={"last.ckpt": b""},  # filled in below
    ),
    Case(
        "fit: --ckpt_path a folder",
        (*PPO, "--ckpt_path", "@TMP@/checkpoints"),
        ("checkpoints",),
        files={"checkpoints/epoch=0-step=1.ckpt": b""},
    ),
    Case(
        "validate: --ckpt_path a cut-off checkpoint",
        ("validate", "-c", "@TMP@/ppo.yaml", "--ckpt_path", "@TMP@/last.ckpt"),
        ("last.ckpt",),
        files={"last.ckpt": b""},  # filled in below
    ),
    Case(
        "validate: --ckpt_path a folder",
        ("validate", "-c", "@TMP@/ppo.yaml", "--ckpt_path", "@TMP@/checkpoints"),
        ("checkpoints",),
        files={"checkpoints/epoch=0-step=1.ckpt": b""},
    ),
    Case(
        "evaluate: output_dir is a file",
        (*EVALUATE, "--output_dir", "@TMP@/results.txt"),
        ("results.txt", "output_dir"),
        files={"results.txt": "my notes\n"},
        no_requests=True,
    ),
    Case(
        "evaluate: output_dir on a read-only mount",
        (*EVALUATE, "--output_dir", "@TMP@/ro/evaluation"),
        ("@TMP@/ro/evaluation", "output_dir", "read-only"),
        mounts={"ro": "read-only"},
        no_requests=True,
    ),
    Case(
        "evaluate: output_dir on a full disk",
        (*EVALUATE, "--output_dir", "@TMP@/full/evaluation"),
        ("@TMP@/full/evaluation", "output_dir", "space"),
        code=1,
        mounts={"full": "full"},
        no_requests=True,
    ),
    Case(
        "evaluate: guide model is a text file",
        (*EVAL_GUIDE, _guide("@TMP@/guide.txt")),
        ("guide.txt",),
        files={"guide.txt": "not a model\n"},
        no_requests=True,
    ),
    Case(
        "evaluate: guide model's safetensors file cut off",
        (*EVAL_GUIDE, _guide("@TMP@/guide")),
        ("@TMP@/guide/model.safetensors",),
        models={"guide": "cut weights"},
        no_requests=True,
    ),
    Case(
        "evaluate: guide folder without weights",
        (*EVAL_GUIDE, _guide("@TMP@/guide")),
        ("@TMP@/guide", "weights"),
        models={"guide": "no weights"},
        no_requests=True,
    ),
    Case(
        "ask: a reply of the wrong JSON shape",
        ASK,
        ("not a chat completion", "api_base"),
        code=1,
        faults={"shape": 1.0},
    ),
    Case(
        "rationales: dir on a read-only mount",
        ("rationales", "-c", "@TMP@/distill.yaml", "--data.init_args.rationales.dir", "@TMP@/ro/r"),
        ("@TMP@/ro/r", "rationales.dir", "read-only"),
        mounts={"ro": "read-only"},
        no_requests=True,
    ),
    Case(
        "rationales: dir is a file",
        ("rationales", "-c", "@TMP@/distill.yaml", "--data.init_args.rationales.dir", "@TMP@/r"),
        ("@TMP@/r", "rationales.dir"),
        files={"r": "not a folder\n"},
        no_requests=True,
    ),
    Case(
        "ask: local/<text file>",
        (*ASK, "--llm.model", "local/@TMP@/notes.txt"),
        ("notes.txt",),
        files={"notes.txt": "not a model\n"},
    ),
    Case(
        "ask: cache locked by another process",
        ASK,
        ("@TMP@/llm.sqlite", "locked"),
        code=1,
        env={"LMCOT_CACHE_LOCK_TIMEOUT": "3"},
        locked="llm.sqlite",
        no_requests=True,
    ),
    Case("export: to .", ("export", "@CKPT@", "."), ("output",)),
    Case(
        "export: to a read-only mount",
        ("export", "@CKPT@", "@TMP@/ro/out"),
        ("@TMP@/ro/out", "read-only"),
        mounts={"ro": "read-only"},
    ),
    Case(
        "export: to a full disk",
        ("export", "@CKPT@", "@TMP@/full/out"),
        ("@TMP@/full/out", "space"),
        code=1,
        mounts={"full": "full"},
    ),
    Case(
        "export: --model a text file",
        ("export", "@CKPT@", "@TMP@/out", "--model", "@TMP@/notes.txt"),
        ("notes.txt",),
        files={"notes.txt": "not a model\n"},
    ),
    Case(
        "models: LMCOT_MODELS names a file",
        ("models", "fetch", "smollm2-135m"),
        ("LMCOT_MODELS", "@TMP@/models"),
        files={"models": "not a folder\n"},
        env={"LMCOT_MODELS": "@TMP@/models"},
    ),
    Case("predict: not supported", ("predict", "-c", "@TMP@/ppo.yaml"), ("predict", "fit")),
    Case(
        "reproduce: distill.yaml without trainer.callbacks",
        ("reproduce", "hotpotqa", "--config_dir", "@TMP@/configs", "--stages", "[distill]"),
        ("distill.yaml", "callbacks"),
        files=RECIPE_WITHOUT_CALLBACKS,
    ),
]
ISSUE_31_CASES = [
    Case(**{**c.__dict__, "files": {**c.files, "last.ckpt": _cut_checkpoint()}})
    if "last.ckpt" in c.files
    else c
    for c in ISSUE_31_CASES
]


CASES: list[Case] = [
    # ---- lmcot score -----------------------------------------------------------------------
    Case("score: prediction file missing", ("score", "@TMP@/nope.json", GOLD), ("nope.json",)),
    Case(
        "score: prediction path is a folder",
        ("score", "@TMP@/adir", GOLD),
        ("adir",),
        files={"adir/x": ""},
    ),
    Case(
        "score: prediction file empty",
        ("score", "@TMP@/p.json", GOLD),
        ("p.json", "empty"),
        files={"p.json": ""},
    ),
    Case(
        "score: prediction file blank",
        ("score", "@TMP@/p.json", GOLD),
        ("p.json", "white space"),
        files={"p.json": " \n\t\n"},
    ),
    Case(
        "score: prediction JSON cut off",
        ("score", "@TMP@/p.json", GOLD),
        ("p.json", "line 1"),
        files={"p.json": '{"answer": {"a": "b"'},
    ),
    Case(
        "score: prediction file not UTF-8",
        ("score", "@TMP@/p.json", GOLD),
        ("p.json", "byte"),
        files={"p.json": BAD_UTF8},
    ),
    Case(
        "score: prediction top level is a list",
        ("score", "@TMP@/p.json", GOLD),
        ("p.json", "object"),
        files={"p.json": "[1, 2]"},
    ),
    Case(
        "score: no predicted id is in the gold file",
        ("score", "@TMP@/p.json", GOLD),
        ("p.json", "gold"),
        files={"p.json": '{"answer": {"not-an-id": "x"}}'},
    ),
    Case(
        "score: sp entry whose sent_id is a list",  # the official script stops on it too
        ("score", "@TMP@/p.json", GOLD),
        ("p.json", "@ID@", "sp"),
        files={"p.json": '{"answer": {"@ID@": "x"}, "sp": {"@ID@": [["Title", [0]]]}}'},
    ),
    Case(
        "score: answer section is a list",
        ("score", "@TMP@/p.json", GOLD),
        ("p.json", "answer"),
        files={"p.json": '{"answer": ["x"]}'},
    ),
    Case(
        "score: gold file missing",
        ("score", "@TMP@/p.json", "@TMP@/gold.jsonl"),
        ("gold.jsonl",),
        files={"p.json": '{"answer": {}}'},
    ),
    Case(
        "score: gold file empty",
        ("score", "@TMP@/p.json", "@TMP@/gold.jsonl"),
        ("gold.jsonl", "empty"),
        files={"p.json": '{"answer": {}}', "gold.jsonl": ""},
    ),
    Case(
        "score: gold file not UTF-8",
        ("score", "@TMP@/p.json", "@TMP@/gold.jsonl"),
        ("gold.jsonl", "byte"),
        files={"p.json": '{"answer": {}}', "gold.jsonl": BAD_UTF8},
    ),
    Case(
        "score: 2Wiki gold JSON cut off",
        ("score", "@TMP@/p.json", "@TMP@/dev.json", "--source", "2wikimultihopqa"),
        ("dev.json",),
        files={"p.json": '{"answer": {}}', "dev.json": '[{"_id": "a", "question'},
    ),
    Case(
        "score: unknown --source",
        ("score", "@TMP@/p.json", GOLD, "--source", "squad"),
        ("source",),
        files={"p.json": '{"answer": {}}'},
    ),
    # ---- lmcot ask (the large-LM client) ---------------------------------------------------
    Case(
        "ask: api_key_env names an unset variable",
        (*ASK, "--llm.api_key_env", "LMCOT_NO_SUCH_KEY"),
        ("LMCOT_NO_SUCH_KEY", "not set"),
        no_requests=True,
    ),
    Case(
        "ask: api_key_env names an empty variable",
        (*ASK, "--llm.api_key_env", "LMCOT_EMPTY_KEY"),
        ("LMCOT_EMPTY_KEY", "empty"),
        env={"LMCOT_EMPTY_KEY": ""},
        no_requests=True,
    ),
    Case(
        "ask: a key in extra_params (YAML)",
        ("ask", "hello", "--llm", "@TMP@/secret.yaml"),
        ("extra_params", "credentials"),
        files={"secret.yaml": yaml.safe_dump(_llm(extra_params={"api_key": PLANTED_KEY}))},
    ),
    Case(
        "ask: a key in extra_params (command line)",
        (*ASK, "--llm.extra_params", json.dumps({"api_key": PLANTED_KEY})),
        ("extra_params", "credentials"),
    ),
    Case(
        "ask: a top-level api_key in the LLM config",
        ("ask", "hello", "--llm", "@TMP@/secret.yaml"),
        ("api_key",),
        files={"secret.yaml": yaml.safe_dump(_llm(api_key=PLANTED_KEY))},
    ),
    Case(
        "ask: sampling.temperature -1", (*ASK, "--llm.sampling.temperature", "-1"), ("temperature",)
    ),
    Case("ask: sampling.max_tokens -3", (*ASK, "--llm.sampling.max_tokens", "-3"), ("max_tokens",)),
    Case("ask: sampling.top_p 1.5", (*ASK, "--llm.sampling.top_p", "1.5"), ("top_p",)),
    Case("ask: max_retries -1", (*ASK, "--llm.max_retries", "-1"), ("max_retries",)),
    Case("ask: timeout 0", (*ASK, "--llm.timeout", "0"), ("timeout",)),
    Case("ask: max_concurrency 0", (*ASK, "--llm.max_concurrency", "0"), ("max_concurrency",)),
    Case(
        "ask: requests_per_minute -5",
        (*ASK, "--llm.requests_per_minute", "-5"),
        ("requests_per_minute",),
    ),
    Case(
        "ask: cache file that is not a cache",
        (*ASK, "--llm.cache_path", "@TMP@/notes.sqlite"),
        ("notes.sqlite",),
        files={"notes.sqlite": "my notes, not a database\n" * 20},
    ),
    Case(
        "ask: cache path is a folder",
        (*ASK, "--llm.cache_path", "@TMP@/adir"),
        ("adir",),
        files={"adir/x": ""},
    ),
    Case("ask: misspelt option", (*ASK, "--llm.max_retrys", "3"), ("max_retrys",)),
    Case(
        "ask: LLM config file missing",
        ("ask", "hello", "--llm", "@TMP@/missing.yaml"),
        ("missing.yaml",),
    ),
    Case(
        "ask: LLM config is not YAML",
        ("ask", "hello", "--llm", "@TMP@/broken.yaml"),
        ("broken.yaml",),
        files={"broken.yaml": "model: [openai/x\ntimeout: 5\n"},
    ),
    Case(
        "ask: server echoes the key in a 500",
        ASK,
        ("InternalServerError", "auth was Bearer ***"),
        code=1,
        faults={"error500": 1.0},
    ),
    Case(
        "ask: nothing listens at api_base",
        (*ASK, "--llm.api_base", UNREACHABLE),
        ("127.0.0.1:9",),
        code=1,
    ),
    # ---- lmcot fit (LightningCLI) ----------------------------------------------------------
    Case("fit: max_examples -1", (*PPO, "--data.init_args.max_examples", "-1"), ("max_examples",)),
    Case(
        "fit: train file missing",
        (*PPO, "--data.init_args.train", "@TMP@/missing.jsonl"),
        ("missing.jsonl",),
    ),
    Case(
        "fit: train file empty",
        (*PPO, "--data.init_args.train", "@TMP@/empty.jsonl"),
        ("empty.jsonl", "empty"),
        files={"empty.jsonl": ""},
    ),
    Case(
        "fit: train file blank",
        (*PPO, "--data.init_args.train", "@TMP@/blank.jsonl"),
        ("blank.jsonl", "white space"),
        files={"blank.jsonl": "\n   \n"},
    ),
    Case(
        "fit: train file not UTF-8",
        (*PPO, "--data.init_args.train", "@TMP@/latin.jsonl"),
        ("latin.jsonl", "byte"),
        files={"latin.jsonl": BAD_UTF8},
    ),
    Case(
        "fit: train file's last line cut off",
        (*PPO, "--data.init_args.train", "@TMP@/cut.jsonl"),
        ("cut.jsonl", "line 2"),
        files={
            "cut.jsonl": (DATA / "hotpotqa/train.jsonl").read_text().splitlines()[0]
            + '\n{"id": "x", "question": "Wh'
        },
    ),
    Case(
        "fit: train path is an empty folder",
        (*PPO, "--data.init_args.train", "@TMP@/adir"),
        ("adir",),
        files={"adir/.keep": ""},
    ),
    Case("fit: batch_size 0", (*PPO, "--data.init_args.batch_size", "0"), ("batch_size",)),
    Case(
        "fit: learning_rate -1", (*PPO, "--model.init_args.learning_rate", "-1"), ("learning_rate",)
    ),
    Case(
        "fit: samples_per_question 0",
        (*PPO, "--model.init_args.ppo.samples_per_question", "0"),
        ("samples_per_question",),
    ),
    Case("fit: ppo_epochs 0", (*PPO, "--model.init_args.ppo.ppo_epochs", "0"), ("ppo_epochs",)),
    Case(
        "fit: rollout temperature -1",
        (*PPO, "--model.init_args.ppo.rollout.temperature", "-1"),
        ("temperature",),
    ),
    Case(
        "fit: reward weights all zero",
        (*PPO, "--model.init_args.reward.init_args.weights", "[0, 0]"),
        ("weights",),
    ),
    Case(
        "fit: reward weights and rewards differ in number",
        (*PPO, "--model.init_args.reward.init_args.weights", "[1.0]"),
        ("weights",),
    ),
    Case(
        "fit: reward LLM max_retries -1",
        (*PPO, *_reward(max_retries=-1)),
        ("max_retries",),
    ),
    Case(
        "fit: reward LLM api_key_env unset",
        (*PPO, *_reward(api_key_env="LMCOT_NO_SUCH_KEY")),
        ("LMCOT_NO_SUCH_KEY",),
        no_requests=True,
    ),
    Case(
        "fit: a key in the reward LLM's extra_params",
        (*PPO, *_reward(extra_params={"api_key": PLANTED_KEY})),
        ("extra_params", "credentials"),
    ),
    Case("fit: misspelt Trainer option", (*PPO, "--trainer.max_stepz", "3"), ("max_stepz",)),
    Case("fit: config file missing", ("fit", "-c", "@TMP@/nope.yaml"), ("nope.yaml",)),
    Case(
        "fit: config file is not YAML",
        ("fit", "-c", "@TMP@/broken.yaml"),
        ("broken.yaml",),
        files={"broken.yaml": "trainer: {max_steps: 1\nmodel: x\n"},
    ),
    Case(
        "fit: small LM folder missing",
        (*DISTILL, "--model.init_args.model", "@TMP@/no_model"),
        ("no_model",),
    ),
    Case(
        "fit: generation max_new_tokens 0",
        (*DISTILL, "--model.init_args.generation.max_new_tokens", "0"),
        ("max_new_tokens",),
    ),
    Case(
        "fit: resume from a checkpoint that is not there",
        (*PPO, "--ckpt_path", "@TMP@/last.ckpt"),
        ("last.ckpt",),
    ),
    Case(
        "validate: checkpoint that is not there",
        ("validate", "-c", "@TMP@/ppo.yaml", "--ckpt_path", "@TMP@/epoch=1.ckpt"),
        ("epoch=1.ckpt",),
    ),
    Case(
        "test: no test split configured",
        ("test", "-c", "@TMP@/ppo.yaml"),
        ("test",),
    ),
    # ---- lmcot rationales, evaluate, export, models, serve, demo ---------------------------
    Case(
        "rationales: every teacher call failed",
        (
            "rationales",
            "-c",
            "@TMP@/distill.yaml",
            "--data.init_args.rationales.llm.api_base",
            UNREACHABLE,
        ),
        ("summary",),
        code=1,
        writes=("rationales/train.summary.json",),
    ),
    Case(
        "rationales: a key on the command line",
        (
            "rationales",
            "-c",
            "@TMP@/distill.yaml",
            "--data.init_args.rationales.llm.extra_params",
            json.dumps({"api_key": PLANTED_KEY}),
        ),
        ("extra_params", "credentials"),
    ),
    Case(
        "evaluate: guide folder missing",
        (*EVALUATE, "--small_lms", json.dumps([{"name": "guide", "model": "@TMP@/no_export"}])),
        ("no_export",),
    ),
    Case(
        "evaluate: self-consistency with 0 samples",
        (*EVALUATE, "--small_lms", json.dumps([{"name": "sc", "model": "@MODEL@", "samples": 0}])),
        ("samples",),
    ),
    Case("evaluate: misspelt option", (*EVALUATE, "--output_dri", "x"), ("output_dri",)),
    Case(
        "judge-check: every judge call failed",
        (*JUDGE_CHECK, "--llm.api_base", UNREACHABLE),
        ("judge check: all", "no results were written"),
        code=1,
    ),
    Case(
        "judge-check: rationale file missing",
        (*JUDGE_CHECK, "--rationale_files", json.dumps([{"name": "kd", "path": "@TMP@/kd.jsonl"}])),
        ("kd.jsonl", "no such rationale file"),
        no_requests=True,
    ),
    Case(
        "judge-check: no questions",
        (*JUDGE_CHECK, "--max_questions", "0"),
        ("max_questions must be at least 1",),
        no_requests=True,
    ),
    Case(
        "judge-check: unknown protocol",
        (*JUDGE_CHECK, "--judge.protocol", "likert"),
        ("protocol", "likert"),
        no_requests=True,
    ),
    Case("export: checkpoint missing", ("export", "@TMP@/nope.ckpt", "@TMP@/out"), ("nope.ckpt",)),
    Case(
        "export: checkpoint is not a checkpoint",
        ("export", "@TMP@/junk.ckpt", "@TMP@/out"),
        ("junk.ckpt",),
        files={"junk.ckpt": "not a checkpoint"},
    ),
    Case(
        "export: push to the Hub without a token",
        ("export", "@CKPT@", "@TMP@/out", "--push_to_hub", "me/guide"),
        ("me/guide", "no Hugging Face token", "HF_TOKEN", "intact at @TMP@/out"),
        code=1,
        env={"HF_TOKEN": "", "HF_TOKEN_PATH": "@TMP@/no-login/token", "HF_HUB_OFFLINE": "0"},
        writes=("out/README.md", "out/model.safetensors"),
    ),
    Case(
        "export: the Hub refuses the token",
        ("export", "@CKPT@", "@TMP@/out", "--push-to-hub", "me/guide"),
        ("me/guide", "401 Unauthorized", "intact at @TMP@/out"),
        code=1,
        env={"HF_TOKEN": HUB_TOKEN, "HF_ENDPOINT": "@HUB@", "HF_HUB_OFFLINE": "0"},
        writes=("out/README.md", "out/model.safetensors"),
    ),
    Case("models: fetch an unknown name", ("models", "fetch", "no-such-model"), ("no-such-model",)),
    Case("serve: unknown model", ("serve", "no-such-model"), ("no-such-model",)),
    Case("serve: port 70000", ("serve", "smollm2", "--port", "70000"), ("port",)),
    Case(
        "demo: two parts chosen alone at once",
        ("demo", "--train-only", "--eval-only"),
        ("--train_only", "--eval_only"),
    ),
    *ISSUE_31_CASES,
]


def _lines(relative: str, n: int) -> list[str]:
    with open(DATA / relative, encoding="utf-8") as handle:
        return [handle.readline() for _ in range(n)]


def _fact_past_its_paragraph() -> str:
    """The first HotpotQA training record with its first supporting fact at sentence 99."""
    record = json.loads(_lines("hotpotqa/train.jsonl", 1)[0])
    record["supporting_facts"]["sent_id"][0] = 99
    return json.dumps(record) + "\n"


def _rationales_beyond_the_split() -> dict[str, str]:
    """Teacher-rationale files: the first 4 train and 2 validation ids, and one train row of an
    id that is in no record of the split."""
    files = {}
    for split, n in (("train", 4), ("validation", 2)):
        ids = [json.loads(line)["id"] for line in _lines(f"hotpotqa/{split}.jsonl", n)]
        ids += ["not-a-train-id"] * (split == "train")
        rows = [{"id": rid, "sample": 0, "rationale": "It is so.", "kept": True} for rid in ids]
        files[f"rationales/{split}.jsonl"] = "".join(json.dumps(r) + "\n" for r in rows)
    return files


def _smollm2() -> tuple[str, int, str]:
    from lm_guided_cot.models.registry import MODELS

    entry = MODELS["smollm2-135m"]
    return entry.file, entry.size, entry.sha256


_SMOLLM2_FILE, _SMOLLM2_SIZE, _SMOLLM2_SHA = _smollm2()
_TRAIN_HEAD = _lines("hotpotqa/train.jsonl", 2)
_GOLD_HEAD = _lines("hotpotqa/validation.jsonl", 1)

# Issue 31: data lost, silently wrong (exit 0), secret shown. Kept apart from the cases above so
# that the table's rows for them are one block ("Issue 31" in docs/bad_inputs.md).
ISSUE_31: list[Case] = [
    Case(
        "export: the output is a folder of other files",
        ("export", "@CKPT@", "@TMP@/mine"),
        ("mine", "not an lmcot export", "--overwrite"),
        files={"mine/notes.txt": "my thesis\n"},
        writes=("mine/notes.txt",),
    ),
    Case(
        "export: the output is a file",
        ("export", "@CKPT@", "@TMP@/model.bin"),
        ("model.bin", "a file, not an export folder", "--overwrite"),
        files={"model.bin": "my weights\n"},
        writes=("model.bin",),
    ),
    Case(
        "fit: export_dir is a folder of other files",
        (*PPO, "--model.init_args.export_dir", "@TMP@/mine"),
        ("PPOModule.export_dir", "mine", "not an lmcot export"),
        files={"mine/notes.txt": "my thesis\n"},
        writes=("mine/notes.txt",),
    ),
    Case(
        "evaluate: the large LM answers every call with a 500",
        EVALUATE,
        ("row 'standard prompting'", "all 2 large-LM calls", "InternalServerError"),
        code=1,
        faults={"error500": 1.0},
    ),
    Case(
        "evaluate: the large LM's replies are not JSON",
        EVALUATE,
        ("row 'standard prompting'", "all 2 large-LM calls", "first error"),
        code=1,
        faults={"malformed": 1.0},
    ),
    Case(
        "fit: every reward call fails",
        PPO,
        ("reward '", "large-LM calls", "InternalServerError", "fallback rewards"),
        code=1,
        faults={"error500": 1.0},
    ),
    Case(
        "models list: a zero-filled model file with a stamp",
        ("models", "list"),
        ("not verified",),
        code=0,
        env={"LMCOT_MODELS": "@TMP@/models", "COLUMNS": "400"},
        files={f"models/{_SMOLLM2_FILE}.sha256": f"{_SMOLLM2_SHA}\n"},
        zeros={f"models/{_SMOLLM2_FILE}": _SMOLLM2_SIZE},
    ),
    Case(
        "fit: train file with a repeated id",
        (*PPO, "--data.init_args.train", "@TMP@/dup.jsonl"),
        ("dup.jsonl", "record 2 (line 3)", "duplicate id", "record 0 (line 1)"),
        files={"dup.jsonl": "".join([*_TRAIN_HEAD, _TRAIN_HEAD[0]])},
    ),
    Case(
        "score: gold file with a repeated id",
        ("score", "@TMP@/p.json", "@TMP@/gold.jsonl"),
        ("gold.jsonl", "record 1 (line 2)", "duplicate id", "record 0 (line 1)"),
        files={"p.json": '{"answer": {"@ID@": "x"}}', "gold.jsonl": _GOLD_HEAD[0] * 2},
    ),
    Case(
        "rationales: a supporting fact past its paragraph",
        (
            "rationales",
            "-c",
            "@TMP@/distill.yaml",
            "--data.init_args.train",
            "@TMP@/sf.jsonl",
            "--data.init_args.rationales.source",
            "supporting_facts",
        ),
        ("supporting_facts[0]", ", 99]", "left out of its stage-1 target"),
        code=0,
        files={"sf.jsonl": _fact_past_its_paragraph()},
    ),
    Case(
        "fit: a rationale file with ids outside the split",
        DISTILL,
        ("rationales/train.jsonl", "not-a-train-id", "belong to no record"),
        code=0,
        files=_rationales_beyond_the_split(),
    ),
    Case(
        "ask: a password in api_base's user-info",
        (*ASK, "--llm.api_base", f"http://user:{URL_PASSWORD}@127.0.0.1:9/v1"),
        ("http://***@127.0.0.1:9/v1",),
        code=1,
    ),
]
CASES += ISSUE_31


def _first_hotpot_id() -> str:
    with open(DATA / "hotpotqa/validation.jsonl", encoding="utf-8") as f:
        return json.loads(f.readline())["id"]


@dataclass
class Outcome:
    code: int
    output: str
    traceback: bool
    leaked: list[str]  # planted secrets found, with where
    requests: int
    missing_writes: list[str]


def _fill(text: str, subs: dict[str, str]) -> str:
    for key, value in subs.items():
        text = text.replace(key, value)
    return text


@functools.lru_cache(maxsize=1)
def can_mount() -> bool:
    """Whether this process may mount a tmpfs in a mount namespace of its own (``mounts``)."""
    probe = ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "t", "/mnt"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _in_mounts(mounts: dict[str, str], folder: Path, command: list[str]) -> list[str]:
    """``command`` run in a mount namespace with a 256 KiB tmpfs on each folder of ``mounts``,
    mounted read-only or filled up to the last block, as a user's full disk or read-only mount."""
    if not mounts:
        return command
    script = []
    for name, how in mounts.items():
        path = folder / name
        path.mkdir(parents=True, exist_ok=True)
        script.append(f"mount -t tmpfs -o size=256k lmcot-case '{path}'")
        if how == "read-only":
            script.append(f"mount -o remount,ro '{path}'")
        elif how == "full":
            script.append(f"(cat /dev/zero > '{path}/filler') 2>/dev/null")
        else:
            raise ValueError(f"unknown mount kind {how!r}")
    prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c"]
    return [*prefix, "; ".join([*script, 'exec "$@"']), "sh", *command]


@contextlib.contextmanager
def _exclusive_lock(path: Path | None) -> Iterator[None]:
    """Another process's exclusive lock on the SQLite file ``path`` while the case runs."""
    if path is None:
        yield
        return
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS held (x)")
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def _model_copy(model_dir: Path, target: Path, how: str) -> None:
    """The tiny model copied to ``target`` with its weights file cut in half or left out."""
    shutil.copytree(model_dir, target)
    weights = target / "model.safetensors"
    if how == "cut weights":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
    elif how == "no weights":
        weights.unlink()
    else:
        raise ValueError(f"unknown model copy {how!r}")


def run_case(
    case: Case, folder: Path, model_dir: Path, timeout: int = 300, src: str | None = None
) -> Outcome:
    """Run ``case`` in ``folder`` (created) and report what it printed and wrote (``src``: a
    checkout's ``src`` folder the command imports the package from)."""
    from lm_guided_cot.testing.fake_hub import FakeHubServer
    from lm_guided_cot.testing.fake_llm import FakeLLMServer

    folder.mkdir(parents=True, exist_ok=True)
    named = " ".join([*case.args, *case.env.values()])
    if "@CKPT@" in named:
        from tests.helpers import write_policy_checkpoint

        write_policy_checkpoint(model_dir, folder / "policy.ckpt")
    with FakeLLMServer(fault_rates=case.faults) as server, FakeHubServer(HUB_TOKEN, True) as hub:
        subs = {
            "@CKPT@": str(folder / "policy.ckpt"),
            "@HUB@": hub.base_url,
            "@TMP@": str(folder),
            "@DATA@": str(DATA),
            "@MODEL@": str(model_dir),
            "@URL@": server.base_url,
            "@ID@": _first_hotpot_id(),
            "@KEY@": PLANTED_KEY,
        }
        inputs = {}
        for name, content in {**BASE_FILES, **case.files}.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(_fill(content, subs))
            inputs[path] = path.stat().st_mtime_ns
        for name, size in case.zeros.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as handle:
                handle.truncate(size)
            inputs[path] = path.stat().st_mtime_ns
        env = {
            **os.environ,
            **ENV_KEYS,
            "COLUMNS": "120",
            "HF_DATASETS_CACHE": str(folder / "hf"),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            **{name: _fill(value, subs) for name, value in case.env.items()},
        }
        env.pop("LMCOT_DEBUG", None)
        if src:
            env["PYTHONPATH"] = src
        for name, how in case.models.items():
            _model_copy(model_dir, folder / name, how)
        command = [sys.executable, "-m", "lm_guided_cot.cli", *(_fill(a, subs) for a in case.args)]
        command = _in_mounts(case.mounts, folder, command)
        with _exclusive_lock(folder / case.locked if case.locked else None):
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=timeout, cwd=folder, env=env
                )
            except subprocess.TimeoutExpired as err:  # a hang is an outcome too
                output = (err.stdout or b"").decode() + (err.stderr or b"").decode()
                done = subprocess.CompletedProcess(
                    command, -9, output, f"\n(timed out after {timeout} s)"
                )
        requests = server.requests
    output = done.stdout + done.stderr
    leaked = [f"output: {s[:12]}..." for s in SECRETS if s in output]
    for path in folder.rglob("*"):
        if not path.is_file() or inputs.get(path) == path.stat().st_mtime_ns:
            continue  # the case's own input files (the planted key is in some of them)
        data = path.read_bytes()
        leaked += [
            f"{path.relative_to(folder)}: {s[:12]}..." for s in SECRETS if s.encode() in data
        ]
    missing = [w for w in case.writes if not (folder / w).exists()]
    return Outcome(done.returncode, output, "Traceback" in output, leaked, requests, missing)


def problems(case: Case, outcome: Outcome, folder: Path) -> list[str]:
    """What is wrong with ``outcome`` for ``case`` (empty when it is handled well)."""
    subs = {"@TMP@": str(folder), "@ID@": _first_hotpot_id()}
    found = []
    if outcome.code != case.code:
        found.append(f"exit code {outcome.code}, expected {case.code}")
    if outcome.traceback:
        found.append("a traceback")
    found += [
        f"does not name {e!r}"
        for e in (_fill(x, subs) for x in case.expect)
        if e not in outcome.output
    ]
    found += [f"secret leaked ({where})" for where in outcome.leaked]
    if case.no_requests and outcome.requests:
        found.append(f"{outcome.requests} request(s) reached the large LM")
    found += [f"did not write {w}" for w in outcome.missing_writes]
    lines = outcome.output.strip().splitlines()
    if len(lines) > MAX_LINES:
        found.append(f"{len(lines)} lines of output")
    return found


def _message_line(output: str, folder: Path) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    picked = next(
        (line for line in reversed(lines) if "lmcot" in line or "rror" in line),
        lines[-1] if lines else "",
    )
    return picked.replace(str(folder), "TMP").replace("|", "\\|")[:160]


def main() -> None:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the cases whose name contains this")
    parser.add_argument("--timeout", type=int, default=300, help="seconds a case may take")
    parser.add_argument("--src", help="run the commands on this checkout's src folder")
    parser.add_argument("--issue31", action="store_true", help="only issue 31's cases")
    args = parser.parse_args()
    import torch
    from transformers import ByT5Tokenizer, LlamaForCausalLM

    from tests.conftest import _tiny_configs

    root = Path(tempfile.mkdtemp(prefix="lmcot-bad-inputs-"))
    model_dir = root / "tiny_llama"
    torch.manual_seed(0)
    LlamaForCausalLM(_tiny_configs()[0]).save_pretrained(model_dir)
    ByT5Tokenizer().save_pretrained(model_dir)
    print("| case | exit | lines | traceback | secret | message |\n|---|---|---|---|---|---|")
    for number, case in enumerate(CASES):
        if (args.only and args.only not in case.name) or (
            args.issue31 and case not in (*ISSUE_31_CASES, *ISSUE_31)
        ):
            continue
        folder = root / f"case{number}"
        outcome = run_case(case, folder, model_dir, args.timeout, args.src)
        found = problems(case, outcome, folder)
        lines = len(outcome.output.strip().splitlines())
        print(
            f"| {case.name} | {outcome.code} | {lines} | {'yes' if outcome.traceback else 'no'} | "
            f"{'LEAKED' if outcome.leaked else 'no'} | {_message_line(outcome.output, folder)}"
            f"{' **(' + '; '.join(found) + ')**' if found else ''} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
