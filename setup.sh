#!/usr/bin/env bash
# Set up diffstyle_lab in ./.venv (idempotent). Usage: bash setup.sh [--browser]
#   --browser    also what the real-browser test needs (tests/test_browser.py): Debian's chromium
#                through apt (as root, or with sudo) and the [browser] extra (jupyterlab, playwright;
#                no `playwright install`: the test drives /usr/bin/chromium)
#   TORCH_SPEC   the torch requirement to install first (default torch==2.13.0: the CPU wheel on
#                these machines; on a CUDA machine, e.g. TORCH_SPEC="torch" or use the PyTorch index)
#   PYTHON       the interpreter to build the venv from (default python3)
set -euo pipefail
cd "$(dirname "$0")"
BROWSER=0
for a in "$@"; do
  case "$a" in
    --browser) BROWSER=1 ;;
    *) echo "setup.sh: unknown option $a (use --browser or nothing)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned, so nothing later pulls a different (multi-GB CUDA) build
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="notebooks,data,sd,scale,dev"
if [ "$BROWSER" = 1 ]; then
  EXTRAS="$EXTRAS,browser"
  if [ ! -x /usr/bin/chromium ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    command -v apt-get >/dev/null || { echo "setup.sh --browser: no apt-get here; install Chromium yourself and set \$CHROMIUM" >&2; exit 1; }
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
fi
.venv/bin/python -m pip install -q -e ".[$EXTRAS]"
.venv/bin/python -m ipykernel install --user --name diffstyle_lab --display-name "diffstyle_lab" >/dev/null
echo "diffstyle_lab is set up in $(pwd)/.venv"
