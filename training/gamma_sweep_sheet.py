"""Notebook 04's γ sweep on more pairs and step counts, as one PNG per step count (issue 25 §3, judged by eye).

    python -m training.gamma_sweep_sheet MODEL [--pairs 4] [--steps 12 50] [--gammas 0 0.2 0.3 0.4 0.6 1] --out DIR

Rows: the first ``--pairs`` (content i, style i) pairs of the shipped sample faces (as the notebooks pair them);
columns: content, style, then the injection at each γ with the model's stored defaults otherwise. The inversions
use 50 steps (as notebook 04); ``--steps`` are the generation steps. Writes ``DIR/gamma_sweep_<steps>steps.png``
(33-px cells, 3× nearest-neighbour).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import diffstyle_lab as dl
from diffstyle_lab.fileio import atomic_write
from diffstyle_lab.images import grid
from diffstyle_lab.lab.loading import load_pairs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--steps", type=int, nargs="+", default=[12, 50])
    p.add_argument("--gammas", type=float, nargs="+", default=[0.0, 0.2, 0.3, 0.4, 0.6, 1.0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    m = dl.load_model(a.model)
    content, style, _, _ = load_pairs(m, a.pairs, None, None)
    ci, si = (dl.ddim_invert(m, x, steps=50, progress=False) for x in (content, style))
    cfg = dl.InjectionConfig.for_model(m)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    for steps in a.steps:
        cells = []
        for i in range(len(content)):
            cells += [content[i], style[i]]
            cells += [dl.inject(m, ci.select([i]), si.select([i]), cfg, gamma=g, steps=steps, progress=False).images[0]
                      for g in a.gammas]
        img = grid(torch.stack([c.float().cpu() for c in cells]), nrow=2 + len(a.gammas))
        img = img.resize((img.width * 3, img.height * 3), 0)
        path = Path(a.out) / f"gamma_sweep_{steps}steps.png"
        atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
        print(f"wrote {path} (columns: content, style, γ = {', '.join(f'{g:g}' for g in a.gammas)})")


if __name__ == "__main__":
    main()
