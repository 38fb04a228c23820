"""Diagnostic: the h-influence probe with every U-Net skip connection scaled by s (inference only).

    python -m research.probe_skip_scaling
"""
import torch
torch.set_num_threads(1)
from diffstyle_lab.stats import probe
from diffstyle_lab.faces import groundtruth as G
import diffstyle_lab as dl
m = dl.load_default_model()
gt = G.GroundTruthPairs.make(16, seed=90_000)
for s in (1.0, 0.7, 0.4):
    hu = m.hooked
    with hu.hooks(**{f"skips[{k}]": (lambda r, s=s: tuple(x * s for x in r)) for k in range(len(hu.unet.up_blocks))}):
        rows = probe.h_influence(m, gt.content, gt.style, steps=20)
    print("skip scale", s, "peak r", probe.peak(rows, 400, 800), "overall", probe.peak(rows), flush=True)
