"""The check step of ``lmcot evaluate``: every option and setting refused or accepted before a
model is loaded or a question asked, and what the accepted ones say to run (``EvaluationPlan``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from rich.console import Console

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.datamodules import MultiHopQADataModule
from lm_guided_cot.errors import (
    ConfigurationError,
    InputError,
    MissingFileError,
    check_at_least,
    check_between,
)
from lm_guided_cot.evaluation.settings import RationaleFileSetting, SmallLMSetting, gold_rationale
from lm_guided_cot.files import check_writable
from lm_guided_cot.hparams import as_dataclass
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.model_specs import require_local_model
from lm_guided_cot.roles import JudgeConfig, ReaderConfig, TeacherConfig
from lm_guided_cot.roles.judge import check_judge_records

STANDARD = "standard prompting"
COT = "CoT prompting"
ORACLE = "oracle (gold supporting sentences)"


@dataclass
class EvaluationOptions:
    """``evaluate``'s arguments as one value (their meaning: ``evaluate``'s docstring)."""

    data: MultiHopQADataModule
    llm: LLMConfig
    small_lms: list[SmallLMSetting] | None
    standard: bool
    cot: bool
    oracle: bool
    rationale_files: list[RationaleFileSetting] | None
    row_names: dict[str, str] | None
    question_major: bool | None
    reader: ReaderConfig
    cot_prompt: TeacherConfig
    judge: JudgeConfig | None
    judge_llm: LLMConfig | None
    split: Literal["validation", "test"]
    baseline: str | None
    comparisons: list[list[str]] | None
    bootstrap_resamples: int
    confidence: float
    seed: int
    device: str
    output_dir: str
    num_logged_examples: int
    quiet: bool


@dataclass
class EvaluationPlan:
    """What the checked options say to run: the row names, the guides, the questions."""

    options: EvaluationOptions
    console: Console
    names: dict[str, str]  # the built-in rows' names, keys standard, cot, oracle
    small_lms: list[SmallLMSetting]
    files: list[RationaleFileSetting]
    question_major: bool
    out: Path
    device: torch.device
    records: list[QARecord]


def check_evaluation(options: EvaluationOptions) -> EvaluationPlan:
    """Refuse a bad option, a missing model or file, an unwritable output folder or an empty
    split now, not after an hour of large-LM calls; read the split's questions."""
    o = options
    check_at_least("evaluate.bootstrap_resamples", o.bootstrap_resamples, 1)
    check_between("evaluate.confidence", o.confidence, 0, 1, open_low=True, open_high=True)
    check_at_least("evaluate.num_logged_examples", o.num_logged_examples, 0)
    # soft_wrap: paths and sentences stay whole in log files (a terminal wraps them itself)
    console = Console(quiet=o.quiet, log_path=False, soft_wrap=True)
    small_lms = [as_dataclass(SmallLMSetting, s) for s in o.small_lms or []]
    files = [as_dataclass(RationaleFileSetting, s) for s in o.rationale_files or []]
    names = _row_names(o.row_names)
    rows = (
        [names["standard"]] * o.standard
        + [names["cot"]] * o.cot
        + [s.name for s in (*small_lms, *files)]
        + [names["oracle"]] * o.oracle
    )
    _check_names(rows)
    _check_comparisons(rows, o.baseline, o.comparisons)
    for setting in small_lms:
        require_local_model(setting.model)  # not after an hour of baseline calls
    for setting in files:
        if not Path(setting.path).is_file():
            raise MissingFileError(f"{setting.path}: no such rationale file (row {setting.name!r})")
    question_major = _question_major(o.question_major, o.llm)
    out = Path(o.output_dir)
    check_writable(out, "evaluate.output_dir")  # not after every large-LM call is made
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if o.device == "auto" else o.device)
    records = [QARecord.from_row(row) for row in o.data.records(o.split)]
    if not records:
        raise ValueError(f"the {o.split} split has no questions")
    if o.judge is not None:
        check_judge_records(o.judge, records)
    return EvaluationPlan(o, console, names, small_lms, files, question_major, out, device, records)


def require_supporting_facts(records: Sequence[QARecord], split: str) -> None:
    """The oracle row needs every question's supporting facts."""
    lacking = [r.id for r in records if not gold_rationale(r)]
    if lacking:
        raise InputError(
            f"oracle: {len(lacking)} of the {len(records)} {split} questions have no supporting "
            f"facts to write the oracle rationale from (first ids: {', '.join(lacking[:5])}); "
            "set oracle: false for a split without them"
        )


def _question_major(question_major: bool | None, llm: LLMConfig) -> bool:
    """``None``: on for a managed server with a cache; on needs the cache the rows read."""
    if question_major is None:
        question_major = llm.server is not None and llm.cache_path is not None
    if question_major and llm.cache_path is None:
        raise ConfigurationError(
            "evaluate.question_major: true needs llm.cache_path (rows read the pass's replies)"
        )
    return question_major


def _row_names(row_names: dict[str, str] | None) -> dict[str, str]:
    names = {"standard": STANDARD, "cot": COT, "oracle": ORACLE}
    unknown = sorted(set(row_names or {}) - set(names))
    if unknown:
        raise ConfigurationError(f"evaluate.row_names: unknown rows {unknown}; use {sorted(names)}")
    return {**names, **(row_names or {})}


def _check_names(names: Sequence[str]) -> None:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"setting names must be unique; repeated: {duplicates}")
    if not names:
        raise ConfigurationError("nothing to evaluate: enable standard, cot or add small_lms")


def _check_comparisons(
    names: Sequence[str], baseline: str | None, comparisons: Sequence[Sequence[str]] | None
) -> None:
    """Refuse a baseline or comparison naming no row, before the rows are run."""
    if baseline is not None and baseline not in names:
        raise ConfigurationError(
            f"evaluate.baseline {baseline!r} is none of the settings {sorted(set(names))}"
        )
    for pair in comparisons or []:
        if len(pair) != 2 or any(name not in names for name in pair):
            raise ConfigurationError(
                f"evaluate.comparisons {list(pair)}: expected two of the settings "
                f"{sorted(set(names))}"
            )
