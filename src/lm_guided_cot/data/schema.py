"""Turn one raw HotpotQA or 2WikiMultiHopQA record into a checked row of ``FEATURES``.

Both benchmarks circulate in two layouts, and a reader accepts either for any source:

- official (HotpotQA's ``hotpot_dev_distractor_v1.json``, 2Wiki's ``dev.json``):
  ``_id``, ``context: [[title, [sentences]]]``, ``supporting_facts: [[title, sent_id]]``;
- Hugging Face (``hotpot_qa``): ``id``, ``context: {title: [...], sentences: [[...]]}``,
  ``supporting_facts: {title: [...], sent_id: [...]}``.

Every problem raises ``DataFormatError`` naming the record and the field.
"""

from __future__ import annotations

from typing import Any

from lm_guided_cot.data.errors import DataFormatError
from lm_guided_cot.data.records import SOURCES
from lm_guided_cot.errors import ConfigurationError


class _Checker:
    """Raises ``DataFormatError`` located at one record."""

    def __init__(self, origin: str, index: int | None, line: int | None) -> None:
        self.origin, self.index, self.line = origin, index, line

    def fail(self, field: str | None, problem: str) -> DataFormatError:
        return DataFormatError(self.origin, self.index, field, problem, self.line)

    def string(self, value: Any, field: str, *, allow_empty: bool = True) -> str:
        if not isinstance(value, str):
            raise self.fail(field, f"expected a string, found {_kind(value)}")
        if not allow_empty and not value.strip():
            raise self.fail(field, "is empty")
        return value

    def integer(self, value: Any, field: str, *, maximum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"expected an integer, found {_kind(value)}")
        if value < 0:
            raise self.fail(field, f"expected a non-negative integer, found {value}")
        if maximum is not None and value > maximum:
            raise self.fail(field, f"expected an integer up to {maximum}, found {value}")
        return value

    def listing(self, value: Any, field: str) -> list:
        if not isinstance(value, list):
            raise self.fail(field, f"expected a list, found {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _first_present(raw: dict, keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        if key in raw:
            return key, raw[key]
    return None, None


def record_to_row(
    raw: Any,
    source: str,
    origin: str,
    index: int | None,
    line: int | None = None,
    aliases: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Check one raw record and return its row in the ``FEATURES`` schema.

    ``origin`` names the file or dataset for error messages; ``aliases`` maps a 2Wiki
    ``answer_id`` to extra gold answers (from the official ``id_aliases.json``).
    """
    if source not in SOURCES:
        raise ConfigurationError(f"unknown source {source!r}; expected one of {SOURCES}")
    check = _Checker(origin, index, line)
    if not isinstance(raw, dict):
        raise check.fail(None, f"expected a JSON object, found {_kind(raw)}")

    id_key, rid = _first_present(raw, ("id", "_id"))
    if id_key is None:
        raise check.fail("id", "missing (expected 'id' or '_id')")
    rid = check.string(rid, id_key, allow_empty=False)
    if "question" not in raw:
        raise check.fail("question", "missing")
    question = check.string(raw["question"], "question", allow_empty=False)
    if "answer" not in raw:
        raise check.fail("answer", "missing")
    answer = check.string(raw["answer"], "answer")

    paragraphs = _paragraphs(raw, check)
    titles = {p["title"] for p in paragraphs}
    supporting = _supporting_facts(raw, check, titles)

    alias_list: list[str] = []
    alias_key, alias_value = _first_present(raw, ("answer_aliases", "aliases"))
    if alias_key is not None and alias_value is not None:
        for i, alias in enumerate(check.listing(alias_value, alias_key)):
            alias_list.append(check.string(alias, f"{alias_key}[{i}]"))
    if aliases and isinstance(raw.get("answer_id"), str):
        alias_list.extend(aliases.get(raw["answer_id"], ()))

    evidences = _evidences(raw, check, aliases)
    row_type = raw.get("type") or ""
    level = raw.get("level") or ""
    return {
        "id": rid,
        "question": question,
        "answer": answer,
        "answer_aliases": list(dict.fromkeys(a for a in alias_list if a != answer)),
        "paragraphs": paragraphs,
        "supporting_facts": supporting,
        "type": check.string(row_type, "type"),
        "level": check.string(level, "level"),
        "source": source,
        "evidences": evidences,
    }


def _paragraphs(raw: dict, check: _Checker) -> list[dict[str, Any]]:
    if "context" not in raw:
        raise check.fail("context", "missing")
    context = raw["context"]
    out: list[dict[str, Any]] = []
    if isinstance(context, dict):  # Hugging Face layout
        for key in ("title", "sentences"):
            if key not in context:
                raise check.fail(f"context.{key}", "missing")
        titles = check.listing(context["title"], "context.title")
        sentences = check.listing(context["sentences"], "context.sentences")
        if len(titles) != len(sentences):
            raise check.fail("context", f"{len(titles)} titles but {len(sentences)} sentence lists")
        for i, (title, sents) in enumerate(zip(titles, sentences)):
            out.append(
                {
                    "title": check.string(title, f"context.title[{i}]"),
                    "sentences": [
                        check.string(s, f"context.sentences[{i}][{j}]")
                        for j, s in enumerate(check.listing(sents, f"context.sentences[{i}]"))
                    ],
                }
            )
        return out
    for i, item in enumerate(check.listing(context, "context")):
        if not isinstance(item, list) or len(item) != 2:
            raise check.fail(f"context[{i}]", "expected a [title, [sentences]] pair")
        title, sents = item
        out.append(
            {
                "title": check.string(title, f"context[{i}][0]"),
                "sentences": [
                    check.string(s, f"context[{i}][1][{j}]")
                    for j, s in enumerate(check.listing(sents, f"context[{i}][1]"))
                ],
            }
        )
    return out


def _supporting_facts(raw: dict, check: _Checker, titles: set[str]) -> list[dict[str, Any]]:
    facts = raw.get("supporting_facts")
    if facts is None:
        return []
    pairs: list[tuple[str, Any, Any]] = []  # (field name, title, sent_id)
    if isinstance(facts, dict):  # Hugging Face layout
        for key in ("title", "sent_id"):
            if key not in facts:
                raise check.fail(f"supporting_facts.{key}", "missing")
        fact_titles = check.listing(facts["title"], "supporting_facts.title")
        sent_ids = check.listing(facts["sent_id"], "supporting_facts.sent_id")
        if len(fact_titles) != len(sent_ids):
            raise check.fail(
                "supporting_facts", f"{len(fact_titles)} titles but {len(sent_ids)} sentence ids"
            )
        pairs = [
            (f"supporting_facts[{i}]", t, s) for i, (t, s) in enumerate(zip(fact_titles, sent_ids))
        ]
    else:
        for i, item in enumerate(check.listing(facts, "supporting_facts")):
            if not isinstance(item, list) or len(item) != 2:
                raise check.fail(f"supporting_facts[{i}]", "expected a [title, sent_id] pair")
            pairs.append((f"supporting_facts[{i}]", item[0], item[1]))
    out = []
    for field, title, sent_id in pairs:
        title = check.string(title, f"{field}.title")
        # The Arrow schema stores it as int32: larger would fail there without naming the record.
        sent_id = check.integer(sent_id, f"{field}.sent_id", maximum=2**31 - 1)
        if title not in titles:
            raise check.fail(field, f"title {title!r} is not among the record's paragraph titles")
        # A sentence index past the paragraph's end is kept: the official HotpotQA training
        # set has a few, and the official scorer compares (title, sent_id) pairs as given.
        out.append({"title": title, "sent_id": sent_id})
    return out


def _evidences(
    raw: dict, check: _Checker, aliases: dict[str, list[str]] | None
) -> list[dict[str, Any]]:
    """2Wiki's ``evidences`` triples; with an alias file, the names ``evidences_id`` adds.

    As in ``2wikimultihop_evaluate_v1.1.py``: a non-empty ``evidences_id`` pairs with
    ``evidences`` triple by triple, its relation must be the triple's, and the aliases of its
    subject and object ids are accepted in their place.
    """
    triples = raw.get("evidences")
    if triples is None:
        return []
    out = []
    for i, item in enumerate(check.listing(triples, "evidences")):
        if not isinstance(item, list) or len(item) != 3:
            raise check.fail(f"evidences[{i}]", "expected a [subject, relation, object] triple")
        subject, relation, obj = (
            check.string(v, f"evidences[{i}][{j}]") for j, v in enumerate(item)
        )
        out.append(
            {
                "subject": subject,
                "relation": relation,
                "object": obj,
                "subject_aliases": [],
                "object_aliases": [],
            }
        )
    ids = raw.get("evidences_id")
    if not aliases or not ids:
        return out
    ids = check.listing(ids, "evidences_id")
    if len(ids) != len(out):
        raise check.fail("evidences_id", f"{len(ids)} id triples for {len(out)} evidences")
    for i, (item, evidence) in enumerate(zip(ids, out)):
        if not isinstance(item, list) or len(item) != 3:
            raise check.fail(f"evidences_id[{i}]", "expected a [subject, relation, object] triple")
        sub_id, rel_id, obj_id = item
        if rel_id != evidence["relation"]:
            raise check.fail(
                f"evidences_id[{i}][1]",
                f"relation {rel_id!r} is not the evidence's {evidence['relation']!r}",
            )
        if isinstance(sub_id, str):
            evidence["subject_aliases"] = list(aliases.get(sub_id, ()))
        if isinstance(obj_id, str):
            evidence["object_aliases"] = list(aliases.get(obj_id, ()))
    return out
