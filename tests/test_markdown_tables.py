"""Tables printed where output is not a terminal keep every name and number whole."""

from __future__ import annotations

import io
import subprocess
import sys

from rich.console import Console

from lm_guided_cot.evaluation.table import print_table


def test_an_evaluation_table_in_a_log_file_is_markdown_with_whole_names():
    log = io.StringIO()
    name = "LM-guided (KD+RL, a long row name that rich would cut in 80 columns)"
    header = ("setting", "n", "EM", "F1", "inclusion", "aspects", "words", "LLM calls", "seconds")
    row = (name, 100, 0.25, 0.305, 0.29, 2.8, 39, 100, 262)
    print_table(Console(file=log, width=80), "2wikimultihopqa test, 100 questions", header, [row])
    text = log.getvalue()
    assert f"| {name} | 100 | 25.0 | 30.5 |" in text
    assert "…" not in text and "┃" not in text


def test_models_list_through_a_pipe_names_every_model_whole():
    listed = subprocess.run(
        [sys.executable, "-m", "lm_guided_cot.cli", "models", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "| qwen2.5-coder-0.5b |" in listed and "| qwen2.5-coder-1.5b |" in listed
    assert "…" not in listed
