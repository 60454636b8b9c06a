"""The paper's evaluation settings, each a function from questions to ``ExampleResult``s.

- standard prompting: the large LM answers from question + context;
- CoT prompting: the large LM writes its own rationale, then its answer (one call);
- LM-guided: a small-LM checkpoint writes the rationale, the large LM answers with it;
- self-consistency: k sampled small-LM rationales, one answer each, majority vote;
- oracle: the gold supporting sentences as the rationale (this reader's ceiling for a guide);
- rationale file: rationales read from a file (other guides, ablations).

All large-LM calls go through the roles of ``lm_guided_cot.roles`` (one client, cached,
counted); the small LM runs here, in this process, on the configured device.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lm_guided_cot.data.errors import DataFormatError
from lm_guided_cot.data.json_stream import iter_json_records
from lm_guided_cot.data.records import QARecord
from lm_guided_cot.datamodules import MultiHopQADataModule
from lm_guided_cot.errors import ConfigurationError, check_at_least
from lm_guided_cot.evaluation.results import ExampleResult
from lm_guided_cot.evaluation.voting import majority_vote
from lm_guided_cot.hparams import as_dataclass
from lm_guided_cot.llm.progress import BatchProgress
from lm_guided_cot.paths import expand_path
from lm_guided_cot.policy import GenerationConfig, SmallLM
from lm_guided_cot.roles import Judge, JudgeOutput, Reader, Teacher


@dataclass
class SmallLMSetting:
    """A setting in which a small LM writes the rationales the large LM answers with.

    Args:
        name: the row's name in the table, e.g. ``LM-guided (KD)``.
        model: the small LM: the folder ``lmcot fit`` exports (``<log dir>/export``), a hub id,
            ``folder#file.gguf`` or ``smollm2``.
        generation: how it writes rationales (greedy by default, as in the LM-guided rows).
        samples: rationales per question (k, at least 1). Above 1 this is self-consistency:
            the large LM answers with each, and the answer most of them agree on (after the
            official normalisation; ties to the first) is final. Needs
            ``generation.do_sample: true``.
        batch_size: questions per generation batch (at least 1).
    """

    name: str
    model: str
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    samples: int = 1
    batch_size: int = 8

    def __post_init__(self) -> None:
        self.generation = as_dataclass(GenerationConfig, self.generation)
        where = f"SmallLMSetting({self.name!r})"  # the settings are a list: name the one
        check_at_least(f"{where}.samples", self.samples, 1)
        check_at_least(f"{where}.batch_size", self.batch_size, 1)
        if self.samples > 1 and not self.generation.do_sample:
            raise ConfigurationError(
                f"{where}: {self.samples} samples per question need "
                "generation.do_sample: true (greedy decoding would repeat one rationale)"
            )


@dataclass
class RationaleFileSetting:
    """A setting whose rationales come from a file: another guide's output, an ablation.

    Args:
        name: the row's name in the table.
        path: ``.json`` holding ``{id: rationale}`` (or ``{id: [rationales]}``), or ``.jsonl``
            with one ``{"id", "rationale"}`` (or ``"rationales"``) object a line; lines of one
            id add up (an evaluation's ``examples/<setting>.jsonl`` and a teacher's
            ``<split>.jsonl`` both read). Every evaluated question needs one; several per
            question are voted on, as in self-consistency. Lines with an ``error`` (a
            teacher's failed calls) are left out.
    """

    name: str
    path: str


def read_rationale_file(path: str | Path, records: Sequence[QARecord]) -> list[list[str]]:
    """The rationales of ``path`` for each of ``records``, in their order (see
    ``RationaleFileSetting``); a record the file lacks is an error naming the file and ids."""
    source = expand_path(str(path))
    by_id: dict[str, list[str]] = {}

    def add(rid: object, value: object, record: int | None, field: str, line: int | None) -> None:
        texts = value if isinstance(value, list) else [value]
        if not all(isinstance(t, str) for t in texts):
            raise DataFormatError(
                source, record, field, "a rationale must be a string or a list of strings", line
            )
        by_id.setdefault(str(rid), []).extend(texts)

    if not Path(source).is_file():
        raise DataFormatError(source, None, None, "cannot read it (no such file)")
    if source.endswith(".json"):
        try:
            content = json.loads(Path(source).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise DataFormatError(source, None, None, f"not valid JSON ({error})") from None
        if not isinstance(content, dict):
            raise DataFormatError(source, None, None, "expected an object of id -> rationale")
        for rid, value in content.items():
            add(rid, value, None, str(rid), None)
    else:
        for index, number, row in iter_json_records(source):
            if not isinstance(row, dict):
                raise DataFormatError(source, index, None, "expected a JSON object", number)
            key = "rationales" if "rationales" in row else "rationale"
            for needed in ("id", key):
                if needed not in row:
                    raise DataFormatError(source, index, needed, "missing", number)
            if row.get("error"):  # a teacher's failed call: no rationale was written
                continue
            add(row["id"], row[key], index, key, number)
    missing = [r.id for r in records if not by_id.get(r.id)]
    if missing:
        raise DataFormatError(
            source,
            None,
            None,
            f"no rationale for {len(missing)} of the {len(records)} evaluated questions "
            f"(first ids: {', '.join(missing[:5])})",
        )
    return [by_id[r.id] for r in records]


def gold_rationale(record: QARecord) -> str:
    """The oracle guide's rationale: the record's gold supporting sentences."""
    return record.gold_rationale


def _errors(*errors: str | None) -> list[str]:
    return [e for e in errors if e]


def standard_prompting(records: Sequence[QARecord], reader: Reader) -> list[ExampleResult]:
    """The large LM answers from question + context alone."""
    outputs = reader.answer(records)
    return [
        ExampleResult.scored(r, o.answer, errors=_errors(o.error))
        for r, o in zip(records, outputs, strict=True)
    ]


def cot_prompting(records: Sequence[QARecord], teacher: Teacher) -> list[ExampleResult]:
    """The large LM writes its own rationale and answer in one reply (the teacher's prompt)."""
    outputs = [group[0] for group in teacher.explain(records)]
    return [
        ExampleResult.scored(
            r, o.answer, rationales=[o.rationale], answers=[o.answer], errors=_errors(o.error)
        )
        for r, o in zip(records, outputs, strict=True)
    ]


def lm_guided(
    records: Sequence[QARecord], rationales: Sequence[Sequence[str]], reader: Reader
) -> list[ExampleResult]:
    """The large LM answers each question once per rationale; with several, the majority
    of the normalised answers is final (``majority_vote``)."""
    flat_records = [r for r, group in zip(records, rationales, strict=True) for _ in group]
    flat_rationales = [x for group in rationales for x in group]
    outputs = iter(reader.answer(flat_records, flat_rationales))
    results = []
    for record, group in zip(records, rationales):
        answers = [next(outputs) for _ in group]
        vote = majority_vote([o.answer for o in answers])
        results.append(
            ExampleResult.scored(
                record,
                vote.answer,
                rationales=list(group),
                answers=[o.answer for o in answers],
                votes=vote.votes if len(group) > 1 else None,
                errors=_errors(*(o.error for o in answers)),
            )
        )
    return results


def judge_rationales(
    records: Sequence[QARecord], results: Sequence[ExampleResult], judge: Judge
) -> list[JudgeOutput]:
    """Fill in each result's aspect scores: the judge's means over its rationales. Returns
    the judge's outputs, one per rationale."""
    pairs = [(r, x) for r, res in zip(records, results, strict=True) for x in res.rationales]
    if not pairs:
        return []
    outputs = judge.score([r for r, _ in pairs], [x for _, x in pairs])
    scores = iter(outputs)
    for result in results:
        judged = [next(scores) for _ in result.rationales]
        if judged:
            result.aspects = {
                name: sum(j.scores[name] for j in judged) / len(judged) for name in judged[0].scores
            }
            result.judge_unparsed = sum(not j.parsed for j in judged)
            result.errors += _errors(*(j.error for j in judged))
    return outputs


@torch.no_grad()
def generate_rationales(
    setting: SmallLMSetting,
    data: MultiHopQADataModule,
    split: str,
    device: torch.device,
    seed: int = 0,
    show_progress: bool = True,
) -> list[list[str]]:
    """``setting.samples`` rationales per question of ``split``, in the split's order.

    Prompts are written and trimmed with the setting's own tokenizer (the data's prompt
    settings), so each checkpoint sees the input it was trained on.
    """
    prompts = data.with_tokenizer(setting.model)
    n = len(prompts.records(split))
    policy = SmallLM.from_pretrained(setting.model).to(device).eval()
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)  # sampled settings are reproducible and independent of order
    rationales: list[list[str]] = [[] for _ in range(n)]
    batches = prompts.eval_dataloader(split, batch_size=setting.batch_size)
    progress = (
        BatchProgress(f"{setting.name}: small LM writes rationales", len(batches))
        if show_progress
        else None
    )
    try:
        for batch in batches:
            k = setting.samples
            labels = policy.generate(
                batch["input_ids"].repeat_interleave(k, 0).to(device),
                batch["attention_mask"].repeat_interleave(k, 0).to(device),
                setting.generation,
            )
            texts = policy.decode(labels)
            for index, text in zip(batch["index"].repeat_interleave(k).tolist(), texts):
                rationales[index].append(text)
            if progress is not None:
                progress.advance()
    finally:
        if progress is not None:
            progress.close()  # a live bar left running would keep drawing over the error
        torch.set_rng_state(generator_state)
        del policy
    return rationales
