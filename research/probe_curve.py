"""Probe curve of a fine-tuning run: r(t) (diffstyle_lab.stats.probe, replacement, 16 ground-truth
pairs, 20-step grid) for the starting weights and the run's snapshots.

    python -m research.probe_curve ft_eps docs/emergence/ft_eps.csv     # reads runs/ft_eps/snapshots
"""
import sys, csv, io, torch
torch.set_num_threads(1)
from diffstyle_lab.stats import probe
from diffstyle_lab.faces import groundtruth as G
from diffstyle_lab.fileio import write_text
from diffstyle_lab.models import load_model
run, out = sys.argv[1], sys.argv[2]
gt = G.GroundTruthPairs.make(16, seed=90_000)
steps = [0, 1000, 2000, 3000, 4000, 4500]
buf = io.StringIO()
w = csv.writer(buf); w.writerow(["run", "step", "t", "r", "eps_ratio", "cos_h"])
for s in steps:
    path = "diffstyle_lab/data/models/faces32" if s == 0 else f"runs/{run}/snapshots/step_{s:06d}"
    m = load_model(path)
    rows = probe.h_influence(m, gt.content, gt.style, steps=20)
    for r in rows: w.writerow([run, s, r["t"], round(r["r"], 5), round(r["eps_ratio"], 5), round(r["cos_h"], 4)])
    write_text(out, buf.getvalue())          # the rows so far, after each snapshot
    t, v = probe.peak(rows, 400, 800)
    print(run, s, "peak r in [400,800]:", round(v, 4), "at", t, "| overall", probe.peak(rows), flush=True)
