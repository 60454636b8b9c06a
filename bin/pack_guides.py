"""Copy a recipe's two adapter exports into docs/results/<benchmark>/guides/ as the repository
commits them: weights cast to fp16 (half the size; the evaluation of docs/results.md reads these
folders), a stage-2 adapter's base (its stage-1 export folder) rewritten to the committed stage-1
folder (../kd, ../kd_768), and the model cards' usage pointing at the committed folders.

    python bin/pack_guides.py hotpotqa [--runs runs/recipe] [--dest docs/results/hotpotqa/guides]
    python bin/pack_guides.py 2wikimultihopqa --guides kd_rl_60=ppo_long  # one more stage-2 guide
    python bin/pack_guides.py 2wikimultihopqa --guides kd_768=distill_768  # or stage-1 guide
"""

from __future__ import annotations

import argparse
import json
import re
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


def committed_base(export: Path, current: str, dest: Path) -> str | None:
    """A stage-2 adapter's base, rewritten to the committed folder of its stage-1 guide.

    A stage-1 export names the base model ("smollm2"), which stays (None). A stage-2 export names
    the folder it started from: a committed guide, or a stage-1 export whose committed guide's
    card records that folder as its export_dir (commit the stage-1 guide first).
    """
    start = (export / current).resolve() if current else None
    if start is None or not start.is_dir():
        return None
    if start.parent == dest.resolve():
        return f"../{start.name}"
    for card in sorted(dest.glob("*/README.md")):
        recorded = re.search(r"^\s*export_dir: (\S+)$", card.read_text(encoding="utf-8"), re.M)
        if recorded and Path(recorded.group(1)).resolve() == start:
            return f"../{card.parent.name}"
    sys.exit(
        f"{export}: its stage-1 guide {start} is not committed under {dest} (no card there "
        "records it as its export_dir): pack the stage-1 guide first"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark")
    parser.add_argument("--runs", default="runs/recipe", help="the recipe's run folder")
    parser.add_argument("--dest", default=None, help="default: docs/results/BENCHMARK/guides")
    parser.add_argument(
        "--guides",
        nargs="+",
        default=GUIDES,
        help="NAME=STAGE_FOLDER each; a stage-2 adapter is rebased on its committed stage-1 guide",
    )
    args = parser.parse_args()
    dest = Path(args.dest or f"docs/results/{args.benchmark}/guides")
    for spec in args.guides:
        name, _, stage = spec.partition("=")
        if not name or not stage:
            sys.exit(f"--guides {spec!r}: write NAME=STAGE_FOLDER, e.g. kd_rl=ppo")
        export = Path(args.runs, args.benchmark, stage, "export")
        config = export / "adapter_config.json"
        current = (
            json.loads(config.read_text())["base_model_name_or_path"] if config.is_file() else ""
        )
        pack(export, dest / name, committed_base(export, current, dest))


if __name__ == "__main__":
    main()
