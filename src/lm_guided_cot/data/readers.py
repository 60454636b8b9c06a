"""Readers for HotpotQA and 2WikiMultiHopQA: local files or a Hugging Face dataset, to Arrow.

``read_split`` is the one entry point. A local file (JSON lines or a JSON list, in the
official or the Hugging Face layout) is streamed record by record into an Arrow file in the
``datasets`` cache, memory-mapped from then on, and re-used while the file is unchanged.
Anything else (a folder, a hub id such as ``hotpotqa/hotpot_qa``) goes to
``datasets.load_dataset`` and is converted with ``Dataset.map``. Either way every record is
checked; a bad one raises ``DataFormatError`` naming file, record and field, unless
``skip_invalid`` is set, in which case it is left out, counted and reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from lm_guided_cot.data.errors import DataFormatError
from lm_guided_cot.data.json_stream import iter_json_records
from lm_guided_cot.data.records import FEATURES, HOTPOTQA, SOURCES, TWOWIKI
from lm_guided_cot.data.schema import record_to_row

log = logging.getLogger(__name__)

# Bump when the row layout or the checks change, so cached Arrow files are rebuilt.
_SCHEMA_VERSION = 2
_ERROR = "_error"
_FEATURES_WITH_ERROR = datasets.Features({**FEATURES, _ERROR: datasets.Value("string")})


@dataclass
class ReadResult:
    """What a reader returns: the valid records and, with ``skip_invalid``, what was left out."""

    dataset: datasets.Dataset
    origin: str
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.dataset)


def read_split(
    path: str | Path,
    source: str,
    *,
    split: str = "train",
    hub_config: str | None = None,
    skip_invalid: bool = False,
    aliases_path: str | Path | None = None,
    cache_dir: str | None = None,
) -> ReadResult:
    """Read one split of a benchmark into a dataset with the ``FEATURES`` schema.

    Args:
        path: a local ``.json``/``.jsonl`` file, a local dataset folder, or a hub dataset id.
        source: ``"hotpotqa"`` or ``"2wikimultihopqa"``; stored on every row.
        split: which split to take from a folder or hub dataset (ignored for a file).
        hub_config: the dataset configuration for ``load_dataset`` (e.g. ``"distractor"``).
        skip_invalid: leave bad records out (counted, reported) instead of raising.
        aliases_path: 2Wiki's ``id_aliases.json`` (JSON lines of ``Q_id``, ``aliases``,
            ``demonyms``); its aliases join a record's gold answers through ``answer_id``, and
            its evidence triples' subjects and objects through ``evidences_id``.
        cache_dir: where ``datasets`` keeps its Arrow files (default: its own cache).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    aliases = _read_aliases(aliases_path) if aliases_path else None
    local = Path(path).expanduser()
    if local.is_file():
        dataset = _read_file(local, source, skip_invalid, aliases, cache_dir)
        origin = str(local)
    else:
        origin = str(path) if not local.exists() else str(local)
        dataset = _read_hub(origin, source, split, hub_config, skip_invalid, aliases, cache_dir)
    skipped: list[str] = []
    if skip_invalid:
        errors = dataset[_ERROR]
        skipped = [e for e in errors if e]
        if skipped:
            keep = [i for i, e in enumerate(errors) if not e]
            dataset = dataset.select(keep)
            log.warning(
                "%s: skipped %d invalid record(s) of %d; first: %s",
                origin,
                len(skipped),
                len(errors),
                skipped[0],
            )
        dataset = dataset.remove_columns(_ERROR)
    return ReadResult(dataset=dataset, origin=origin, skipped=skipped)


def _read_file(
    path: Path,
    source: str,
    skip_invalid: bool,
    aliases: dict[str, list[str]] | None,
    cache_dir: str | None,
) -> datasets.Dataset:
    stat = path.stat()
    try:
        return datasets.Dataset.from_generator(
            _rows_from_file,
            features=_FEATURES_WITH_ERROR if skip_invalid else FEATURES,
            cache_dir=cache_dir,
            # The gen_kwargs are part of the cache fingerprint: a changed file is re-read.
            gen_kwargs={
                "path": str(path.resolve()),
                "source": source,
                "skip_invalid": skip_invalid,
                "aliases": aliases,
                "signature": (stat.st_size, stat.st_mtime_ns, _SCHEMA_VERSION),
            },
        )
    except datasets.exceptions.DatasetGenerationError as err:
        cause = err.__cause__ or err.__context__
        if isinstance(cause, DataFormatError):
            raise cause from None
        raise


def _rows_from_file(path: str, source: str, skip_invalid: bool, aliases, signature):
    del signature  # only there to key the cache
    for index, line, raw in iter_json_records(path):
        try:
            row = record_to_row(raw, source, path, index, line, aliases)
        except DataFormatError as err:
            if not skip_invalid:
                raise
            yield _error_row(str(err))
            continue
        if skip_invalid:
            row[_ERROR] = ""
        yield row


def _read_hub(
    name: str,
    source: str,
    split: str,
    hub_config: str | None,
    skip_invalid: bool,
    aliases: dict[str, list[str]] | None,
    cache_dir: str | None,
) -> datasets.Dataset:
    raw = datasets.load_dataset(name, hub_config, split=split, cache_dir=cache_dir)
    origin = f"{name}[{split}]"

    def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        keys = list(batch)
        rows = []
        for offset, index in enumerate(indices):
            record = {k: _plain(batch[k][offset]) for k in keys}
            try:
                row = record_to_row(record, source, origin, index, None, aliases)
                if skip_invalid:
                    row[_ERROR] = ""
            except DataFormatError as err:
                if not skip_invalid:
                    raise
                row = _error_row(str(err))
            rows.append(row)
        return {
            k: [r[k] for r in rows] for k in (_FEATURES_WITH_ERROR if skip_invalid else FEATURES)
        }

    return raw.map(
        convert,
        batched=True,
        with_indices=True,
        remove_columns=raw.column_names,
        features=_FEATURES_WITH_ERROR if skip_invalid else FEATURES,
        desc=f"checking {origin}",
    )


def _plain(value: Any) -> Any:
    """Arrow hands nested lists back as lists already; tuples from other sources become lists."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _error_row(message: str) -> dict[str, Any]:
    return {
        "id": "",
        "question": "",
        "answer": "",
        "answer_aliases": [],
        "paragraphs": [],
        "supporting_facts": [],
        "type": "",
        "level": "",
        "source": "",
        "evidences": [],
        _ERROR: message,
    }


def _read_aliases(path: str | Path) -> dict[str, list[str]]:
    """Read 2Wiki's ``id_aliases.json``: one JSON object a line with ``Q_id``, ``aliases``, ``demonyms``."""
    out: dict[str, list[str]] = {}
    for index, line, raw in iter_json_records(path):
        if not isinstance(raw, dict) or not isinstance(raw.get("Q_id"), str):
            raise DataFormatError(str(path), index, "Q_id", "missing or not a string", line)
        names: list[str] = []
        for key in ("aliases", "demonyms"):
            values = raw.get(key) or []
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise DataFormatError(str(path), index, key, "expected a list of strings", line)
            names.extend(values)
        out[raw["Q_id"]] = names
    return out


def default_source_for(path: str | Path) -> str:
    """Guess the benchmark from a path or hub id (``2wiki`` anywhere in it means 2Wiki)."""
    return TWOWIKI if "2wiki" in str(path).lower() else HOTPOTQA
