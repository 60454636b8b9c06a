"""Stage 2's reward signal before a long run: of the k rationales a guide samples per training
question, how often do all k get the same reward (a group baseline then has no signal)?

For each rollout temperature the guide samples k rationales for each of Q training questions;
each rationale is scored by the recipe's reader with each of ``--rewards``: ``greedy`` (answer F1
of one greedy reply), ``sampled`` (the mean answer F1 over n sampled replies,
``AnswerReward(samples=n)``), ``gold_probability`` (the reader's probability of the gold answer,
``GoldAnswerProbabilityReward``). Printed and written as JSON: per
(temperature, reward, k' <= k) the share of informative groups, the mean reward, the mean
within-group spread, with the wall time and calls of each part. Usage:

    python bin/pilot_signal.py --guide runs/recipe/2wikimultihopqa/distill/export \
        --recipe configs/recipe/2wikimultihopqa --questions 12 --k 8 --out pilot.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import yaml

from lm_guided_cot.data.records import QARecord
from lm_guided_cot.datamodules import HotpotQADataModule, TwoWikiMultiHopQADataModule
from lm_guided_cot.hparams import as_dataclass
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.paths import expand_path
from lm_guided_cot.policy import GenerationConfig, SmallLM
from lm_guided_cot.rewards import AnswerReward, GoldAnswerProbabilityReward
from lm_guided_cot.rl.objectives import constant_groups


def _recipe(folder: Path) -> tuple[dict, dict]:
    """The data module's init_args and the PPO reward's llm settings of a recipe folder."""
    data = yaml.safe_load((folder / "data.yaml").read_text())["data"]["init_args"]
    ppo = yaml.safe_load((folder / "ppo.yaml").read_text())
    llm = ppo["model"]["init_args"]["reward"]["init_args"]["llm"]
    return data, llm


def _datamodule(args: dict, guide: str):
    keep = ("train", "prompt", "max_target_tokens")
    kwargs = {k: v for k, v in args.items() if k in keep}
    kwargs["train"] = expand_path(kwargs["train"])
    cls = TwoWikiMultiHopQADataModule if "2wiki" in kwargs["train"] else HotpotQADataModule
    return cls(tokenizer=guide, **kwargs)


def _sample(guide: SmallLM, rows: list[dict], k: int, temperature: float, chunk: int) -> list[str]:
    """k rationales per row, each question's k consecutive."""
    config = GenerationConfig(max_new_tokens=128, do_sample=True, temperature=temperature)
    texts: list[str] = []
    repeated = [row for row in rows for _ in range(k)]
    for start in range(0, len(repeated), chunk):
        part = repeated[start : start + chunk]
        batch = guide.tokenizer.pad(
            [{"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]} for r in part],
            return_tensors="pt",
        )
        with torch.no_grad():
            labels = guide.generate(batch["input_ids"], batch["attention_mask"], config)
        texts += guide.decode(labels)
    return texts


def _signal(scores: torch.Tensor, k: int, subset: int) -> dict[str, float]:
    grouped = scores.view(-1, k)[:, :subset]
    constant = constant_groups(grouped.reshape(-1), subset)
    spread = [statistics.pstdev(group.tolist()) for group in grouped]
    return {
        "informative_groups": 1.0 - constant.float().mean().item(),
        "mean_reward": grouped.mean().item(),
        "mean_group_std": statistics.fmean(spread),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guide", required=True, help="the stage-1 export folder")
    parser.add_argument("--recipe", required=True, help="configs/recipe/BENCHMARK")
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 1.3])
    parser.add_argument("--reader_samples", type=int, default=4)
    parser.add_argument("--reader_temperature", type=float, default=0.7)
    parser.add_argument(
        "--rewards",
        nargs="+",
        choices=["greedy", "sampled", "gold_probability"],
        default=["greedy", "sampled"],
    )
    parser.add_argument(
        "--reader_model", help="the server's model instead of the recipe's (a registry name)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=16, help="rows generated at once")
    parser.add_argument("--out", required=True, help="JSON file for the results")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

    data_args, llm_args = _recipe(Path(args.recipe))
    if args.reader_model:
        llm_args = {**llm_args, "server": {**llm_args["server"], "model": args.reader_model}}
    datamodule = _datamodule(data_args, args.guide)
    tokenized = datamodule.tokenized("train")
    order = torch.randperm(len(tokenized), generator=torch.Generator().manual_seed(args.seed))
    rows = [tokenized[int(i)] for i in order[: args.questions]]
    records = [QARecord.from_row(row) for row in rows]
    guide = SmallLM.from_pretrained(args.guide)
    guide.model.eval()
    llm = as_dataclass(LLMConfig, llm_args, "the recipe's reward llm")
    greedy = AnswerReward(llm=llm)
    sampled = AnswerReward(
        llm=llm, samples=args.reader_samples, sample_temperature=args.reader_temperature
    )
    named = {
        "greedy": ("greedy reader", greedy),
        "sampled": (f"{args.reader_samples} sampled replies", sampled),
        "gold_probability": ("gold answer probability", GoldAnswerProbabilityReward(llm=llm)),
    }
    results = {"settings": vars(args), "questions": [r.id for r in records], "runs": []}
    for temperature in args.temperatures:
        torch.manual_seed(args.seed)
        start = time.perf_counter()
        texts = _sample(guide, rows, args.k, temperature, args.chunk)
        sampled_s = time.perf_counter() - start
        repeated = [record for record in records for _ in range(args.k)]
        for name, reward in (named[choice] for choice in args.rewards):
            start = time.perf_counter()
            out = reward(repeated, texts)
            run = {
                "rollout_temperature": temperature,
                "reward": name,
                "guide_sampling_s": round(sampled_s, 1),
                "reward_s": round(time.perf_counter() - start, 1),
                "distinct_rationales": len(set(texts)),
                "rationales": len(texts),
            }
            for subset in sorted({min(4, args.k), args.k}):
                run[f"k={subset}"] = _signal(out.total.float(), args.k, subset)
            run["scores"] = [round(x, 4) for x in out.total.tolist()]
            results["runs"].append(run)
            print(json.dumps({k: v for k, v in run.items() if k != "scores"}), flush=True)
    # one client for both rewards (one endpoint): its reader counters are the pilot's total
    usage = greedy.client.role_usage("reader")
    results["reader_calls"] = {n: float(v) for n, v in vars(usage).items()}
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
