"""Stage-2 step speed: this project's PPOModule against TRL on the same causal work.

TRL's PPOTrainer takes a reward *model* only; with a scripted reward its peer is RLOOTrainer
(critic-free, k samples per prompt, leave-one-out baseline), so that is what runs here. Both get
the same tiny Llama (built from a config: no download), the same prompts, k samples per prompt,
the same number of new tokens (sampled at temperature 1; EOS suppressed on both sides so every
rationale has the full length), the same reuse of each batch of samples (TRL
``num_iterations`` = our ``ppo_epochs``), the same minibatch (TRL ``per_device_train_batch_size``
with ``steps_per_generation``), the same KL coefficient against a frozen reference, and the same
scripted reward (share of even token ids). Ours runs twice: with RLOO advantages (the same
algorithm as TRL's) and with GAE and a value head (what stage 2 uses by default), and once more
with GAE on a tiny T5 of the same width (no maintained peer trains seq2seq policies with PPO, so
that row has no ratio). ``--gradient_checkpointing`` turns it on for every contender (TRL's
default is on, ours off; the comparison is made at equal settings). Each run is its own process;
samples per second are timed from the end of the first rollout to the end of the last; memory is
max allocated on CUDA, and on a CPU both the max RSS and the live peak (see ``bin/_bench.py``);
median over the repeats. ``--lora`` runs instead ours with LoRA adapters (RLOO; the reference is
the policy with its adapters off), ours fully fine-tuned (RLOO) and TRL's RLOOTrainer with the
same adapters (``peft_config``; TRL's reference is then the adapters-off policy too).

``--reward-latency SECONDS`` measures bounded staleness instead: ours (GAE) with
``AnswerReward`` asking the fake large-LM server (``lm_guided_cot.testing.fake_llm``, its own
process, every request answered after SECONDS; no cache, so every request pays it) at
``max_staleness`` 0, 1, 2 and 4, and the bound: the same run with an instant scripted reward
(generation and updates alone). A run at staleness N samples N more batches, so every run
times as many updates; the clock starts at the end of the first update.

    python bin/bench_ppo.py [--rollouts 6] [--repeats 3] [--device cpu|cuda] [--lora]
    python bin/bench_ppo.py --reward-latency 1 [--layers 2 --hidden 128 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
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
from bench_distill import build_model as build_t5  # bin/bench_distill.py

HERE = Path(__file__).resolve()
RUNS = ("ours_rloo", "ours_gae", "trl_rloo", "ours_t5_gae")
LORA_RUNS = ("ours_rloo_lora", "ours_rloo", "trl_rloo_lora")
LABELS = {
    "ours_rloo": "lm-guided-cot PPOModule (RLOO)",
    "ours_gae": "lm-guided-cot PPOModule (GAE)",
    "trl_rloo": "TRL RLOOTrainer",
    "ours_t5_gae": "lm-guided-cot PPOModule (GAE), T5",
    "ours_rloo_lora": "lm-guided-cot PPOModule RLOO, LoRA",
    "trl_rloo_lora": "TRL RLOOTrainer, LoRA",
}
STALE_RUNS = ("stale_0", "stale_1", "stale_2", "stale_4", "bound")
LABELS.update({f"stale_{n}": f"ours GAE, max_staleness {n}" for n in (0, 1, 2, 4)})
LABELS["bound"] = "bound: instant reward"
# the same adapters on both sides: rank 8, alpha 16, no dropout, peft's default targets
# for Llama (q_proj, v_proj)
LORA = {"rank": 8, "alpha": 16.0}


def build_model(folder: Path, layers: int, hidden: int) -> None:
    from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = ByT5Tokenizer()
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size + 3,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=8,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        max_position_embeddings=1024,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def prompts(n: int, length: int) -> list[str]:
    words = [
        "which",
        "river",
        "flows",
        "through",
        "the",
        "city",
        "where",
        "the",
        "author",
        "of",
        "the",
        "novel",
        "was",
        "born",
    ]
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        picks = torch.randint(0, len(words), (length // 5,), generator=gen).tolist()
        out.append(" ".join(words[i] for i in picks)[:length])
    return out


def even_share(token_lists: list[list[int]]) -> list[float]:
    return [sum(t % 2 == 0 for t in ids) / max(len(ids), 1) for ids in token_lists]


def run_ours(
    args,
    model: str,
    texts: list[str],
    stamps: list[float],
    advantage: str,
    lora: bool = False,
    reward=None,
    max_staleness: int = 0,
) -> bool:
    """Train; whether gradient checkpointing was on, and how many parameters trained
    (``reward``: instead of the scripted one)."""
    from lm_guided_cot.data.batches import RecordBatch
    from lm_guided_cot.rewards.base import RewardFunction, RewardOutput
    from lm_guided_cot.stages import PPOModule

    tokenizer_holder = {}

    class EvenShare(RewardFunction):
        def __call__(self, records, rationales):
            ids = [
                tokenizer_holder["tok"](t, add_special_tokens=False)["input_ids"]
                for t in rationales
            ]
            share = torch.tensor(even_share(ids))
            return RewardOutput(share, {"even": share})

    module = PPOModule(
        model=model,
        reward=reward or EvenShare(),
        learning_rate=1e-5,
        ppo={
            "rollout": {"max_new_tokens": args.new_tokens, "do_sample": True, "temperature": 1.0},
            "samples_per_question": args.k,
            "ppo_epochs": args.epochs,
            "minibatch_size": args.minibatch,
            "advantage": advantage,
            "init_kl_coef": 0.05,
            "target_kl": None,
            "whiten_advantages": advantage == "gae",
            "max_staleness": max_staleness,
        },
        num_logged_examples=0,
        export_dir=args.workdir + "/x",
        gradient_checkpointing=args.gradient_checkpointing,
        lora=LORA if lora else None,
    )
    module.on_fit_end = lambda: None  # no export: not part of a step

    from lm_guided_cot.policy import SmallLM

    original = SmallLM.generate

    def generate_full_length(self, input_ids, attention_mask, config=None, **kwargs):
        kwargs.setdefault("min_new_tokens", args.new_tokens)  # as TRL is run: no early EOS
        return original(self, input_ids, attention_mask, config, **kwargs)

    SmallLM.generate = generate_full_length
    tok = module_tokenizer(model)
    tokenizer_holder["tok"] = tok
    encoded = [tok(t) for t in texts]
    batches = []
    n = (args.rollouts + max_staleness) * args.prompts_per_rollout
    for start in range(0, n, args.prompts_per_rollout):
        rows = [encoded[(start + i) % len(encoded)] for i in range(args.prompts_per_rollout)]
        width = max(len(r["input_ids"]) for r in rows)
        batches.append(
            {
                "input_ids": torch.tensor(
                    [[0] * (width - len(r["input_ids"])) + r["input_ids"] for r in rows]
                ),
                "attention_mask": torch.tensor(
                    [[0] * (width - len(r["input_ids"])) + [1] * len(r["input_ids"]) for r in rows]
                ),
                "index": torch.arange(len(rows)),
                # the scripted reward needs no records; the reader gets questions
                "records": RecordBatch(
                    _record(texts[(start + i) % len(texts)], start + i) if reward else None
                    for i in range(len(rows))
                ),
            }
        )
    trainer = lightning_trainer(args, stamps, max_epochs=1, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return module.policy.model.is_gradient_checkpointing, trainable


def _record(question: str, index: int):
    from lm_guided_cot.data import QARecord

    return QARecord(id=f"q{index}", question=question, answer="river", paragraphs=())


def run_stale(args, model: str, texts: list[str], stamps: list[float], name: str):
    """Ours at a ``max_staleness`` against the fake large LM, or the bound; the first stamps,
    of the steps that only sample, are dropped."""
    staleness, reward = 0, None
    if name != "bound":
        from lm_guided_cot.llm.config import LLMConfig
        from lm_guided_cot.rewards import AnswerReward

        staleness = int(name.removeprefix("stale_"))
        llm = LLMConfig(
            model="openai/fake-large",
            api_base=args.reward_url,
            cache_path=None,  # every request pays the latency
            max_concurrency=1024,
            group_prefixes=False,  # each request on its own, none waits for another
            timeout=max(60.0, 10 * args.reward_latency),
            max_retries=0,
        )
        reward = AnswerReward(llm=llm)
    out = run_ours(args, model, texts, stamps, "gae", reward=reward, max_staleness=staleness)
    del stamps[:staleness]
    return out


def module_tokenizer(model: str):
    from lm_guided_cot.model_loading import load_tokenizer

    return load_tokenizer(model, "left")


def run_trl(args, model: str, texts: list[str], stamps: list[float], lora: bool = False) -> bool:
    """Train; whether gradient checkpointing was on, and how many parameters trained."""
    import peft
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RLOOConfig, RLOOTrainer

    class Stamp(TrainerCallback):
        def __init__(self):
            self.step = 0

        def on_step_end(self, targs, state, control, **kwargs):
            self.step += 1
            if self.step % steps_per_rollout == 0:  # one rollout's updates are done
                stamp(args.device, stamps)

    def reward(prompts, completions, completion_ids, **kwargs):
        return even_share(completion_ids)

    samples = args.prompts_per_rollout * args.k
    steps_per_generation = samples // args.minibatch
    steps_per_rollout = steps_per_generation * args.epochs
    n = args.rollouts * args.prompts_per_rollout
    dataset = Dataset.from_dict({"prompt": [texts[i % len(texts)] for i in range(n)]})
    config = RLOOConfig(
        output_dir=args.workdir + "/trl",
        per_device_train_batch_size=args.minibatch,
        steps_per_generation=steps_per_generation,
        num_generations=args.k,
        num_iterations=args.epochs,
        max_completion_length=args.new_tokens,
        generation_kwargs={"min_new_tokens": args.new_tokens},
        temperature=1.0,
        learning_rate=1e-5,
        beta=0.05,
        max_steps=args.rollouts * steps_per_rollout,
        logging_steps=10_000,
        save_strategy="no",
        report_to=[],
        use_cpu=args.device == "cpu",
        bf16=args.precision.startswith("bf16"),
        disable_tqdm=True,
        shuffle_dataset=False,
        seed=0,
        gradient_checkpointing=args.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},  # as ours
    )
    trainer = RLOOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=dataset,
        processing_class=module_tokenizer(model),
        callbacks=[Stamp()],
        peft_config=peft.LoraConfig(
            task_type=peft.TaskType.CAUSAL_LM,
            r=LORA["rank"],
            lora_alpha=LORA["alpha"],
            lora_dropout=0.0,
            bias="none",
        )
        if lora
        else None,
    )
    trainer.train()
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return trainer.model.is_gradient_checkpointing, trainable


def child(args) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    texts = prompts(64, args.prompt_chars)
    stamps: list[float] = []
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    models = Path(args.model)  # a folder with both tiny models
    lora = args.child.endswith("_lora")
    name = args.child.removesuffix("_lora")
    if name in STALE_RUNS:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network
        checkpointing, trainable = run_stale(args, str(models / "llama"), texts, stamps, name)
    elif name == "trl_rloo":
        checkpointing, trainable = run_trl(args, str(models / "llama"), texts, stamps, lora)
    elif name == "ours_t5_gae":
        checkpointing, trainable = run_ours(args, str(models / "t5"), texts, stamps, "gae")
    else:
        advantage = name.removeprefix("ours_")
        checkpointing, trainable = run_ours(
            args, str(models / "llama"), texts, stamps, advantage, lora
        )
    samples = (len(stamps) - 1) * args.prompts_per_rollout * args.k
    peak = peak_memory_mib(args.device)
    print(
        json.dumps(
            {
                "samples_per_s": samples / (stamps[-1] - stamps[0]),
                "peak_mib": peak,
                "rollouts": len(stamps),
                "checkpointing": checkpointing,
                "trainable": trainable,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rollouts", type=int, default=6, help="batches of prompts (the first is not timed)"
    )
    parser.add_argument("--prompts_per_rollout", type=int, default=4)
    parser.add_argument("--k", type=int, default=4, help="samples per prompt")
    parser.add_argument("--new_tokens", type=int, default=32)
    parser.add_argument(
        "--epochs", type=int, default=2, help="passes over each rollout (TRL num_iterations)"
    )
    parser.add_argument("--minibatch", type=int, default=8)
    parser.add_argument("--prompt_chars", type=int, default=96)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument(
        "--lora",
        action="store_true",
        help=f"ours with LoRA {LORA}, ours in full and TRL with the same LoRA",
    )
    parser.add_argument(
        "--runs", help=f"default {','.join(RUNS)} ({','.join(LORA_RUNS)} with --lora)"
    )
    parser.add_argument(
        "--reward-latency",
        "--reward_latency",
        dest="reward_latency",
        type=float,
        help="bounded staleness: the reward's large LM answers after this many seconds",
    )
    parser.add_argument("--reward_url", help=argparse.SUPPRESS)
    add_common_arguments(parser, [*RUNS, "ours_rloo_lora", "trl_rloo_lora", *STALE_RUNS])
    args = parse(parser)
    if args.child:
        child(args)
        return
    if args.reward_latency is not None:
        staleness_main(args)
        return
    runs = (args.runs or ",".join(LORA_RUNS if args.lora else RUNS)).split(",")
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        build_model(models / "llama", args.layers, args.hidden)
        build_t5(models / "t5", args.layers // 2, args.hidden)  # encoder + decoder: same depth
        results = run_children(HERE, runs, args, models, tmp)
    med = medians(results, ("samples_per_s", "peak_mib", "live_mib", "trainable"))
    title = (
        f"PPO step, tiny Llama ({args.layers} layers, hidden {args.hidden}) and T5 "
        f"({args.layers // 2}+{args.layers // 2} layers), {args.prompts_per_rollout} prompts x "
        f"k={args.k} samples, {args.new_tokens} new tokens, {args.epochs} epochs of minibatch "
        f"{args.minibatch}, KL 0.05, {args.rollouts - 1} timed rollouts, {common_settings(args)}"
    )
    if any(run.endswith("_lora") for run in runs):
        title += f"; LoRA rank {LORA['rank']}, alpha {LORA['alpha']:g} on q_proj, v_proj"
    print_table(title, "samples_per_s", {run: LABELS[run] for run in runs}, med, args.device)
    if any(run.endswith("_lora") for run in runs):
        print("trained parameters: " + ", ".join(f"{r} {med[r]['trainable']:,.0f}" for r in runs))
    if "trl_rloo" in med:
        for who in runs:
            if who in ("ours_rloo", "ours_gae"):
                print_ratio(med, who, "trl_rloo", "samples_per_s")
    if "trl_rloo_lora" in med and "ours_rloo_lora" in med:
        print_ratio(med, "ours_rloo_lora", "trl_rloo_lora", "samples_per_s")
    if "ours_rloo" in med and "ours_rloo_lora" in med:
        print_ratio(med, "ours_rloo_lora", "ours_rloo", "samples_per_s")


def staleness_main(args) -> None:
    """The ``--reward-latency`` table: samples/s by ``max_staleness``, and the bound."""
    runs = (args.runs or ",".join(STALE_RUNS)).split(",")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lm_guided_cot.testing.fake_llm",
            f"--latency={args.reward_latency}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        args.reward_url = f"http://127.0.0.1:{int(server.stdout.readline())}/v1"
        with tempfile.TemporaryDirectory() as tmp:
            models = Path(tmp) / "models"
            build_model(models / "llama", args.layers, args.hidden)
            results = run_children(HERE, runs, args, models, tmp)
    finally:
        server.terminate()
        server.wait()
    med = medians(results, ("samples_per_s", "peak_mib", "live_mib", "trainable"))
    title = (
        f"PPO step (GAE) with a reward {args.reward_latency:g} s away (fake large LM, no "
        f"cache), tiny Llama ({args.layers} layers, hidden {args.hidden}), "
        f"{args.prompts_per_rollout} prompts x k={args.k} samples, {args.new_tokens} new "
        f"tokens, {args.epochs} epochs of minibatch {args.minibatch}, {args.rollouts - 1} timed "
        f"updates, {common_settings(args)}"
    )
    print_table(title, "samples_per_s", {run: LABELS[run] for run in runs}, med, args.device)
    for run in runs:
        if run != "stale_0" and "stale_0" in med:
            print(
                f"ratio {run}/stale_0: "
                f"{med[run]['samples_per_s'] / med['stale_0']['samples_per_s']:.2f}x"
            )


if __name__ == "__main__":
    main()
