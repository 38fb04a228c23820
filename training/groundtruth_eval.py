"""Score content injection against ground-truth ideals (issue: the default model must show it).

    python -m training.groundtruth_eval MODEL_DIR --pairs 100 --gammas 0 0.2 0.3 0.4 0.6 1 \
        --t-edits 200 300 400 --t-boost 0 --out runs/gt/NAME.json
    python -m training.groundtruth_eval MODEL_DIR --summary      # writes MODEL_DIR/summary.json

A thin command line over :mod:`diffstyle_lab.faces.groundtruth_summary`, which says what is scored (RMSE to
the ideal, gap closed, factor-match rates, background error; baselines: the style image, 0.7·style +
0.3·content, Reinhard) and with which intervals (the verdict engine, :mod:`diffstyle_lab.stats.verdicts`).
50 inversion and 50 generation steps (the paper's), normalised Slerp.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from diffstyle_lab import fileio
from diffstyle_lab.faces import groundtruth_summary as S
from diffstyle_lab.models import load_model


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--seed", type=int, default=90_000)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--gammas", type=float, nargs="+", default=[0.0, 0.2, 0.3, 0.4, 0.6, 1.0])
    p.add_argument("--t-edits", type=int, nargs="+", default=[400])
    p.add_argument("--t-boost", type=int, default=None, help="default: min(200, t_edit)")
    p.add_argument("--method", default="normalised_slerp")
    p.add_argument("--calibrate", action="store_true", help="the paper's calibration (Eq. 9) with --omega")
    p.add_argument("--omega", type=float, default=0.3)
    p.add_argument("--upright", action="store_true", help="upright pairs: content differs in identity only")
    p.add_argument("--summary", action="store_true",
                   help="score both pair sets at the model's stored defaults and write MODEL/summary.json "
                        "(the notebooks read it); the sweep options are then ignored")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="", help="the sweep's JSON (required unless --summary)")
    return p


def main(argv=None):
    p = parser()
    a = p.parse_args(argv)
    if not a.summary and not a.out:
        p.error("--out is required (or --summary to write MODEL/summary.json)")
    torch.set_num_threads(a.threads)
    t0 = time.time()
    model = load_model(a.model)
    if a.summary:
        target, out = S.write_summary(model, a.model, a.pairs, a.seed, a.steps, started=t0)
        print("\n".join(S.summary_lines(out)))
        print(f"wrote {target} in {out['seconds']} s")
        return
    cfgs = S.sweep_configs(a.t_edits, a.gammas, a.t_boost, a.steps, a.method, a.calibrate, a.omega)
    out = S.sweep_record(model, a.model, cfgs, a.pairs, a.seed, a.steps, a.upright, a.method, a.calibrate, a.omega,
                         started=t0)
    print("\n".join(S.sweep_lines(out["rows"])))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    fileio.write_json(a.out, out, indent=1)
    print(f"wrote {a.out} in {out['seconds']} s")


if __name__ == "__main__":
    main()
