"""GPU: a T5 of FLAN-T5-large's shape (random weights, bf16, ZeRO 2): tokens/s and MFU.

The model: d_model 1024, 24 encoder + 24 decoder layers, d_ff 2816, gated-gelu, 16 heads of
64, vocab 32128, untied head (FLAN-T5-large's config; ~783M parameters), built from the config
(no download), with a character-level tokenizer of 32128 ids (every id decodes, so sampled
rationales of random weights decode too). Two runs on one CUDA device under
DeepSpeed ZeRO 2, ``bf16-mixed``:
  1. distillation on synthetic rationales (``bin/gpu_check.py``'s data): tokens/s over the
     timed steps (prompt + target tokens, padding left out) and MFU;
  2. PPO (GAE, scripted reward): samples/s of whole steps, and the update phase alone
     (``_minibatch_step``, timed with CUDA synchronised around it): tokens/s and MFU.
MFU = model FLOPs / time / peak, model FLOPs = 6 x (encoder parameters x encoder tokens +
decoder parameters x decoder tokens) (forward and backward; the embedding and the LM head
counted with the decoder, attention's own FLOPs left out), peak = ``--peak_tflops`` (default
989: H200 SXM dense bf16). ``--tiny --device cpu`` runs the same code with a small T5 on a
CPU, to check it. Usage: python bin/gpu_large.py [--out DIR] [--steps N] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning as L
import torch
from gpu_check import VowelShare, write_data  # bin/gpu_check.py
from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

from lm_guided_cot.data.targets import IGNORE_INDEX
from lm_guided_cot.datamodules import HotpotQADataModule
from lm_guided_cot.stages import DistillationModule, PPOModule

LARGE = dict(d_model=1024, num_layers=24, num_decoder_layers=24, d_ff=2816, num_heads=16)
TINY = dict(d_model=64, num_layers=2, num_decoder_layers=2, d_ff=128, num_heads=4)


def build(folder: Path, tiny: bool) -> dict[str, int]:
    """Save the model; its parameter counts by stack."""
    config = T5Config(
        **(TINY if tiny else LARGE),
        d_kv=64 if not tiny else 16,
        feed_forward_proj="gated-gelu",
        vocab_size=32128,
        tie_word_embeddings=False,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config)
    model.save_pretrained(folder)
    tokenizer(config.vocab_size).save_pretrained(folder)
    embed = model.shared.weight.numel()
    encoder = sum(p.numel() for p in model.encoder.parameters()) - embed
    total = sum(p.numel() for p in model.parameters())
    return {"total": total, "encoder": encoder, "decoder": total - encoder}


def tokenizer(size: int) -> PreTrainedTokenizerFast:
    """Characters as tokens (printable ASCII), the rest of the ids as placeholder tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    specials = ["<pad>", "</s>", "<unk>"]
    chars = [chr(c) for c in range(32, 127)]
    vocab = {t: i for i, t in enumerate(specials + chars)}
    vocab.update({f"<x{i}>": i for i in range(len(vocab), size)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


class Clock(L.Callback):
    """Per training batch: the time at its end (after the device finished) and its tokens."""

    def __init__(self, device: str) -> None:
        self.device, self.rows = device, []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.device == "cuda":
            torch.cuda.synchronize()
        tokens = (int(batch["attention_mask"].sum()), 0)
        if "labels" in batch:
            tokens = (tokens[0], int((batch["labels"] != IGNORE_INDEX).sum()))
        self.rows.append((time.perf_counter(), *tokens))


def mfu(params: dict[str, int], enc_tokens: int, dec_tokens: int, seconds: float, peak: float):
    flops = 6 * (params["encoder"] * enc_tokens + params["decoder"] * dec_tokens)
    return flops / seconds / (peak * 1e12)


def trainer(args, steps: int, clock: Clock, root: Path) -> L.Trainer:
    cuda = args.device == "cuda"
    strategy = "auto"
    if cuda:
        from lightning.pytorch.strategies import DeepSpeedStrategy

        strategy = DeepSpeedStrategy(stage=2)
    return L.Trainer(
        accelerator="gpu" if cuda else "cpu",
        devices=1,
        strategy=strategy,
        precision="bf16-mixed" if cuda else "32-true",
        max_steps=steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        default_root_dir=str(root),
        callbacks=[clock],
    )


def distill(args, model: Path, params: dict[str, int], data: Path, rationales: Path) -> dict:
    dm = HotpotQADataModule(
        tokenizer=str(model),
        train=str(data),
        batch_size=args.batch_size,
        prompt={"max_tokens": 256},
        rationales={"dir": str(rationales)},
        max_target_tokens=96,
        cache_dir=str(args.out / "hf"),
    )
    module = DistillationModule(model=str(model), learning_rate=1e-4, eval_every_n_epochs=0)
    module.on_fit_end = lambda: None  # no export: not part of a step
    clock = Clock(args.device)
    trainer(args, args.steps, clock, args.out).fit(module, datamodule=dm)
    warm = 2  # the first steps (allocation, kernel choice) are not timed
    (t0, _, _), rest = clock.rows[warm - 1], clock.rows[warm:]
    seconds = rest[-1][0] - t0
    enc, dec = sum(r[1] for r in rest), sum(r[2] for r in rest)
    return {
        "tokens_per_s": (enc + dec) / seconds,
        "mfu": mfu(params, enc, dec, seconds, args.peak_tflops),
        "timed_steps": len(rest),
        "peak_gib": _peak(args.device),
    }


def ppo(args, model: Path, params: dict[str, int], data: Path) -> dict:
    dm = HotpotQADataModule(
        tokenizer=str(model),
        train=str(data),
        batch_size=args.batch_size // 2,
        prompt={"max_tokens": 256},
        cache_dir=str(args.out / "hf"),
    )
    module = PPOModule(
        model=str(model),
        reward=VowelShare(),
        learning_rate=1e-5,
        ppo={
            "rollout": {"max_new_tokens": 64},
            "samples_per_question": 2,
            "ppo_epochs": 2,
            "minibatch_size": args.batch_size,
        },
        num_logged_examples=0,
    )
    module.on_fit_end = lambda: None
    updates = []  # (seconds, encoder tokens, decoder tokens) of each minibatch step
    original = PPOModule._minibatch_step

    def timed(self, roll, mb, optimizer, stats):
        if args.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        original(self, roll, mb, optimizer, stats)
        if args.device == "cuda":
            torch.cuda.synchronize()
        enc, dec = int(roll.attention_mask[mb].sum()), int(roll.mask[mb].sum())
        updates.append((time.perf_counter() - start, enc, dec))

    PPOModule._minibatch_step = timed
    clock = Clock(args.device)
    optimizer_steps = 2 * 1  # ppo_epochs x (batch_size rationales / minibatch batch_size)
    trainer(args, args.ppo_steps * optimizer_steps, clock, args.out).fit(module, datamodule=dm)
    PPOModule._minibatch_step = original
    timed_updates = updates[2 * optimizer_steps :]  # the first two rollouts' not timed
    seconds = sum(u[0] for u in timed_updates)
    enc, dec = sum(u[1] for u in timed_updates), sum(u[2] for u in timed_updates)
    steps = clock.rows[2:]
    samples = (len(steps) - 1) * args.batch_size
    return {
        "samples_per_s": samples / (steps[-1][0] - steps[0][0]),
        "update_tokens_per_s": (enc + dec) / seconds,
        "update_mfu": mfu(params, enc, dec, seconds, args.peak_tflops),
        "update_share_of_step": seconds / (clock.rows[-1][0] - clock.rows[1][0]),
        "peak_gib": _peak(args.device),
    }


def _peak(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/gpu_large"))
    parser.add_argument("--steps", type=int, default=30, help="distillation optimizer steps")
    parser.add_argument("--ppo_steps", type=int, default=8, help="PPO rollouts")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--peak_tflops", type=float, default=989.0)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a small T5 (to check on a CPU)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"torch {torch.__version__}, {name}, lightning {L.__version__}", flush=True)
    model = args.out / "t5-large-shape"
    params = build(model, args.tiny)
    data, rationales = write_data(args.out, n=max(64, args.batch_size * 4))
    report = {"device": name, "params": params, "peak_tflops": args.peak_tflops}
    report["distill"] = distill(args, model, params, data, rationales)
    print("distill", json.dumps(report["distill"]), flush=True)
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    report["ppo"] = ppo(args, model, params, data)
    print("ppo", json.dumps(report["ppo"]), flush=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
