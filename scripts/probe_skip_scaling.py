"""Diagnostic: the h-influence probe with every U-Net skip connection scaled by s (inference only).

    python scripts/probe_skip_scaling.py
"""
import torch, sys
torch.set_num_threads(1)
from diffstyle_lab.stats import probe
from diffstyle_lab.faces import groundtruth as G
import diffstyle_lab as dl
m = dl.load_default_model()
gt = G.GroundTruthPairs.make(16, seed=90_000)
def scale_skips(s):
    hs = []
    for ub in m.hooked.unet.up_blocks:
        def pre(mod, args, kwargs, s=s):
            if "res_hidden_states_tuple" in kwargs:
                kwargs = {**kwargs, "res_hidden_states_tuple": tuple(r * s for r in kwargs["res_hidden_states_tuple"])}
                return args, kwargs
            return (args[0], tuple(r * s for r in args[1])) + tuple(args[2:]), kwargs
        hs.append(ub.register_forward_pre_hook(pre, with_kwargs=True))
    return hs
for s in (1.0, 0.7, 0.4):
    hs = scale_skips(s)
    rows = probe.h_influence(m, gt.content, gt.style, steps=20)
    for h in hs: h.remove()
    print("skip scale", s, "peak r", probe.peak(rows, 400, 800), "overall", probe.peak(rows), flush=True)
