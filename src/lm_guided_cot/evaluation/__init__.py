"""Evaluation: the paper's settings side by side, self-consistency, paired bootstrap intervals."""

from lm_guided_cot.evaluation.bootstrap import PairedDifference, paired_bootstrap
from lm_guided_cot.evaluation.results import ExampleResult, SettingResult
from lm_guided_cot.evaluation.runner import EvaluationReport, evaluate
from lm_guided_cot.evaluation.settings import SmallLMSetting
from lm_guided_cot.evaluation.voting import Vote, majority_vote

__all__ = [
    "EvaluationReport",
    "ExampleResult",
    "PairedDifference",
    "SettingResult",
    "SmallLMSetting",
    "Vote",
    "evaluate",
    "majority_vote",
    "paired_bootstrap",
]
