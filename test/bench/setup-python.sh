#!/usr/bin/env bash
# setup-python.sh VENV: a Python venv with PyTorch (CPU) for the benchmark's
# peer, installed only from this machine's local wheel mirror (pip's configuration names it;
# see `pip config list`). Reused when it already imports both. Never a product dependency.
set -euo pipefail
VENV=${1:?usage: setup-python.sh VENV}
PY=$(command -v python3.11 || command -v python3)
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  exit 0
fi
"$PY" -m venv "$VENV"
if ! PIP_NO_INPUT=1 "$VENV/bin/python" -m pip install --disable-pip-version-check --only-binary=:all: \
  torch >"$VENV/pip-install.log" 2>&1; then
  tail -n 20 "$VENV/pip-install.log" >&2
  echo "setup-python: could not install torch from the local mirror (log: $VENV/pip-install.log)" >&2
  exit 2
fi
