#!/usr/bin/env bash
# The prepared GPU check (issue 14 §3): one run, ≤ 8 min, on a lent H100/H200 machine.
#
#   1. here, on a machine with PyPI:   bash benchmarks/gpu_check.sh --prepare
#        downloads, into .whl/ (git-ignored), the wheels the GPU machine's image lacks (diffusers,
#        papermill, jupytext, ipykernel, nbconvert, ipywidgets and their dependencies, for its
#        Python 3.12); the image already has CUDA PyTorch, numpy, pandas, matplotlib, safetensors…
#   2. on the GPU machine (nothing can be fetched there), through the device tool:
#        run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
#      The wheels it lacks are installed with --no-deps into a temp folder on PYTHONPATH (faster
#      than carrying a venv: the carried .venv here is a CPU build of torch). On a GPU machine
#      that can reach PyPI instead: TORCH_SPEC=torch bash setup.sh, then PYTHON=.venv/bin/python.
#
# What it runs and writes under $OUT (default outputs/gpu_check): the card (nvidia-smi), the
# 256-px injection benchmark (benchmarks/bench_injection.py, DDPM-CelebA layout, random weights)
# at batch 1 and 8 — images/s for plain DDIM, injection and injection + calibration, and the
# ratio against the naive two-call path — and the notebooks' --quick set on the GPU with the
# per-notebook times. Files: gpu_check.txt (everything), bench_b1.txt, bench_b8.txt,
# notebooks.txt, notebooks_timings.json.
#
# CPU path (what tests/test_gpu_check.py runs): GPU_CHECK_CPU=1 — device cpu, a tiny random
# U-Net, 4 steps, batch 1 and 2, and only the notebooks in $GPU_CHECK_NOTEBOOKS (default 01).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "${1:-}" = "--prepare" ]; then
  PIP=${PIP:-.venv/bin/python -m pip}
  rm -rf .whl && mkdir -p .whl
  DIFFUSERS=$(.venv/bin/python -c 'import diffusers; print(diffusers.__version__)')
  $PIP download -q -d .whl --only-binary=:all: --python-version 3.12 \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform any "diffusers==$DIFFUSERS" papermill jupytext ipykernel nbconvert ipywidgets nbformat || exit 1
  # what the GPU image already holds (device/KINDS.md): not carried
  for n in numpy pillow hf_xet pyyaml regex safetensors pygments tzdata huggingface_hub filelock fsspec \
           requests urllib3 idna certifi charset_normalizer packaging jinja2 markupsafe pyparsing six \
           python_dateutil typing_extensions tqdm psutil attrs click rich markdown_it_py mdurl; do
    rm -f .whl/"$n"-*.whl
  done
  echo "gpu_check --prepare: $(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/ (carry it: carry=[\".whl\"])"
  exit 0
fi

OUT=${OUT:-outputs/gpu_check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG="$OUT/gpu_check.txt"
: >"$LOG"
say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }
T0=$(date +%s)
FAILED=0
step() {  # step NAME FILE CMD… : run, tee into FILE and the log, time it; a failure is noted, the rest goes on
  local name=$1 file=$2; shift 2
  local t=$(date +%s)
  say "▶ $name"
  "$@" 2>&1 | tee "$file" >>"$LOG"
  local rc=${PIPESTATUS[0]}
  say "  $name: exit $rc, $(( $(date +%s) - t )) s"
  [ "$rc" = 0 ] || FAILED=1
  return 0
}

SITE=""; NB_OUT=""
trap 'rm -rf ${SITE:+"$SITE"} ${NB_OUT:+"$NB_OUT"}' EXIT
PY=${PYTHON:-python3}
if [ "${GPU_CHECK_CPU:-0}" = 1 ]; then
  PY=${PYTHON:-.venv/bin/python}
  DEVICE=cpu; BENCH="--model tiny --steps 4 --repeat 1"; BATCHES="1 2"
else
  DEVICE=cuda; BENCH="--model ddpm256 --steps 10 --repeat 2"; BATCHES="1 8"
fi

# the packages the machine lacks, from the carried wheels
if ! "$PY" -c "import diffusers, papermill, jupytext, ipykernel, nbconvert" 2>/dev/null; then
  [ -d .whl ] || { say "gpu_check: $PY lacks diffusers/papermill and there is no .whl/: run 'bash benchmarks/gpu_check.sh --prepare' on a machine with PyPI and carry .whl"; exit 1; }
  SITE=$(mktemp -d /tmp/gpu_check_site.XXXX)
  t=$(date +%s)
  "$PY" - "$SITE" <<'EOF' 2>&1 | tee -a "$LOG"
import importlib.metadata as md, pathlib, re, subprocess, sys
site = sys.argv[1]
wheels = sorted(pathlib.Path(".whl").glob("*.whl"))
def dist(w):
    return re.sub(r"[-_.]+", "-", w.name.split("-")[0]).lower()
def have(name):
    try:
        md.version(name)
        return True
    except md.PackageNotFoundError:
        return False
todo = [str(w) for w in wheels if not have(dist(w))]
print(f"installing {len(todo)} of {len(wheels)} carried wheels into {site} (the others are on the machine)")
subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", site, *todo], check=True)
EOF
  export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  export PATH="$SITE/bin:$PATH"
  say "carried wheels installed in $(( $(date +%s) - t )) s"
else
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi
export DIFFSTYLE_LAB_DEVICE=$DEVICE HF_HUB_OFFLINE=1

say "gpu_check on $(hostname), device $DEVICE, $("$PY" -c 'import sys, torch; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, cuda {torch.cuda.is_available()}", (torch.cuda.get_device_name() if torch.cuda.is_available() else ""))')"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee -a "$LOG"
fi

for b in $BATCHES; do
  # shellcheck disable=SC2086
  step "256-px injection benchmark, batch $b" "$OUT/bench_b$b.txt" "$PY" benchmarks/bench_injection.py $BENCH --batch "$b" --device "$DEVICE"
done

NB_OUT=$(mktemp -d /tmp/gpu_check_nb.XXXX)
NB_ARGS=(--quick --no-html --jobs 1 --out "$NB_OUT")
if [ "${GPU_CHECK_CPU:-0}" = 1 ]; then
  "$PY" - "$NB_OUT/tiny" <<'EOF'
import pathlib, sys
from diffstyle_lab.fileio import write_json
from diffstyle_lab.models import DEFAULT_SCHEDULER, tiny_unet
folder = pathlib.Path(sys.argv[1])
tiny_unet(seed=1).save_pretrained(str(folder / "unet"))
(folder / "scheduler").mkdir()
write_json(folder / "scheduler" / "scheduler_config.json", DEFAULT_SCHEDULER, indent=None)
EOF
  # shellcheck disable=SC2206
  NB_ARGS+=(--only ${GPU_CHECK_NOTEBOOKS:-01} --model "$NB_OUT/tiny")
fi
step "notebooks --quick on $DEVICE" "$OUT/notebooks.txt" "$PY" -m diffstyle_lab.lab.run_notebooks "${NB_ARGS[@]}"
cp "$NB_OUT/timings.json" "$OUT/notebooks_timings.json" 2>/dev/null || say "no notebooks timings.json"

say "summary:"
grep -h "^summary:" "$OUT"/bench_b*.txt | tee -a "$LOG"
grep -h "^total:" "$OUT/notebooks.txt" | tee -a "$LOG"
say "gpu_check done in $(( $(date +%s) - T0 )) s; $([ $FAILED = 0 ] && echo 'all steps passed' || echo 'a step FAILED') → $OUT"
exit $FAILED
