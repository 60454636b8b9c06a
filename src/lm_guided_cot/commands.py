"""The project's own ``lmcot`` verbs (those that are not Trainer methods), one function each."""

from __future__ import annotations

import json
from collections.abc import Callable

from jsonargparse import auto_cli

from lm_guided_cot.data.readers import default_source_for, read_split
from lm_guided_cot.metrics import GoldExample, read_prediction_file, score_predictions


def score_file(
    predictions: str,
    gold: str,
    source: str | None = None,
    aliases: str | None = None,
    split: str = "validation",
) -> dict[str, float]:
    """Score an official-format prediction file against a gold split, by the official rules.

    Args:
        predictions: JSON file ``{"answer": {id: str}, "sp": {id: [[title, sent_id]]}}``.
        gold: the gold split: a file, a dataset folder or a hub id.
        source: ``hotpotqa`` or ``2wikimultihopqa``; guessed from the gold path when absent.
        aliases: 2Wiki ``id_aliases.json``, to accept answer aliases.
        split: split to read when ``gold`` is a folder or hub id.
    """
    records = read_split(
        gold, source or default_source_for(gold), split=split, aliases_path=aliases
    )
    examples = (
        GoldExample(
            row["id"],
            [row["answer"], *row["answer_aliases"]],
            [(f["title"], f["sent_id"]) for f in row["supporting_facts"]],
        )
        for row in records.dataset
    )
    return score_predictions(read_prediction_file(predictions), examples)


def score(argv: list[str]) -> None:
    """Score an official-format prediction file."""
    result = auto_cli(score_file, args=argv, prog="lmcot score")
    print(json.dumps(result, indent=2))


COMMANDS: dict[str, Callable[[list[str]], None]] = {"score": score}
