#!/usr/bin/env bash
# One prepared GPU session, about 15 minutes on one H200 (each part under its own time limit;
# a part that fails or runs out is recorded and the next one still runs):
#   1. bin/gpu_check.sh: both stages under ZeRO 2 and 3 (and LoRA PPO under ZeRO 2), exports;
#   2. bin/gpu_bench.sh with 3 repeats: stage 1 against Seq2SeqTrainer, stage 2 against TRL;
#   3. bin/gpu_large.py: a T5 of FLAN-T5-large's shape (random weights, bf16, ZeRO 2),
#      distillation and PPO: tokens/s and the update phase's MFU (peak 989 TFLOP/s, H200 SXM
#      dense bf16).
# Needs what those scripts need (pip install -e ".[deepspeed,bench]", or wheels in ./.whl).
# Usage: bash bin/gpu_session.sh [OUT_DIR]   (results in OUT_DIR, default runs/gpu_session)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/gpu_session}"
NEEDS="deepspeed, datasets, litellm, peft, trl"
source bin/_gpu_env.sh
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt"
part() {  # name, seconds, then the command
  local name="$1" limit="$2"; shift 2
  local start=$SECONDS
  echo "== $name (limit ${limit} s)"
  timeout "$limit" "$@" > "$OUT/$name.txt" 2> "$OUT/$name.err" \
    || echo "$name failed or ran out (exit $?)" >> "$OUT/$name.txt"
  echo "$name took $(( SECONDS - start )) s" >> "$OUT/$name.txt"
  tail -n 25 "$OUT/$name.txt"
}
# 12.5 minutes at most, which leaves the machine's start inside a 15-minute lease
part gpu_check 210 bash bin/gpu_check.sh --steps 8 --out "$OUT/check"
part gpu_bench_distill 180 bash bin/gpu_bench.sh "$OUT/bench" 3 distill
# gpu_bench.sh's ppo part without the T5 row (no peer to compare it with), to fit the limit
part gpu_bench_ppo 200 "$PY" bin/bench_ppo.py --repeats 3 --device cuda \
  --runs ours_rloo,ours_gae,trl_rloo
part gpu_large 160 "$PY" bin/gpu_large.py --out "$OUT/large"
