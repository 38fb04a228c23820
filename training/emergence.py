"""The emergence curve: does h come to carry content as a model trains?

    python -m training.emergence runs/NAME --init data/models/faces32_v1 --every 2 --t-edits 400 --gammas 0.3 0.6 \
        --out diffstyle_lab/data/models/faces32/emergence.csv      # appends; one "run" column per run

For the starting weights (``--init``, step 0) and every snapshot in ``RUN/snapshots/step_*``: the
h-influence probe r(t) (:mod:`diffstyle_lab.stats.probe`, replacement, 16 pairs, 20-step grid) and a
quick ground-truth transfer score (24 pairs, 20 steps, normalised Slerp at each γ and t_edit
given). One CSV row per (snapshot, t) for the probe and per (snapshot, setting) for the transfer:
value = gap closed, value2 / value3 = layout-as-content / colours-as-style votes pooled over all
(pair, factor) cases (groundtruth_eval.py averages per pair first).
Rows already in the CSV are kept (resumable).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch

from diffstyle_lab.faces import groundtruth as G
from diffstyle_lab.stats import probe
from diffstyle_lab.models import load_model
from diffstyle_lab.sampling import InjectionConfig
from training import append_rows

FIELDS = ["run", "step", "kind", "t", "setting", "value", "value2", "value3"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--init", default="", help="the weights the run started from (scored as step 0)")
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="", help="the run's name in the CSV (default: the folder's name)")
    p.add_argument("--gammas", type=float, nargs="+", default=[0.3, 0.6, 1.0])
    p.add_argument("--t-edits", type=int, nargs="+", default=[200, 400])
    p.add_argument("--probe-pairs", type=int, default=16)
    p.add_argument("--pairs", type=int, default=24)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--every", type=int, default=1, help="score every k-th snapshot")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    name = a.name or Path(a.run).name
    done = set()
    if out.exists():
        with open(out) as fh:
            done = {int(r["step"]) for r in csv.DictReader(fh) if r["run"] == name}
    every = sorted(Path(a.run, "snapshots").glob("step_*"))
    snaps = every[a.every - 1::a.every] + ([every[-1]] if every and (len(every) % a.every) else [])
    todo = ([(0, Path(a.init))] if a.init else []) + [(int(s.name[5:]), s) for s in snaps]
    gt = G.GroundTruthPairs.make(max(a.pairs, a.probe_pairs), seed=90_000)
    gp, gs = gt.subset(range(a.probe_pairs)), gt.subset(range(a.pairs))
    for step, path in todo:
        if step in done:
            continue
        model = load_model(path)
        rows = [{"run": name, "step": step, "kind": "probe", "t": r["t"], "setting": "replace", "value": r["r"],
                 "value2": r["eps_ratio"], "value3": r["cos_h"]}
                for r in probe.h_influence(model, gp.content, gp.style, steps=a.steps)]
        cfgs = {f"t_edit={te} gamma={g}": InjectionConfig(gamma=g, t_edit=te, t_boost=min(200, te), steps=a.steps)
                for te in a.t_edits for g in a.gammas}
        sc = G.transfer_scores(model, gs, cfgs, steps=a.steps)
        for setting in ("floor", *cfgs):
            lay = np.nanmean(np.stack([sc[setting][k] for k in G.LAYOUT_FACTORS + (G.IDENTITY,)]))
            col = np.nanmean(np.stack([sc[setting][k] for k in G.COLOUR_FACTORS]))
            gap = G.gap_closed(sc[setting]["rmse"], sc["style"]["rmse"], sc["floor"]["rmse"])
            rows.append({"run": name, "step": step, "kind": "transfer", "t": "", "setting": setting, "value": gap,
                         "value2": lay, "value3": col})
        append_rows(out, FIELDS, rows)         # a snapshot's rows all at once: a resumed run never sees half of them
        print(f"step {step}: done", flush=True)


if __name__ == "__main__":
    main()
