"""GPU check: both stages for a few steps under DeepSpeed ZeRO 2 and 3, then `lmcot export`.

For each strategy (deepspeed_stage_2, deepspeed_stage_3) and each small LM (a tiny T5 and a
tiny Llama, built from configs: no download), on one CUDA device in bf16:
  1. distillation on synthetic rationales for a few steps, checkpoint (a ZeRO shard folder);
  2. export of that checkpoint; the exported model's greedy output is compared with the module's;
  3. PPO from the export, with a scripted reward, for a few steps (generation with synced_gpus
     under ZeRO 3; the frozen reference outside the engine); checkpoint and export again;
  4. under ZeRO 2 only, PPO with LoRA adapters for a few steps: only adapters and value head in
     the optimizer, no second model for the reference (adapters off), base weights unchanged;
     `lmcot export` of its checkpoint merged (no adapter keys) and adapter-only (loads with peft).
Prints steps per second (after the first step) and peak GPU memory for each run, and a line
per case saying ok or the error. Usage: python bin/gpu_check.py [--steps N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.strategies import DeepSpeedStrategy
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    ByT5Tokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
)

from lm_guided_cot.datamodules import HotpotQADataModule
from lm_guided_cot.rewards.base import RewardFunction, RewardOutput
from lm_guided_cot.stages import DistillationModule, PPOModule
from lm_guided_cot.stages.export import export_checkpoint


class VowelShare(RewardFunction):
    """A scripted reward (no large LM): the share of vowels in the rationale."""

    name = "vowels"

    def __call__(self, records, rationales):
        share = torch.tensor([sum(c in "aeiou" for c in t) / max(len(t), 1) for t in rationales])
        return RewardOutput(share, {self.name: share})


class Timer(L.Callback):
    """Optimizer-step throughput after the first batch, and peak GPU memory."""

    def on_train_start(self, trainer, module):
        torch.cuda.reset_peak_memory_stats()
        self.times: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        torch.cuda.synchronize()
        self.times.append((time.perf_counter(), trainer.global_step))

    def result(self) -> dict[str, float]:
        (t0, s0), (t1, s1) = self.times[0], self.times[-1]
        return {
            "steps_per_s": (s1 - s0) / (t1 - t0) if t1 > t0 else float("nan"),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        }


def tiny_models(root: Path) -> dict[str, Path]:
    tokenizer = ByT5Tokenizer()
    common = dict(vocab_size=tokenizer.vocab_size + 3, pad_token_id=0, eos_token_id=1)
    models = {
        "t5": T5ForConditionalGeneration(
            T5Config(
                d_model=256,
                d_ff=512,
                d_kv=32,
                num_layers=4,
                num_heads=8,
                decoder_start_token_id=0,
                dropout_rate=0.0,
                **common,
            )
        ),
        "llama": LlamaForCausalLM(
            LlamaConfig(
                hidden_size=256,
                intermediate_size=512,
                num_hidden_layers=4,
                num_attention_heads=8,
                num_key_value_heads=8,
                bos_token_id=2,
                max_position_embeddings=1024,
                **common,
            )
        ),
    }
    out = {}
    for name, model in models.items():
        folder = root / f"tiny-{name}"
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        out[name] = folder
    return out


def write_data(root: Path, n: int = 64) -> tuple[Path, Path]:
    """Synthetic HotpotQA records (hotpot_qa layout) and a teacher-rationale file for them."""
    records, rationales = [], []
    for i in range(n):
        titles = [f"Place {i}", f"Person {i}"]
        records.append(
            {
                "id": f"q{i}",
                "question": f"Where was person {i} born?",
                "answer": f"Town {i % 7}",
                "type": "bridge",
                "level": "easy",
                "supporting_facts": {"title": titles, "sent_id": [0, 0]},
                "context": {
                    "title": titles,
                    "sentences": [
                        [f"Town {i % 7} is in the north."],
                        [f"Person {i} was born there."],
                    ],
                },
            }
        )
        rationales.append(
            {
                "id": f"q{i}",
                "sample": 0,
                "rationale": f"Person {i} was born in Town {i % 7}, which is in the north.",
                "teacher_answer": f"Town {i % 7}",
                "correct": True,
                "score": 1.0,
                "kept": True,
            }
        )
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "rationales").mkdir(exist_ok=True)
    for split in ("train", "validation"):
        path = root / "rationales" / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rationales))
    return data, root / "rationales"


def trainer(stage: int, steps: int, timer: Timer, root: Path) -> L.Trainer:
    return L.Trainer(
        accelerator="gpu",
        devices=1,
        strategy=DeepSpeedStrategy(stage=stage),
        precision="bf16-mixed",
        max_steps=steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        default_root_dir=str(root),
        callbacks=[timer],
    )


def export_matches(module, folder: Path, seq2seq: bool) -> float:
    """Largest difference between the module's weights (bf16 under DeepSpeed; gathered under
    ZeRO 3) and the exported folder's (fp32 master weights), relative to each tensor's scale."""
    import deepspeed

    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    exported = auto.from_pretrained(folder).state_dict()
    params = dict(module.policy.model.named_parameters())
    worst = 0.0
    with deepspeed.zero.GatheredParameters(list(params.values()), modifier_rank=None):
        for name, param in params.items():
            theirs = exported[name].float()
            diff = (param.detach().float().cpu() - theirs).abs().max()
            worst = max(worst, float(diff / (theirs.abs().max() + 1e-6)))
    return worst


def run_case(
    stage: int, name: str, model_dir: Path, data: Path, rationales: Path, steps: int, root: Path
):
    seq2seq = name == "t5"
    work = root / f"zero{stage}-{name}"
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    dm = HotpotQADataModule(
        tokenizer=str(model_dir),
        train=str(data),
        validation=str(data),
        batch_size=8,
        prompt={"max_tokens": 128},
        rationales={"dir": str(rationales)},
        max_target_tokens=96,
        cache_dir=str(root / "hf"),
    )
    timer = Timer()
    distill = DistillationModule(
        model=str(model_dir),
        learning_rate=1e-3,
        eval_every_n_epochs=0,
        export_dir=str(work / "distill-export"),
    )
    t = trainer(stage, steps, timer, work)
    t.fit(distill, datamodule=dm)
    results["distill"] = timer.result()
    ckpt = work / "distill.ckpt"
    t.save_checkpoint(ckpt)  # a folder of ZeRO shards
    export_checkpoint(str(ckpt), str(work / "distill-from-ckpt"))
    results["distill_export_max_rel_diff"] = export_matches(
        distill, work / "distill-from-ckpt", seq2seq
    )

    ppo_dm = HotpotQADataModule(
        tokenizer=str(work / "distill-export"),
        train=str(data),
        batch_size=4,
        prompt={"max_tokens": 128},
        cache_dir=str(root / "hf"),
    )
    timer = Timer()
    ppo = PPOModule(
        model=str(work / "distill-export"),
        reward=VowelShare(),
        learning_rate=1e-4,
        ppo={
            "rollout": {"max_new_tokens": 32, "do_sample": True},
            "samples_per_question": 2,
            "ppo_epochs": 2,
            "minibatch_size": 8,
        },
        num_logged_examples=0,
        export_dir=str(work / "ppo-export"),
    )
    t = trainer(stage, steps, timer, work)
    t.fit(ppo, datamodule=ppo_dm)
    results["ppo"] = timer.result()
    results["ppo_gradient_clipping"] = t.strategy.config.get("gradient_clipping")
    ckpt = work / "ppo.ckpt"
    t.save_checkpoint(ckpt)
    export_checkpoint(str(ckpt), str(work / "ppo-from-ckpt"))
    results["ppo_export_max_rel_diff"] = export_matches(ppo, work / "ppo-from-ckpt", seq2seq)
    if stage == 2:
        results.update(run_lora_ppo(stage, seq2seq, work, ppo_dm, steps))
    return results


def run_lora_ppo(stage: int, seq2seq: bool, work: Path, dm, steps: int) -> dict:
    """PPO with LoRA from the stage-1 export; raises if a LoRA promise does not hold."""
    import peft

    start = work / "distill-export"
    timer = Timer()
    ppo = PPOModule(
        model=str(start),
        reward=VowelShare(),
        learning_rate=1e-3,
        ppo={
            "rollout": {"max_new_tokens": 32, "do_sample": True},
            "samples_per_question": 2,
            "ppo_epochs": 2,
            "minibatch_size": 8,
        },
        num_logged_examples=0,
        export_dir=str(work / "ppo-lora-export"),
        lora={"rank": 8, "alpha": 16},
    )
    t = trainer(stage, steps, timer, work)
    t.fit(ppo, datamodule=dm)
    out = {"ppo_lora": timer.result()}
    if "_reference" in ppo.__dict__:
        raise AssertionError("LoRA PPO loaded a second model for the reference")
    trainable = {n for n, p in ppo.named_parameters() if p.requires_grad}
    if not trainable or any(
        "lora_" not in n and not n.startswith("value_head.") for n in trainable
    ):
        raise AssertionError(f"trainable beyond adapters and value head: {sorted(trainable)[:5]}")
    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    base = auto.from_pretrained(start).state_dict()
    worst = 0.0
    for name, param in ppo.policy.model.named_parameters():
        if "lora_" not in name:  # bf16 under DeepSpeed: equal to the start up to that rounding
            plain = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
            theirs = base[plain].float()
            diff = (param.detach().float().cpu() - theirs).abs().max()
            worst = max(worst, float(diff / (theirs.abs().max() + 1e-6)))
    out["ppo_lora_base_max_rel_diff"] = worst
    ckpt = work / "ppo-lora.ckpt"
    t.save_checkpoint(ckpt)
    merged = export_checkpoint(str(ckpt), str(work / "ppo-lora-merged"))
    if any("lora" in key for key in auto.from_pretrained(merged).state_dict()):
        raise AssertionError("the merged export holds adapter weights")
    adapter = export_checkpoint(str(ckpt), str(work / "ppo-lora-adapter"), adapter_only=True)
    peft.PeftModel.from_pretrained(auto.from_pretrained(start), adapter)
    out["ppo_lora_exports"] = "merged and adapter-only ok"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--out", default="runs/gpu_check")
    parser.add_argument("--zero", default="2,3", help="ZeRO stages to run, e.g. 2,3")
    args = parser.parse_args()
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, lightning {L.__version__}")
    models = tiny_models(root)
    data, rationales = write_data(root)
    report = {}
    for stage in [int(z) for z in args.zero.split(",")]:
        for name, folder in models.items():
            torch.cuda.empty_cache()
            case = f"deepspeed_stage_{stage} {name}"
            start = time.perf_counter()
            try:
                report[case] = run_case(stage, name, folder, data, rationales, args.steps, root)
                report[case]["seconds"] = time.perf_counter() - start
                print(f"OK   {case}: {json.dumps(report[case])}", flush=True)
            except Exception as err:  # report every case, then go on to the next
                report[case] = {"error": f"{type(err).__name__}: {err}"}
                print(f"FAIL {case}: {report[case]['error']}", flush=True)
                traceback.print_exc()
    print("\ncase                       stage    steps/s  peak GiB")
    for case, result in report.items():
        for stage_name in ("distill", "ppo", "ppo_lora"):
            if stage_name in result:
                r = result[stage_name]
                print(f"{case:26s} {stage_name:8s} {r['steps_per_s']:7.2f}  {r['peak_gib']:8.3f}")
    (root / "report.json").write_text(json.dumps(report, indent=2))
    if any("error" in r for r in report.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
