"""``lmcot evaluate``: the paper's settings side by side on one split, with one large LM.

README.md, "Evaluation: the paper's comparison", is the manual (settings, files written,
resuming from the reply cache). The steps are modules of their own: ``check`` (every option,
before any work), ``run`` (the rows), ``compare`` (the paired bootstrap, the figures'
intervals) and ``write`` (files and tables).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lm_guided_cot.datamodules import MultiHopQADataModule
from lm_guided_cot.evaluation.check import EvaluationOptions, check_evaluation
from lm_guided_cot.evaluation.compare import compare
from lm_guided_cot.evaluation.results import SettingResult
from lm_guided_cot.evaluation.run import run_rows
from lm_guided_cot.evaluation.settings import RationaleFileSetting, SmallLMSetting
from lm_guided_cot.evaluation.table import Comparison
from lm_guided_cot.evaluation.write import official_scores, print_report, write_outputs
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.roles import JudgeConfig, ReaderConfig, TeacherConfig

__all__ = ["EvaluationReport", "evaluate", "official_scores"]


@dataclass
class EvaluationReport:
    """What ``evaluate`` returns: the rows, the paired comparisons and the files written."""

    results: list[SettingResult]
    comparisons: list[Comparison]
    files: dict[str, Path] = field(default_factory=dict)

    def result(self, name: str) -> SettingResult:
        return next(r for r in self.results if r.name == name)


def evaluate(
    data: MultiHopQADataModule,
    llm: LLMConfig,
    small_lms: list[SmallLMSetting] | None = None,
    standard: bool = True,
    cot: bool = True,
    oracle: bool = False,
    rationale_files: list[RationaleFileSetting] | None = None,
    row_names: dict[str, str] | None = None,
    question_major: bool | None = None,
    reader: ReaderConfig = ReaderConfig(),  # noqa: B008 (a plain dataclass, never mutated)
    cot_prompt: TeacherConfig = TeacherConfig(),  # noqa: B008
    judge: JudgeConfig | None = JudgeConfig(),  # noqa: B008
    judge_llm: LLMConfig | None = None,
    split: Literal["validation", "test"] = "test",
    baseline: str | None = None,
    comparisons: list[list[str]] | None = None,
    bootstrap_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    device: str = "auto",
    output_dir: str = "runs/evaluation",
    num_logged_examples: int = 8,
    quiet: bool = False,
) -> EvaluationReport:
    """Compare standard prompting, CoT prompting and LM-guided settings on one split.

    Args:
        data: the benchmark's DataModule (e.g. ``-c configs/hotpotqa/data.yaml``); its
            ``max_eval_examples`` caps the questions, its prompt settings write the small
            LMs' inputs. Its tokenizer is set per small LM.
        llm: the large LM, the same for every setting (e.g. ``--llm configs/llm/openai.yaml``).
        small_lms: the LM-guided settings, each a named small-LM checkpoint (KD, KD+RL, ...);
            one with ``samples > 1`` is self-consistency.
        standard: include standard prompting (the large LM answers alone).
        cot: include CoT prompting (the large LM writes its own rationale).
        oracle: include the oracle row: the gold supporting sentences as the rationale, this
            reader's ceiling for any guide (the split needs supporting facts).
        rationale_files: rows whose rationales are read from files (``name``, ``path``): other
            guides, ablations, a teacher's rationales.
        row_names: names of the built-in rows, keys ``standard``, ``cot``, ``oracle``.
        question_major: first send every row's reader requests in one pass, question by
            question, then build the rows from the cache: a llama.cpp server processes each
            question's context once for all rows (its KV cache) instead of once per row. The
            rows' calls then show as cached; the pass's own calls, tokens and seconds are
            reported apart. ``None``: on when the large LM is a managed server (``llm.server``)
            with a cache. Needs ``llm.cache_path``.
        reader: how the large LM is asked to answer, with or without a rationale.
        cot_prompt: how the large LM is asked for its own rationale (few-shot with
            ``demonstrations``).
        judge: how the judge scores each rationale, on which aspects (``protocol``,
            ``context``, ...; ``null``: no aspect scores). Each aspect's mean per row is in
            the judge table of ``results.md`` and ``judge.csv``.
        judge_llm: the judge's LLM (default: ``llm``).
        split: the split to evaluate.
        baseline: the setting every other one is compared with (default: the first row).
        comparisons: explicit ``[setting, baseline]`` pairs instead of all-vs-``baseline``.
        bootstrap_resamples: resamples of the paired bootstrap (at least 1).
        confidence: level of the bootstrap intervals, in (0, 1).
        seed: seed of the small LMs' sampling and of the bootstrap.
        device: where the small LMs run: ``auto`` (CUDA when present), ``cpu``, ``cuda:0``...
        output_dir: where tables, per-example files, predictions and TensorBoard logs go.
        num_logged_examples: examples per setting in the TensorBoard text tab (at least 0).
        quiet: do not print progress and tables.
    """
    # The arguments as one value, first thing (locals() holds nothing else yet); a parameter
    # added above and not to EvaluationOptions fails here on the first call.
    options = EvaluationOptions(**locals())
    plan = check_evaluation(options)  # before a model is loaded or a question asked
    rows = run_rows(plan)
    compared, figures = compare(plan, rows.results)
    report = EvaluationReport(rows.results, compared)
    report.files = write_outputs(plan, rows, compared, figures)
    print_report(plan, report.results, compared, report.files)
    return report
