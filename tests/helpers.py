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


def assert_png(path: Path, min_bytes: int = 5_000) -> None:
    """A whole PNG with something drawn in it (an empty 8x7-inch canvas is smaller)."""
    from lm_guided_cot.plots import PNG_SIGNATURE

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, data[:16]
    assert data[-8:] == b"IEND\xaeB`\x82"  # not cut short
    assert len(data) > min_bytes, len(data)


def hotpot_gold_answers(shared_data: Path) -> dict[str, str]:
    """Each question of the shared HotpotQA validation sample, with its gold answer."""
    lines = (shared_data / "hotpotqa/validation.jsonl").read_text().splitlines()
    return {r["question"]: r["answer"] for r in map(json.loads, lines)}


def evaluation_responder(gold: dict[str, str]):
    """A test server's replies in ``lmcot evaluate``. Judge: 4 on every aspect. CoT: right.
    Reader alone: right on even-length questions. Reader with a rationale: right when the
    rationale has an even length."""

    def respond(messages):
        system, user = messages[0]["content"], messages[-1]["content"]
        if "grader" in system:
            if user.endswith("Answer yes or no."):  # auto's probe: no log-probabilities here
                return "Yes"
            keys = user.rsplit("the keys ", 1)[1].rstrip(".").split(", ")
            return json.dumps({k.strip('"'): 4 for k in keys})
        question = user.split("Question: ", 1)[1].split("\n", 1)[0]
        if "step by step" in system:
            return f"The paragraphs say so. So the answer is: {gold[question]}"
        if "Reasoning: " in user:
            rationale = user.split("Reasoning: ", 1)[1].rsplit("\nReply with", 1)[0]
            return f"Answer: {gold[question] if len(rationale) % 2 == 0 else 'nobody'}"
        return f"Answer: {gold[question] if len(question) % 2 == 0 else 'nobody'}"

    return respond


def run_evaluate(tmp_path: Path, shared_data: Path, config: dict, n: int, **data_args):
    """``lmcot evaluate`` in a subprocess on the first ``n`` HotpotQA validation questions,
    with ``config`` as its evaluation YAML and ``data_args`` added to the data's init_args."""
    import os
    import subprocess
    import sys

    import yaml

    data = {
        "data": {
            "class_path": "lm_guided_cot.datamodules.HotpotQADataModule",
            "init_args": {
                "test": str(shared_data / "hotpotqa/validation.jsonl"),
                "max_eval_examples": n,
                "cache_dir": str(tmp_path / "hf"),
                **data_args,
            },
        }
    }
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "evaluate.yaml").write_text(yaml.safe_dump(config))
    configs = ["-c", str(tmp_path / "data.yaml"), "-c", str(tmp_path / "evaluate.yaml")]
    return subprocess.run(
        [sys.executable, "-m", "lm_guided_cot.cli", "evaluate", *configs],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "COLUMNS": "200"},
    )


# (prediction, gold, EM, F1) worked out by hand from hotpot_evaluate_v1.py's rules.
HAND_CHECKED = [
    ("Paris", "Paris", 1, 1.0),
    ("paris", "PARIS", 1, 1.0),  # case
    ("The Paris", "Paris", 1, 1.0),  # leading article
    ("a cat", "the cat", 1, 1.0),  # different articles
    ("an apple pie", "apple pie", 1, 1.0),
    ("Theatre", "atre", 0, 0.0),  # "the" inside a word is not an article
    ("Paris.", "Paris", 1, 1.0),  # punctuation
    ("U.S.A.", "USA", 1, 1.0),  # dots dropped, letters joined
    ("Saint-Denis", "SaintDenis", 1, 1.0),  # hyphen removed, not split
    ("  New   York  ", "New York", 1, 1.0),  # white space folded
    ("New\tYork\n", "new york", 1, 1.0),
    ("New York City", "New York", 0, 0.8),  # P = 2/3, R = 1 -> 0.8
    ("York", "New York", 0, 2 / 3),  # P = 1, R = 1/2
    ("Paris France", "Lyon France", 0, 0.5),
    ("the the the", "the", 1, 0.0),  # both empty after normalisation: EM 1, F1 0 (official quirk)
    ("", "", 1, 0.0),  # empty strings: same quirk
    ("", "Paris", 0, 0.0),
    ("Paris", "", 0, 0.0),
    ("yes", "yes", 1, 1.0),
    ("Yes.", "yes", 1, 1.0),
    ("yes", "no", 0, 0.0),
    ("yes it is", "yes", 0, 0.0),  # gold is yes, prediction differs -> F1 forced to 0
    ("no", "no way", 0, 0.0),  # prediction is "no", gold differs -> 0 despite a shared token
    ("noanswer", "the answer", 0, 0.0),
    ("no answer", "answer", 0, 2 / 3),  # "no answer" is not the special "noanswer"
    ("Zürich", "zürich", 1, 1.0),  # unicode letters lowercased, kept
    ("Ångström", "Angstrom", 0, 0.0),  # accents are not stripped
    ("café, bar", "Café Bar", 1, 1.0),
    ("1,000", "1000", 1, 1.0),
    ("cat cat dog", "cat dog dog", 0, 2 / 3),  # multiset overlap: cat 1 + dog 1 = 2 of 3
    ("— Paris —", "Paris", 0, 0.5),  # em dash is not in string.punctuation: a token; P = 1/3
]


def score_tuple(score) -> tuple[float, float, float, float]:
    """An ``AnswerScore`` as ``(em, f1, precision, recall)``, to compare in one assertion."""
    return (score.em, score.f1, score.precision, score.recall)


def evidence_gold():
    """A 2Wiki gold record with two supporting facts and two evidence triples."""
    from lm_guided_cot.metrics.scores import GoldExample, evidence_forms

    return GoldExample(
        "w1",
        ["Gamma College"],
        [("Alpha", 0), ("Beta", 1)],
        [
            evidence_forms("Alpha", "father", "Beta"),
            evidence_forms("Beta", "educated at", "Gamma College"),
        ],
    )
