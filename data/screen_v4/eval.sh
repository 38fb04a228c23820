#!/usr/bin/env bash
# Screen evaluation: import a seed's weights (final or snapshots), give each v3's stored defaults, score both pair
# sets at those defaults on PAIRS held-back pairs (summary.json), one thread each.
# usage: eval.sh SEED PAIRS [names...]
set -euo pipefail
cd "$(dirname "$0")/../.."
S=$1; P=$2; shift 2
.venv/bin/python -m training.gpu_import data/screen_v4/seed$S runs/screen/models$S >/dev/null
for n in "$@"; do
  M=runs/screen/models$S/$n
  cp diffstyle_lab/data/models/faces32/diffstyle_lab.json $M/
  [ -f $M/summary.json ] && [ "$(python3 -c "import json;print(json.load(open('$M/summary.json'))['sets']['posed']['pairs'])")" = "$P" ] && continue
  OMP_NUM_THREADS=1 .venv/bin/python -m training.groundtruth_eval $M --summary --pairs $P --seed 90000 --steps 50 --threads 1 | sed "s|^|$S/$n |"
done
