#!/usr/bin/env bash
# The prepared GPU training run (issue 19): candidate default models in lock-step on a lent H100/H200.
#
#   1. here, on a machine with PyPI:   bash training/gpu_train.sh --prepare
#        downloads into .whl/ (git-ignored) the wheels the GPU image lacks, for its Python 3.12:
#        diffusers (the venv's version), the face renderer (dicebear-*, resvg-py) and their needs.
#   2. on the GPU machine, through the device tool (nothing can be fetched there):
#        run(command="bash training/gpu_train.sh", carry=[".whl"], timeout_s=560)
#      It renders the faces there (every core), trains every candidate of training/gpu_train.py for
#      GPU_TRAIN_BUDGET seconds (default 400), and leaves under $OUT: <candidate>.safetensors (EMA
#      weights, fp16), gpu_train.json and gpu_train.log. Back here:
#        python -m training.gpu_import /work/.device/... runs/gpu   (diffusers model folders)
#
# CPU path (tests/test_gpu_train.py): GPU_TRAIN_CPU=1 — the venv's python, device cpu, --tiny.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "${1:-}" = "--prepare" ]; then
  PY=${PYTHON:-.venv/bin/python}
  rm -rf .whl && mkdir -p .whl
  v() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform any -d .whl "diffusers==$(v diffusers)" "dicebear-core==$(v dicebear-core)" \
      "dicebear-styles==$(v dicebear-styles)" "dicebear-schema==$(v dicebear-schema)" "resvg-py==$(v resvg-py)" \
      "jsonschema==$(v jsonschema)" "jsonschema-specifications==$(v jsonschema-specifications)" \
      "referencing==$(v referencing)" "rpds-py==$(v rpds-py)" importlib_metadata || exit 1
  echo "gpu_train --prepare: $(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/ (carry it: carry=[\".whl\"])"
  exit 0
fi

OUT=${OUT:-outputs/gpu_train}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ "${GPU_TRAIN_CPU:-0}" = 1 ]; then
  PY=${PYTHON:-.venv/bin/python}
  ARGS=(--device cpu --tiny --workers 2)
else
  PY=${PYTHON:-python3}
  ARGS=(--device cuda --budget "${GPU_TRAIN_BUDGET:-400}")
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
if ! "$PY" -c "import diffusers, dicebear, resvg_py" 2>/dev/null; then
  [ -d .whl ] || { echo "gpu_train: $PY lacks diffusers or the face renderer and there is no .whl/: run 'bash training/gpu_train.sh --prepare' where PyPI is reachable, then carry .whl"; exit 1; }
  SITE=$(mktemp -d /tmp/gpu_train_site.XXXX)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .whl/*.whl || exit 1
  export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu_train.log"
# shellcheck disable=SC2086
"$PY" -m training.gpu_train --out "$OUT" "${ARGS[@]}" ${GPU_TRAIN_ARGS:-} 2>&1 | tee -a "$OUT/gpu_train.log"
exit "${PIPESTATUS[0]}"
