#!/usr/bin/env bash
# On a CUDA machine: both stages for a few steps under DeepSpeed ZeRO 2 and 3 with a tiny T5 and
# a tiny Llama, then `lmcot export` of the ZeRO checkpoints; prints steps/s and peak GPU memory.
# Needs the project, deepspeed and a CUDA build of torch in the active Python
# (pip install -e ".[deepspeed]"); an offline machine can take wheels from ./.whl.
# Usage: bash bin/gpu_check.sh [--steps N] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ -d .whl ] && ! "$PY" -c "import deepspeed, datasets, litellm" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/lmcot-site .whl/*.whl
  export PYTHONPATH="/tmp/lmcot-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}"
export LITELLM_LOCAL_MODEL_COST_MAP=True PYTHONUNBUFFERED=1
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
exec "$PY" bin/gpu_check.py "$@"
