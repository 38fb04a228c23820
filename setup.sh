#!/usr/bin/env bash
# Set up diffstyle_lab in ./.venv (idempotent). Usage: bash setup.sh
#   TORCH_SPEC   the torch requirement to install first (default torch==2.13.0: the CPU wheel on
#                these machines; on a CUDA machine, e.g. TORCH_SPEC="torch" or use the PyTorch index)
#   PYTHON       the interpreter to build the venv from (default python3)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned, so nothing later pulls a different (multi-GB CUDA) build
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[notebooks,data,sd,scale,dev]"
.venv/bin/python -m ipykernel install --user --name diffstyle_lab --display-name "diffstyle_lab" >/dev/null
echo "diffstyle_lab is set up in $(pwd)/.venv"
