#!/usr/bin/env bash
# Build llama.cpp's native OpenAI-compatible server (llama-server) into a virtual environment.
# Usage: bash bin/build_llama_server.sh VENV
#
# The sources are those vendored in the llama-cpp-python sdist (pinned by version and sha256),
# fetched with pip; only the llama-server target is built (cmake and a C++ compiler needed).
# The binary is kept in a per-user build cache keyed on the version and this CPU's instruction
# set (it is built with -march=native), so a second venv on the same machine gets it at once.
# AMX is left out: where the CPU lists it but the VM does not let a process use its tiles
# (seen on a Firecracker guest), -march=native's AMX matmul crashed the server on its first
# batch (SIGSEGV in ggml_backend_amx_mul_mat); the AVX-512 or AVX2 kernels serve instead.
set -euo pipefail
VENV="${1:?usage: build_llama_server.sh VENV}"
VERSION="0.3.36"
SDIST_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
cpu="$(uname -m)-$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | sha256sum | cut -c1-12)"
RECIPE="no-amx"  # change when the build flags change, so no cached binary of other flags is reused
CACHE="${LMCOT_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lm-guided-cot/build}/llama-server-$VERSION-$RECIPE-$cpu"
target="$VENV/bin/llama-server"
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

if [ ! -x "$CACHE/llama-server" ]; then
  command -v cmake >/dev/null && command -v c++ >/dev/null \
    || { echo "cmake and a C++ compiler are needed to build llama-server" >&2; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "building llama.cpp's llama-server $VERSION (once per machine, ~10 min on 2 cores; log: $work/build.log)" >&2
  "$VENV/bin/python" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" \
    -d "$work" >"$work/build.log" 2>&1
  sdist="$work/llama_cpp_python-$VERSION.tar.gz"
  echo "$SDIST_SHA256  $sdist" | sha256sum -c --quiet - \
    || { echo "$sdist: sha256 differs from the pinned $SDIST_SHA256" >&2; exit 1; }
  tar -xzf "$sdist" -C "$work" "llama_cpp_python-$VERSION/vendor/llama.cpp"
  src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"
  # No UI assets (they would be downloaded), no curl, static: one self-contained binary.
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DCMAKE_C_FLAGS="$NO_AMX" -DCMAKE_CXX_FLAGS="$NO_AMX" >>"$work/build.log" 2>&1 \
    || { tail -20 "$work/build.log" >&2; echo "llama-server build failed" >&2; exit 1; }
  # the compile in the background, its progress (cmake's percentage) every 30 s
  cmake --build "$work/build" --target llama-server -j "$(nproc)" >>"$work/build.log" 2>&1 &
  build=$!
  started=$SECONDS
  while kill -0 "$build" 2>/dev/null; do
    sleep 5
    if (( (SECONDS - started) % 30 < 5 )); then
      done_pct="$(grep -o '^\[ *[0-9]*%\]' "$work/build.log" | tail -1 | tr -d '[] ' || true)"
      echo "  llama-server build: ${done_pct:-0%} after $((SECONDS - started)) s" >&2
    fi
  done
  wait "$build" || { tail -20 "$work/build.log" >&2; echo "llama-server build failed" >&2; exit 1; }
  echo "  llama-server built in $((SECONDS - started)) s" >&2
  mkdir -p "$CACHE"
  cp "$work/build/bin/llama-server" "$CACHE/.llama-server.tmp"
  mv "$CACHE/.llama-server.tmp" "$CACHE/llama-server"
fi
mkdir -p "$VENV/bin"
cp "$CACHE/llama-server" "$target.tmp" && mv "$target.tmp" "$target"
"$target" --version >/dev/null 2>&1 || { echo "$target does not run" >&2; exit 1; }
