"""``lmcot score``: an official-format prediction file scored by the official rules (no torch,
Lightning or ``datasets`` import for a gold file: it starts in a fraction of a second)."""

from __future__ import annotations

import json
import sys

from jsonargparse import auto_cli

from lm_guided_cot.data.official_scoring import score_prediction_file as score_file
from lm_guided_cot.metrics.official import coverage_notes

__all__ = ["score", "score_file"]


def score(argv: list[str]) -> None:
    """Score an official-format prediction file."""
    result = auto_cli(score_file, args=argv, prog="lmcot score")
    for message in [*coverage_notes(result), *result.get("malformed", ())]:
        print(f"lmcot score: {message}", file=sys.stderr)
    print(json.dumps(result, indent=2))
