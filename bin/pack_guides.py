"""Copy a recipe's two adapter exports into docs/results/<benchmark>/guides/ as the repository
commits them: weights cast to fp16 (half the size; the evaluation of docs/results.md reads these
folders), a stage-2 adapter's base (its stage-1 export folder) rewritten to the committed stage-1
folder (../kd), and the model cards' usage pointing at the committed folders.

    python bin/pack_guides.py hotpotqa [--runs runs/recipe] [--dest docs/results/hotpotqa/guides]
    python bin/pack_guides.py 2wikimultihopqa --guides kd_rl_60=ppo_long  # one more stage-2 guide
    python bin/pack_guides.py 2wikimultihopqa --guides kd_768=distill_768  # or stage-1 guide
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from lm_guided_cot.model_specs import set_adapter_base

WEIGHTS = "adapter_model.safetensors"
GUIDES = ("kd=distill", "kd_rl=ppo")  # NAME=the recipe's stage folder; kd is stage 1


def pack(export: Path, dest: Path, base: str | None) -> None:
    """Write ``export`` (a LoRA adapter folder) to ``dest`` in fp16, whole or not at all."""
    import torch
    from safetensors.torch import load_file, save_file

    if not (export / WEIGHTS).is_file():
        sys.exit(f"{export}: no {WEIGHTS}; is it a LoRA adapter export (export_adapter_only)?")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    shutil.copytree(export, tmp, dirs_exist_ok=True)
    weights = load_file(tmp / WEIGHTS)
    half = {k: v.to(torch.float16).contiguous() for k, v in weights.items()}
    save_file(half, tmp / WEIGHTS, metadata={"format": "pt"})
    if base is not None:
        set_adapter_base(tmp, base)
    card = tmp / "README.md"
    if card.is_file():
        text = card.read_text(encoding="utf-8")
        # The usage lines quote the export's folder (or THIS_FOLDER when the run gave no name);
        # the training configuration's export_dir, unquoted, stays as it was.
        for old in (f'"{export}"', f'"{export.resolve()}"', '"THIS_FOLDER"'):
            text = text.replace(old, f'"{dest}"')
        card.write_text(text, encoding="utf-8")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    size = (dest / WEIGHTS).stat().st_size / 2**20
    print(f"{export} -> {dest} ({size:.1f} MB of fp16 weights)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark")
    parser.add_argument("--runs", default="runs/recipe", help="the recipe's run folder")
    parser.add_argument("--dest", default=None, help="default: docs/results/BENCHMARK/guides")
    parser.add_argument(
        "--guides",
        nargs="+",
        default=GUIDES,
        help="NAME=STAGE_FOLDER each; an adapter on a stage-1 export is rebased on the committed kd",
    )
    args = parser.parse_args()
    dest = Path(args.dest or f"docs/results/{args.benchmark}/guides")
    for spec in args.guides:
        name, _, stage = spec.partition("=")
        if not name or not stage:
            sys.exit(f"--guides {spec!r}: write NAME=STAGE_FOLDER, e.g. kd_rl=ppo")
        export = Path(args.runs, args.benchmark, stage, "export")
        # a stage-2 export names its stage-1 export folder as its base; a stage-1 export names
        # the base model ("smollm2"), which stays
        config = export / "adapter_config.json"
        current = (
            json.loads(config.read_text())["base_model_name_or_path"] if config.is_file() else ""
        )
        base = "../kd" if current and (export / current).is_dir() else None
        pack(export, dest / name, base)


if __name__ == "__main__":
    main()
