# Sourced by bin/gpu_check.sh and bin/gpu_bench.sh (from the repository root): the Python in PY,
# wheels from ./.whl when the machine lacks what NEEDS imports (an offline GPU machine), the
# project's src/ on the path, and a CUDA device, or exit.
PY="${PYTHON:-python3}"
if [ -d .whl ] && ! "$PY" -c "import $NEEDS" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/lmcot-site .whl/*.whl
  export PYTHONPATH="/tmp/lmcot-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}"
export LITELLM_LOCAL_MODEL_COST_MAP=True PYTHONUNBUFFERED=1
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || exit 1
