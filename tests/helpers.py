"""Builders of small input files for tests."""

from __future__ import annotations

import json
from pathlib import Path


def hotpot_record(rid: str = "q1", n_paragraphs: int = 3, **overrides) -> dict:
    """A small valid record in the Hugging Face ``hotpot_qa`` layout."""
    titles = [f"Title {i}" for i in range(n_paragraphs)]
    record = {
        "id": rid,
        "question": f"Which one is question {rid}?",
        "answer": "yes",
        "type": "comparison",
        "level": "hard",
        "supporting_facts": {"title": [titles[0], titles[-1]], "sent_id": [0, 1]},
        "context": {
            "title": titles,
            "sentences": [[f"Sentence zero of {t}.", f" Sentence one of {t}."] for t in titles],
        },
    }
    record.update(overrides)
    return record


def qa_record(rid: str = "q1", **overrides):
    """``hotpot_record`` as the typed ``QARecord`` the stages work with."""
    from lm_guided_cot.data.records import HOTPOTQA, QARecord
    from lm_guided_cot.data.schema import record_to_row

    return QARecord.from_row(record_to_row(hotpot_record(rid, **overrides), HOTPOTQA, "mem", 0))


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_json(path: Path, records) -> Path:
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


def write_rationales(
    folder: Path, split: str, rows: list[tuple[str, str]], extra_unkept: int = 0
) -> Path:
    """A teacher-rationale file as build_rationales writes it: (id, rationale) rows, all kept,
    plus ``extra_unkept`` rejected rows that must be ignored."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        {
            "id": rid,
            "sample": 0,
            "rationale": text,
            "teacher_answer": "x",
            "correct": True,
            "score": 1.0,
            "kept": True,
        }
        for rid, text in rows
    ]
    lines += [
        {
            "id": rows[0][0],
            "sample": k + 1,
            "rationale": "WRONG",
            "teacher_answer": "y",
            "correct": False,
            "score": 0.0,
            "kept": False,
        }
        for k in range(extra_unkept)
    ]
    path = folder / f"{split}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def synthetic_rationale(record) -> str:
    """A rationale a small model can learn from the prompt: the gold titles, then the answer."""
    titles = " and ".join(record.gold_titles[:2])
    return f"See {titles}. Answer: {record.answer}"


class VowelShareReward:
    """A deterministic scripted reward a tiny model can learn quickly: the share of vowels in
    the rationale. (Rewards that need the right answer are too sparse for a tiny model to
    find within a test's budget; the answer rewards are tested on their own.)"""

    name = "vowels"

    def __call__(self, records, rationales):
        import torch

        from lm_guided_cot.rewards.base import RewardOutput

        share = torch.tensor([sum(c in "aeiou" for c in t) / max(len(t), 1) for t in rationales])
        return RewardOutput(share, {self.name: share})

    def usage(self):
        return {}


def fake_llm_config(server, tmp_path: Path, **overrides):
    """An LLMConfig for the fake server: short timeouts and backoff, a cache in tmp_path."""
    from lm_guided_cot.llm.config import LLMConfig

    values = dict(
        model="openai/fake-model",
        api_base=server.base_url,
        cache_path=str(tmp_path / "cache.sqlite"),
        timeout=2.0,
        backoff_base=0.01,
        backoff_max=0.02,
    )
    values.update(overrides)
    return LLMConfig(**values)


def write_policy_checkpoint(model_dir: Path, path: Path) -> Path:
    """A checkpoint as ``lmcot fit`` saves one, holding the weights of the model in
    ``model_dir`` as its policy (stage 1, step 3), for ``lmcot export``."""
    import torch

    from lm_guided_cot.policy import SmallLM

    weights = SmallLM.from_pretrained(str(model_dir)).state_dict()
    checkpoint = {
        "state_dict": {f"policy.{key}": value for key, value in weights.items()},
        "hyper_parameters": {"model": str(model_dir), "learning_rate": 1e-4},
        "global_step": 3,
        "epoch": 1,
    }
    torch.save(checkpoint, path)
    return path


def paris_record():
    """The France/Paris two-hop record (the capital's river) that the role tests ask about."""
    from lm_guided_cot.data.records import Paragraph, QARecord, SupportingFact

    return QARecord(
        id="r1",
        question="Which river flows through the capital of France?",
        answer="Seine",
        paragraphs=(
            Paragraph("France", ("France is in Europe.", " Its capital is Paris.")),
            Paragraph("Paris", ("Paris lies on the Seine.",)),
        ),
        supporting_facts=(SupportingFact("France", 1), SupportingFact("Paris", 0)),
    )
