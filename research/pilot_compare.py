"""Compare training layouts on the content/style split (issue 3 §2): reconstruction PSNR, and on
content/style pairs whether injection moves the structure towards the content image while the
background stays the style image's. Usage: python -m research.pilot_compare runs/h4/model runs/h8/model"""
import sys

import torch

import diffstyle_lab as dl
from diffstyle_lab.faces import avatars
from diffstyle_lab.evaluate import metrics

torch.set_num_threads(1)
n = int(__import__("os").environ.get("PILOT_N", 32))
c, s, cf, sf = avatars.content_style_pairs(n, seed=777)
to_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
c, s = to_t(c), to_t(s)
for path in sys.argv[1:]:
    m = dl.load_model(path)
    ci = dl.ddim_invert(m, c, steps=50, progress=False)
    si = dl.ddim_invert(m, s, steps=50, progress=False)
    rec = dl.generate(m, ci.x_T, steps=50, progress=False)
    row = {"psnr50": metrics.psnr(rec, c).mean().item()}
    for gamma in (0.0, 0.3, 0.6, 1.0):
        out = dl.reverse(m, si.x_T, ci, dl.InjectionConfig(gamma=gamma, t_boost=0, steps=50), progress=False)
        sc, ss = metrics.structure_similarity(out, c), metrics.structure_similarity(out, s)
        bg = metrics.border_colour(out)
        bg_style = (metrics.colour_distance(bg, metrics.border_colour(s)) <
                    metrics.colour_distance(bg, metrics.border_colour(c))).float().mean().item()
        row[f"g{gamma}"] = f"struct(c)={sc.mean():.3f} struct(s)={ss.mean():.3f} content-closer={(sc > ss).float().mean():.2f} bg-from-style={bg_style:.2f}"
    print(path, row, flush=True)
