"""Score an official-format prediction file against a gold split: ``lmcot score``.

A gold file is read through record by record into what the scorers need, so scoring loads
neither torch nor ``datasets``; a gold folder or hub id goes through ``read_split`` (and so
``datasets``), as only ``load_dataset`` reads those. It lives here rather than in ``metrics``
because reading gold records is this package's job, and ``metrics`` sits below it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lm_guided_cot.data.readers import default_source_for, iter_file_rows, read_split
from lm_guided_cot.data.records import QARecord
from lm_guided_cot.metrics.official import official_report, read_prediction_file
from lm_guided_cot.metrics.scores import GoldExample


def score_prediction_file(
    predictions: str,
    gold: str,
    source: str | None = None,
    aliases: str | None = None,
    split: str = "validation",
    percent: bool = False,
) -> dict[str, Any]:
    """Score an official-format prediction file against a gold split, by the official rules.

    Args:
        predictions: JSON file ``{"answer": {id: str}, "sp": {id: [[title, sent_id]]}}``, and
            for 2Wiki ``"evidence": {id: [[subject, relation, object]]}``.
        gold: the gold split: a file, a dataset folder or a hub id.
        source: ``hotpotqa`` or ``2wikimultihopqa``; guessed from the gold path when absent.
        aliases: 2Wiki ``id_aliases.json``, to accept answer and evidence aliases.
        split: split to read when ``gold`` is a folder or hub id.
        percent: print each mean as 2Wiki's official script does, ``round(100 * mean, 2)``.

    Returns the metrics under the official keys, then ``absent`` (sections the file lacks),
    ``missing`` and ``missing_ids`` (per section, how many gold ids it lacks, and the first),
    ``unknown`` and ``unknown_ids`` (per section, how many of its ids are not gold ids, and the
    first) and ``malformed`` (entries scored as the official script scores them, each named by
    file, id and entry) where there are any. A file that predicts no gold id at all raises
    ``PredictionFormatError``, as does a file that cannot be read or is not the official layout.
    """
    benchmark = source or default_source_for(gold)
    predicted = read_prediction_file(predictions)  # a bad file fails before the gold is read
    examples, origin = read_gold_examples(gold, benchmark, aliases, split)
    report = official_report(predicted, examples, benchmark, predictions, origin)
    return report.as_dict(percent=percent)


def read_gold_examples(
    gold: str | Path, source: str, aliases: str | Path | None = None, split: str = "validation"
) -> tuple[list[GoldExample], str]:
    """Every gold record of a split as the official scorers need it, and the split's name
    for messages; checked as ``read_split`` checks it, with the same errors.

    The whole split is read before any scoring, so a bad gold record is reported before a
    bad prediction, as when the split is read by ``read_split``.
    """
    local = Path(gold).expanduser()
    if local.is_file():
        rows: Any = iter_file_rows(local, source, aliases)
        origin = str(local)
    else:
        records = read_split(gold, source, split=split, aliases_path=aliases)
        rows, origin = records.dataset, records.origin
    return [QARecord.from_row(row).gold_example() for row in rows], origin
