#!/usr/bin/env bash
# On a CUDA machine: both benchmarks with gradient checkpointing off and on, tables to OUT_DIR.
# Needs the project, trl and a CUDA build of torch in the active Python (pip install -e
# ".[bench]"); an offline machine can take wheels from ./.whl (as bin/gpu_check.sh does).
# Usage: bash bin/gpu_bench.sh [OUT_DIR] [REPEATS] [PART...]  (parts: distill distill_gc ppo ppo_gc)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-runs/gpu_bench}"
REPEATS="${2:-3}"
shift $(( $# < 2 ? $# : 2 ))
PARTS="${*:-distill distill_gc ppo ppo_gc}"
NEEDS="trl, datasets"
source bin/_gpu_env.sh
mkdir -p "$OUT_DIR"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT_DIR/gpu.txt"
"$PY" -c "import torch, transformers, lightning, trl; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'lightning', lightning.__version__, 'trl', \
trl.__version__)" >> "$OUT_DIR/gpu.txt"
run() {  # name, then the command; a failure is recorded and the next one still runs
  local name="$1"; shift
  echo "== $name"
  timeout 300 "$PY" "$@" --device cuda > "$OUT_DIR/$name.txt" 2> "$OUT_DIR/$name.err" \
    || echo "$name failed (exit $?)" >> "$OUT_DIR/$name.txt"
  cat "$OUT_DIR/$name.txt"
}
# (bin/_bench.py runs one discarded child first on CUDA: a fresh machine's first is slow)
for part in $PARTS; do
  case "$part" in
    distill) run distill bin/bench_distill.py --repeats "$REPEATS" ;;
    distill_gc) run distill_gc bin/bench_distill.py --repeats "$REPEATS" --gradient_checkpointing ;;
    ppo) run ppo bin/bench_ppo.py --repeats "$REPEATS" ;;
    ppo_gc) run ppo_gc bin/bench_ppo.py --repeats "$REPEATS" --gradient_checkpointing \
      --runs ours_rloo,ours_gae,trl_rloo ;;
    *) echo "unknown part: $part" >&2; exit 2 ;;
  esac
done
