"""Stage-1 training speed: this project's DistillationModule against transformers' Seq2SeqTrainer.

The same tiny T5 (built from a config: no download), the same pre-tokenised examples in the
same order, the same batch size, optimizer (AdamW with linear decay; theirs runs its default
fused kernel, ours torch's default), learning rate, number of optimizer steps and gradient
checkpointing (``--gradient_checkpointing``: on for both); each run in its own process, so peak
memory is that run's alone. Prints training tokens per second (prompt + target tokens that are
not padding, timed from the end of the first step to the end of the last) and peak memory (GPU:
max allocated; CPU: max RSS and the live peak, see ``bin/_bench.py``), medians over the repeats
with their spread, and the ratio ours / theirs.

    python bin/bench_distill.py [--steps 20] [--repeats 3] [--device cpu|cuda]
                                [--gradient_checkpointing]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from _bench import (  # bin/_bench.py
    add_common_arguments,
    common_settings,
    lightning_trainer,
    medians,
    parse,
    peak_memory_mib,
    print_ratio,
    print_table,
    run_children,
    stamp,
)

HERE = Path(__file__).resolve()


def build_model(folder: Path, layers: int, d_model: int) -> None:
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    tokenizer = ByT5Tokenizer()
    config = T5Config(
        vocab_size=tokenizer.vocab_size + 3,
        d_model=d_model,
        d_ff=2 * d_model,
        d_kv=d_model // 8,
        num_layers=layers,
        num_heads=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        dropout_rate=0.0,
    )
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def examples(n: int, prompt_len: int, target_len: int, seed: int = 0) -> list[dict]:
    """Byte-level prompts and targets of varying length (so padding is realistic)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        p = int(torch.randint(prompt_len // 2, prompt_len + 1, (1,), generator=gen))
        t = int(torch.randint(target_len // 2, target_len + 1, (1,), generator=gen))
        prompt = [*torch.randint(3, 259, (p,), generator=gen).tolist(), 1]
        target = [*torch.randint(3, 259, (t,), generator=gen).tolist(), 1]
        out.append({"input_ids": prompt, "attention_mask": [1] * len(prompt), "labels": target})
    return out


def pad_batch(rows: list[dict]) -> dict[str, torch.Tensor]:
    """Prompts left-padded (as our DataModule does), labels right-padded with -100."""
    width = max(len(r["input_ids"]) for r in rows)
    target = max(len(r["labels"]) for r in rows)
    return {
        "input_ids": torch.tensor(
            [[0] * (width - len(r["input_ids"])) + r["input_ids"] for r in rows]
        ),
        "attention_mask": torch.tensor(
            [[0] * (width - len(r["input_ids"])) + r["attention_mask"] for r in rows]
        ),
        "labels": torch.tensor([r["labels"] + [-100] * (target - len(r["labels"])) for r in rows]),
    }


def tokens_per_step(data: list[dict], batch_size: int, steps: int) -> list[int]:
    counts = []
    for step in range(steps):
        start = (step * batch_size) % len(data)
        rows = [data[(start + i) % len(data)] for i in range(batch_size)]
        counts.append(sum(len(r["input_ids"]) + len(r["labels"]) for r in rows))
    return counts


def run_ours(args, data: list[dict], stamps: list[float]) -> bool:
    """Train; whether gradient checkpointing was on."""
    from lm_guided_cot.stages import DistillationModule

    batches = [
        pad_batch([data[(s * args.batch_size + i) % len(data)] for i in range(args.batch_size)])
        for s in range(args.steps)
    ]
    module = DistillationModule(
        model=args.model,
        learning_rate=1e-4,
        eval_every_n_epochs=0,
        export_dir=args.workdir + "/x",
        gradient_checkpointing=args.gradient_checkpointing,
    )
    module.on_fit_end = lambda: None  # no export: not part of a training step
    trainer = lightning_trainer(args, stamps, max_steps=args.steps)
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    return module.policy.model.is_gradient_checkpointing


def run_theirs(args, data: list[dict], stamps: list[float]) -> bool:
    """Train; whether gradient checkpointing was on."""
    from transformers import (
        AutoModelForSeq2SeqLM,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        TrainerCallback,
    )

    class Stamp(TrainerCallback):
        def on_step_end(self, targs, state, control, **kwargs):
            stamp(args.device, stamps)

    ordered = [
        data[(s * args.batch_size + i) % len(data)]
        for s in range(args.steps)
        for i in range(args.batch_size)
    ]
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model)
    targs = Seq2SeqTrainingArguments(
        output_dir=args.workdir + "/hf",
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=1e-4,
        lr_scheduler_type="linear",
        weight_decay=0.0,
        logging_steps=10_000,
        save_strategy="no",
        report_to=[],
        use_cpu=args.device == "cpu",
        bf16=args.precision.startswith("bf16"),
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
        gradient_checkpointing=args.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},  # as ours
    )

    class InOrder(torch.utils.data.Dataset):  # the same order as ours, no shuffling
        def __len__(self):
            return len(ordered)

        def __getitem__(self, i):
            return ordered[i]

    trainer = Seq2SeqTrainer(
        model=model,
        args=targs,
        train_dataset=InOrder(),
        data_collator=pad_batch,
        callbacks=[Stamp()],
    )
    trainer._get_train_sampler = lambda *a, **k: torch.utils.data.SequentialSampler(ordered)
    trainer.train()
    return model.is_gradient_checkpointing


def child(args) -> None:
    """One run in this process; prints a JSON line with tokens/s and peak memory."""
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    data = examples(args.examples, args.prompt_tokens, args.target_tokens)
    stamps: list[float] = []
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    checkpointing = (run_ours if args.child == "ours" else run_theirs)(args, data, stamps)
    counts = tokens_per_step(data, args.batch_size, args.steps)
    timed = sum(counts[1 : len(stamps)])  # tokens of the steps after the first
    seconds = stamps[-1] - stamps[0]
    peak = peak_memory_mib(args.device)
    result = {"tokens_per_s": timed / seconds, "peak_mib": peak, "steps": len(stamps)}
    print(json.dumps({**result, "checkpointing": checkpointing}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--prompt_tokens", type=int, default=256)
    parser.add_argument("--target_tokens", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d_model", type=int, default=256)
    add_common_arguments(parser, ["ours", "theirs"])
    args = parse(parser)
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "tiny-t5"
        build_model(model, args.layers, args.d_model)
        results = run_children(HERE, ["ours", "theirs"], args, model, tmp)
    med = medians(results, ("tokens_per_s", "peak_mib", "live_mib"))
    title = (
        f"distillation, tiny T5 ({args.layers}+{args.layers} layers, d_model {args.d_model}), "
        f"batch {args.batch_size}, prompts <= {args.prompt_tokens} and targets <= "
        f"{args.target_tokens} tokens, {args.steps} steps, {common_settings(args)}"
    )
    rows = {"ours": "lm-guided-cot DistillationModule", "theirs": "transformers Seq2SeqTrainer"}
    print_table(title, "tokens_per_s", rows, med, args.device)
    print_ratio(med, "ours", "theirs", "tokens_per_s")


if __name__ == "__main__":
    main()
