"""Evaluation: the paper's settings side by side, self-consistency, paired bootstrap intervals,
and the judge check (``judge_check``: does the judge rate the gold sentences above a decoy?)."""

from lm_guided_cot.evaluation.bootstrap import PairedDifference, paired_bootstrap
from lm_guided_cot.evaluation.judge_check import JudgeCheckReport, judge_check
from lm_guided_cot.evaluation.results import ExampleResult, SettingResult
from lm_guided_cot.evaluation.runner import EvaluationReport, evaluate
from lm_guided_cot.evaluation.settings import SmallLMSetting
from lm_guided_cot.evaluation.voting import Vote, majority_vote

__all__ = [
    "EvaluationReport",
    "ExampleResult",
    "JudgeCheckReport",
    "PairedDifference",
    "SettingResult",
    "SmallLMSetting",
    "Vote",
    "evaluate",
    "judge_check",
    "majority_vote",
    "paired_bootstrap",
]
