"""Run by test_ddp.py: one stage on 1 or 2 CPU processes (DDP, gloo), recording what the test
compares -- the metrics logged at every step and a checksum of the weights on every rank.

    python ddp_stages.py STAGE OUT DEVICES MODEL DATA_DIR SERVER_URL [LLM_CALLS [ADVANTAGE [lora
        [MAX_STALENESS]]]]
    python ddp_stages.py --many RUNS.json   # those arguments, one list per run, in one process

ADVANTAGE may carry a dynamic sampling mode: ``grpo:skip``.

The data are sized so that one process and two see the same examples per optimizer step
(one batch per epoch holding every question), which makes their runs comparable step by step.
PPO rollouts sample, each rationale from its own seed (its prompt, its place among the question's
samples and the step), so that one process and two draw the same rationales.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist

from lm_guided_cot.data.targets import pad_labels
from lm_guided_cot.datamodules import HotpotQADataModule
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.policy import SmallLM
from lm_guided_cot.rewards import AnswerReward
from lm_guided_cot.stages import DistillationModule, PPOModule

PPO_METRICS = (
    "reward/total_mean",
    "reward/total_std",
    "kl/mean",
    "ppo/policy_loss",
    "ppo/value_loss",
    "ppo/approx_kl",
    "ppo/clipfrac",
    "ppo/entropy",
    "ppo/explained_variance",
    "rationale/length",
    "ppo/informative_groups",
    "ppo/policy_updated",
)
RLOO_METRICS = tuple(
    m for m in PPO_METRICS if m not in ("ppo/value_loss", "ppo/explained_variance")
)


class Recorder(L.Callback):
    """Per step: the synced metrics and, from every rank, per-parameter sums of the weights."""

    def __init__(self, out: Path, names: tuple[str, ...]) -> None:
        self.out = out
        self.names = names
        self.steps: list[dict] = []
        self.validations: list[dict] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        sums = torch.stack([p.detach().double().sum() for p in module.parameters()])
        if dist.is_initialized():
            every = [torch.zeros_like(sums) for _ in range(dist.get_world_size())]
            dist.all_gather(every, sums)
        else:
            every = [sums]
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k in self.names}
        self.steps.append({"metrics": metrics, "weights": [w.tolist() for w in every]})

    def on_validation_end(self, trainer, module) -> None:  # after the module logged its own
        wanted = ("val/loss", "val/answer_em", "val/answer_f1")
        self.validations.append(
            {k: float(v) for k, v in trainer.callback_metrics.items() if k in wanted}
        )

    def on_train_end(self, trainer, module) -> None:
        if trainer.is_global_zero:
            record = {"steps": self.steps, "validations": self.validations}
            (self.out / "record.json").write_text(json.dumps(record))


_UNSEEDED_GENERATE = SmallLM.generate


def seed_each_rationale(samples_per_question: int) -> None:
    """Make ``SmallLM.generate`` draw each row from a seed of its own (see the module docstring);
    the global random state is left as it was. Called again, it starts afresh (``--many``)."""
    original = _UNSEEDED_GENERATE
    calls = [0]

    def generate(self, input_ids, attention_mask, config=None, **kwargs):
        calls[0] += 1
        rows = []
        for i in range(input_ids.shape[0]):
            prompt = input_ids[i][attention_mask[i].bool()][None]
            key = prompt.numpy().tobytes() + f"{i % samples_per_question}/{calls[0]}".encode()
            with torch.random.fork_rng():
                torch.manual_seed(zlib.crc32(key))
                row = original(self, prompt, torch.ones_like(prompt), config, **kwargs)[0]
            rows.append(row.tolist())
        return pad_labels(rows)

    SmallLM.generate = generate


def main(
    stage: str,
    out: str,
    devices: int,
    model: str,
    data_dir: str,
    url: str,
    llm_calls: str = "every_rank",
    advantage: str = "gae",
    lora: str = "",
    max_staleness: str = "0",
) -> None:
    out_dir = Path(out)
    llm = LLMConfig(
        model="openai/fake-large",
        api_base=url,
        cache_path=str(out_dir / "llm.sqlite"),
        timeout=10,
    )
    L.seed_everything(3)
    data_args = dict(
        tokenizer=model,
        train=f"{data_dir}/hotpotqa/train.jsonl",
        validation=f"{data_dir}/hotpotqa/validation.jsonl",
        prompt={"max_tokens": 96},
        cache_dir=str(out_dir / "hf"),
    )
    if stage == "distill":
        # 8 kept rationales: one batch of 8, or 4 per rank; 4 validation questions
        dm = HotpotQADataModule(
            **data_args,
            max_examples=8,
            max_eval_examples=4,
            batch_size=8 // devices,
            eval_batch_size=4 // devices,
            rationales={"dir": str(out_dir / "rationales"), "llm": llm, "rule": "em"},
            max_target_tokens=24,
        )
        module = DistillationModule(
            model=model,
            learning_rate=1e-3,
            generation={"max_new_tokens": 8},
            eval_every_n_epochs=1,
            reader_llm=llm,
            num_logged_examples=0,
        )
        names: tuple[str, ...] = ("train/loss",)
        limits = dict(max_epochs=3)
    else:
        # 2 questions x 2 samples: one batch of 2, or 1 per rank; one minibatch
        seed_each_rationale(samples_per_question=2)
        dm = HotpotQADataModule(**data_args, max_examples=2, batch_size=2 // devices)
        module = PPOModule(
            model=model,
            reward=AnswerReward(llm=llm),
            learning_rate=1e-3,
            ppo={
                "rollout": {"max_new_tokens": 8},
                "advantage": advantage.partition(":")[0],
                "dynamic_sampling": advantage.partition(":")[2] or "off",
                "samples_per_question": 2,
                "ppo_epochs": 2,
                "minibatch_size": 4,
                "target_kl": None,
                "max_staleness": int(max_staleness),
            },
            num_logged_examples=0,
            llm_calls=llm_calls,
            lora={"rank": 4, "alpha": 8} if lora == "lora" else None,
        )
        names = PPO_METRICS if advantage == "gae" else RLOO_METRICS
        if int(max_staleness):
            names = (*names, "ppo/staleness")
        if ":" in advantage:
            names = (*names, "ppo/groups_constant", "ppo/groups_resampled", "ppo/groups_skipped")
        limits = dict(max_steps=6, limit_val_batches=0)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        default_root_dir=str(out_dir),
        callbacks=[Recorder(out_dir, names)],
        **limits,
    )
    trainer.fit(module, datamodule=dm)


if __name__ == "__main__":
    if sys.argv[1] == "--many":  # several 1-process runs in a row, imports paid once: a JSON list
        for run in json.loads(Path(sys.argv[2]).read_text()):  # of argument lists as above
            main(run[0], run[1], int(run[2]), *run[3:])
    else:
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:])
