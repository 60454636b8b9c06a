"""``lmcot evaluate`` (the paper's comparison) and ``lmcot judge-check`` (does the judge tell
gold sentences from a decoy)."""

from __future__ import annotations


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
