"""Where does a model keep colour, and where content? The colour-in-h probe next to the h-influence probe.

    python -m training.colour_probe data/models/faces32_v1 data/models/faces32 --pairs 16 --steps 20 \
        --out docs/emergence/colour_probe.csv

For each model and grid t, on posed faces (``--upright``: upright faces) and rows keyed by ``probe``:
- ``content_in_h``: :func:`diffstyle_lab.stats.probe.h_influence` between a face and another identity in the
  same colours (how much of a *content* difference swapping h alone brings; want high);
- ``colour_in_h``: :func:`diffstyle_lab.stats.probe.colour_in_h`, the same between a face and its recoloured
  twin (how much of a *colour* difference h alone brings; the paper's split wants low);
- ``colour_skip_L``: :func:`diffstyle_lab.stats.probe.skip_influence` with the twin, the skips into up block L
  swapped (L = 0 next to h): where the decoder reads colour from.
Prints a summary per model (mean of r over t ≥ ``--t-min``) and appends the rows to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from diffstyle_lab.faces import avatars as A
from diffstyle_lab.stats import probe
from diffstyle_lab.models import load_model
from training import append_rows

FIELDS = ["model", "set", "probe", "t", "r"]


def probe_faces(n: int, seed: int, size: int, pose: bool):
    """``n`` faces, their recoloured twins, and other identities in the faces' own colours (tensors)."""
    rng = np.random.default_rng(seed)
    fs = [A.random_factors(rng, pose=pose) for _ in range(n)]
    twins = [A.same_identity_other_colours(f, rng) for f in fs]
    others = [A.other_identity_same_colours(f, rng, pose=pose) for f in fs]
    return tuple(A.to_tensor(np.stack([A.render(f, size) for f in group])) for group in (fs, twins, others))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--names", nargs="*", default=None, help="one name per model (default: folder names)")
    p.add_argument("--pairs", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=70_000)
    p.add_argument("--upright", action="store_true", help="upright faces (identity only) instead of posed ones")
    p.add_argument("--t-min", type=int, default=400, help="summarise over t >= this (the injection window)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="")
    a = p.parse_args(argv)
    if a.names and len(a.names) != len(a.models):
        p.error(f"--names: {len(a.names)} names for {len(a.models)} models")
    torch.set_num_threads(a.threads)
    names = a.names or [Path(m).name for m in a.models]
    rows = []
    for name, path in zip(names, a.models):
        model = load_model(path)
        faces, twins, others = probe_faces(a.pairs, a.seed, model.sample_size, pose=not a.upright)
        found = [("content_in_h", r) for r in probe.h_influence(model, others, faces, a.steps)]
        found += [("colour_in_h", r) for r in probe.colour_in_h(model, faces, twins, a.steps)]
        found += [(f"colour_skip_{r['level']}", r) for r in probe.skip_influence(model, twins, faces, a.steps)
                  if r["level"] != "h"]
        set_ = "upright" if a.upright else "posed"
        mine = [{"model": name, "set": set_, "probe": k, "t": r["t"], "r": round(r["r"], 5)} for k, r in found]
        rows += mine
        summary = {}
        for r in mine:
            if r["t"] >= a.t_min:
                summary.setdefault(r["probe"], []).append(r["r"])
        print(f"{name:24s} {set_:8s} " + "  ".join(f"{k} {np.mean(v):.3f}" for k, v in summary.items()))
    if a.out:
        append_rows(a.out, FIELDS, rows)


if __name__ == "__main__":
    main()
