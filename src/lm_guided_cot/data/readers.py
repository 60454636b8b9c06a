"""Readers for HotpotQA and 2WikiMultiHopQA: local files or a Hugging Face dataset, to Arrow.

``read_split`` is the one entry point. A local file (JSON lines or a JSON list, in the
official or the Hugging Face layout) is streamed record by record into an Arrow file in the
``datasets`` cache, memory-mapped from then on, and re-used while the file is unchanged.
Anything else (a folder, a hub id such as ``hotpotqa/hotpot_qa``) goes to
``datasets.load_dataset`` and is converted with ``Dataset.map``. Either way every record is
checked, and ids must be unique within a split (records are matched by id); a bad record
raises ``DataFormatError`` naming file, record and field (a repeated id: both records),
unless ``skip_invalid`` is set, in which case it is left out, counted and reported. A bad file (no
such path, no records, not UTF-8, cut off, a folder without data files) raises
``DataFormatError`` naming it too; a path that does not exist here goes to the hub only when
it could be a hub id (``name`` or ``owner/name``, no data-file suffix).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lm_guided_cot.data.errors import DataFormatError
from lm_guided_cot.data.json_stream import iter_json_records
from lm_guided_cot.data.records import HOTPOTQA, SOURCES, TWOWIKI, arrow_features
from lm_guided_cot.data.schema import record_to_row
from lm_guided_cot.errors import ConfigurationError

if TYPE_CHECKING:  # imported where a dataset is built: reading a file through needs none
    import datasets

log = logging.getLogger(__name__)

# Bump when the row layout or the checks change, so cached Arrow files are rebuilt.
_SCHEMA_VERSION = 4  # 4: ids unique within a file
_ERROR = "_error"


@functools.cache
def _features(skip_invalid: bool) -> datasets.Features:
    """The rows' schema; with ``skip_invalid`` an ``_error`` column names each bad record."""
    import datasets

    if not skip_invalid:
        return arrow_features()
    return datasets.Features({**arrow_features(), _ERROR: datasets.Value("string")})


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
    aliases = _checked_source_and_aliases(source, aliases_path)
    local = Path(path).expanduser()
    if local.is_file():
        dataset = _read_file(local, source, skip_invalid, aliases, cache_dir)
        origin = str(local)
    elif local.exists() or _may_be_hub_id(str(path)):
        origin = str(local) if local.exists() else str(path)
        dataset = _read_hub(origin, source, split, hub_config, skip_invalid, aliases, cache_dir)
        dataset = _check_unique_ids(dataset, f"{origin}[{split}]", skip_invalid)
    else:
        raise DataFormatError(str(path), None, None, "no such file or folder")
    skipped: list[str] = []
    if skip_invalid:
        errors = dataset[_ERROR]
        skipped = [e for e in errors if e]
        if skipped and len(skipped) == len(errors):
            raise DataFormatError(
                origin,
                None,
                None,
                f"all {len(errors)} records are invalid, none is left to use; first: {skipped[0]}",
            )
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


def iter_file_rows(
    path: str | Path, source: str, aliases_path: str | Path | None = None
) -> Iterator[dict[str, Any]]:
    """The rows ``read_split`` stores for a local file, one by one, without ``datasets``: for
    a caller that reads a file through once (scoring a prediction file against it).

    Checks as ``read_split`` does and raises the same errors, the first bad record's when
    that record is reached.
    """
    aliases = _checked_source_and_aliases(source, aliases_path)
    local = Path(path).expanduser()
    if not local.is_file():
        raise DataFormatError(str(path), None, None, "no such file")
    yield from _rows_from_file(str(local.resolve()), source, False, aliases, None)


def _checked_source_and_aliases(
    source: str, aliases_path: str | Path | None
) -> dict[str, list[str]] | None:
    if source not in SOURCES:
        raise ConfigurationError(f"unknown source {source!r}; expected one of {SOURCES}")
    return _read_aliases(aliases_path) if aliases_path else None


def _read_file(
    path: Path,
    source: str,
    skip_invalid: bool,
    aliases: dict[str, list[str]] | None,
    cache_dir: str | None,
) -> datasets.Dataset:
    import datasets

    stat = path.stat()
    try:
        return datasets.Dataset.from_generator(
            _rows_from_file,
            features=_features(skip_invalid),
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
    index = -1
    first_seen: dict[str, tuple[int, int | None]] = {}  # id -> (record, line) it first came in
    for index, line, raw in iter_json_records(path):
        try:
            row = record_to_row(raw, source, path, index, line, aliases)
            _check_new_id(row["id"], first_seen, path, index, line)
        except DataFormatError as err:
            if not skip_invalid:
                raise
            yield _error_row(str(err))
            continue
        if skip_invalid:
            row[_ERROR] = ""
        yield row
    if index < 0:
        raise DataFormatError(path, None, None, f"no records: {_why_empty(Path(path))}")


def _check_new_id(
    rid: str,
    first_seen: dict[str, tuple[int, int | None]],
    origin: str,
    index: int,
    line: int | None,
) -> None:
    """Refuse an id seen before in the split: records are matched by id (stage-1 targets to
    prompts, predictions to gold), so a repeat would pair one question's data with another's."""
    if rid not in first_seen:
        first_seen[rid] = (index, line)
        return
    first, first_line = first_seen[rid]
    where = f"record {first}" + (f" (line {first_line})" if first_line is not None else "")
    raise DataFormatError(
        origin,
        index,
        "id",
        f"duplicate id {rid!r}: {where} has it too; ids must be unique within a split",
        line,
    )


def _check_unique_ids(
    dataset: datasets.Dataset, origin: str, skip_invalid: bool
) -> datasets.Dataset:
    """``_check_new_id`` over a dataset read by ``load_dataset`` (no lines: record numbers);
    with ``skip_invalid`` a repeat becomes an invalid row, as a bad record does."""
    first_seen: dict[str, tuple[int, int | None]] = {}
    errors = list(dataset[_ERROR]) if skip_invalid else None
    for index, rid in enumerate(dataset["id"]):
        if errors is not None and errors[index]:
            continue
        try:
            _check_new_id(rid, first_seen, origin, index, None)
        except DataFormatError as err:
            if errors is None:
                raise
            errors[index] = str(err)
    if errors is None or errors == dataset[_ERROR]:
        return dataset
    return dataset.remove_columns(_ERROR).add_column(_ERROR, errors)


def _why_empty(path: Path) -> str:
    """What an input without records holds: nothing, white space, or an empty JSON list."""
    if path.stat().st_size == 0:
        return "the file is empty"
    with path.open(encoding="utf-8-sig") as handle:
        while chunk := handle.read(1 << 16):
            if chunk.strip():
                return "the file is an empty JSON list"
    return "the file holds only white space"


_DATA_SUFFIXES = (".json", ".jsonl", ".gz", ".parquet", ".csv", ".arrow", ".txt")


def _may_be_hub_id(name: str) -> bool:
    """Whether a path that does not exist here could name a hub dataset (``name``,
    ``owner/name``) rather than a local file: then the hub is asked."""
    parts = name.split("/")
    return (
        len(parts) <= 2
        and all(part and not part.startswith((".", "~")) for part in parts)
        and not name.lower().endswith(_DATA_SUFFIXES)
    )


def _read_hub(
    name: str,
    source: str,
    split: str,
    hub_config: str | None,
    skip_invalid: bool,
    aliases: dict[str, list[str]] | None,
    cache_dir: str | None,
) -> datasets.Dataset:
    import datasets

    origin = f"{name}[{split}]"
    try:
        raw = datasets.load_dataset(name, hub_config, split=split, cache_dir=cache_dir)
    except DataFormatError:
        raise
    except (ValueError, OSError, StopIteration, datasets.exceptions.DatasetsError) as err:
        raise _hub_error(name, split, hub_config, cache_dir, err) from None

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
        return {k: [r[k] for r in rows] for k in _features(skip_invalid)}

    return raw.map(
        convert,
        batched=True,
        with_indices=True,
        remove_columns=raw.column_names,
        features=_features(skip_invalid),
        desc=f"checking {origin}",
    )


def _hub_error(
    name: str, split: str, hub_config: str | None, cache_dir: str | None, err: BaseException
) -> DataFormatError:
    """The error for a folder or hub dataset ``load_dataset`` cannot read, naming it (and,
    in a local folder of JSON files, the file and line where the trouble is)."""
    import datasets

    cause = err.__cause__ or err.__context__
    detail = str(err) or type(err).__name__
    if isinstance(err, datasets.exceptions.DatasetGenerationError) and cause is not None:
        detail = f"{detail}: {cause}"
    folder = Path(name)
    if not folder.is_dir():
        return DataFormatError(
            name,
            None,
            None,
            f"no such file or folder, and no hub dataset of that name can be loaded ({detail})",
        )
    for file in _split_files(folder, split, hub_config, cache_dir):
        try:
            _check_json_file(file)
        except DataFormatError as found:
            return found
    if isinstance(
        err, (datasets.data_files.EmptyDatasetError, datasets.exceptions.DataFilesNotFoundError)
    ):
        detail = (
            "a folder without data files; name a .json or .jsonl file, or a dataset folder "
            "(train.jsonl, validation.jsonl, ...)"
        )
    return DataFormatError(
        f"{name}[{split}]", None, None, f"cannot be read as a dataset folder ({detail})"
    )


def _split_files(
    folder: Path, split: str, hub_config: str | None, cache_dir: str | None
) -> list[Path]:
    """The JSON data files ``load_dataset`` takes a folder's ``split`` from (none if unknown)."""
    import datasets

    try:
        builder = datasets.load_dataset_builder(str(folder), hub_config, cache_dir=cache_dir)
        files = (builder.config.data_files or {}).get(split, [])
    except Exception:  # only a search for a better message
        return []
    return [Path(f) for f in files if str(f).endswith((".json", ".jsonl"))]


def _check_json_file(path: Path) -> None:
    """Read a JSON or JSON-lines file through: ``DataFormatError`` where it is bad or empty."""
    count = sum(1 for _ in iter_json_records(path))
    if count == 0:
        raise DataFormatError(str(path), None, None, f"no records: {_why_empty(path)}")


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
