#!/usr/bin/env bash
# On a CUDA machine: both stages for a few steps under DeepSpeed ZeRO 2 and 3 with a tiny T5 and
# a tiny Llama (and PPO with LoRA adapters under ZeRO 2), then `lmcot export` of the ZeRO
# checkpoints; prints steps/s and peak GPU memory.
# Needs the project, deepspeed and a CUDA build of torch in the active Python
# (pip install -e ".[deepspeed]"); an offline machine can take wheels from ./.whl.
# Usage: bash bin/gpu_check.sh [--steps N] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
NEEDS="deepspeed, datasets, litellm, peft"
source bin/_gpu_env.sh
exec "$PY" bin/gpu_check.py "$@"
