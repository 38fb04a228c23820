"""The authors' injection interval on the shipped model: the `authors` preset at 1000 generation
steps (injection and boost noise every 20 steps, on their 50-point grid) against the same preset on
the 50-point grid, next to DDIM's own 1000-vs-50 gap, the injection's effect, and injecting at every
one of the 1000 steps. Prints mean |Δ| over the sample pairs (docs/method.md §5).

    OMP_NUM_THREADS=1 .venv/bin/python -m research.compare_authors_interval [--pairs 2]
"""

import argparse
import dataclasses
import time

import torch

import diffstyle_lab as dl
from diffstyle_lab import InjectionConfig
from diffstyle_lab.images import load_image


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2)
    a = ap.parse_args()
    m = dl.load_default_model()
    s = m.sample_size
    root = dl.models.data_path("samples")
    c = torch.cat([load_image(root / "content" / f"content{i}.png", s) for i in range(a.pairs)])
    st = torch.cat([load_image(root / "style" / f"style{i}.png", s) for i in range(a.pairs)])
    a1000 = InjectionConfig.preset("authors")
    a50 = dataclasses.replace(a1000, steps=50, inject_every=1)
    inv_c = dl.ddim_invert(m, c, steps=50, record_last=False, progress=False)
    inv_s = dl.ddim_invert(m, st, steps=50, record_last=False, progress=False)
    runs = {"authors, 1000 steps": a1000, "authors, 50-point grid": a50,
            "plain, 1000 steps": dataclasses.replace(a1000, gamma=0.0),
            "plain, 50 steps": dataclasses.replace(a50, gamma=0.0),
            "injection at all 1000 steps": dataclasses.replace(a1000, inject_every=1)}
    out = {}
    for name, cfg in runs.items():
        t0 = time.time()
        out[name] = dl.reverse(m, inv_s.x_T, inv_c, cfg, progress=False)
        print(f"{name}: {time.time() - t0:.1f} s", flush=True)

    def d(x, y):
        return (out[x] - out[y]).abs().mean().item()
    print(f"model {m.source} ({m.weights_hash[:12]}), {a.pairs} pairs; mean |Δ| of images in [-1, 1]:")
    print(f"  authors 1000 steps vs the 50-point grid:  {d('authors, 1000 steps', 'authors, 50-point grid'):.3f}")
    print(f"  DDIM's own gap, plain 1000 vs 50 steps:   {d('plain, 1000 steps', 'plain, 50 steps'):.3f}")
    print(f"  the injection's effect (50-point grid):   {d('authors, 50-point grid', 'plain, 50 steps'):.3f}")
    print(f"  the injection's effect (1000 steps):      {d('authors, 1000 steps', 'plain, 1000 steps'):.3f}")
    print(f"  injecting at all 1000 steps vs every 20th: {d('injection at all 1000 steps', 'authors, 1000 steps'):.3f}")


if __name__ == "__main__":
    main()
