"""Contact sheets for the model card: random ground-truth pairs, what injection makes of them at the model's
stored defaults, next to the ideal and the pixel blend.

    python -m training.contact_sheet diffstyle_lab/data/models/faces32 --pairs 24 --seed 123000

Writes ``MODEL/contact_posed.png`` and ``MODEL/contact_upright.png`` (or into ``--out``): per pair, in
columns, content · style · ideal (content's identity/pose in the style's colours) · result at the
defaults (50/50 steps) · pixel blend 0.7·style + 0.3·content; pairs in two blocks of rows, 3× enlarged.
The pairs come from a seed no setting was tuned on, all of them shown (none picked).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from diffstyle_lab.config import InjectionConfig
from diffstyle_lab.faces import groundtruth as G
from diffstyle_lab.fileio import atomic_write
from diffstyle_lab.images import grid
from diffstyle_lab.models import load_model
from diffstyle_lab.sampling import ddim_invert, reverse

COLUMNS = ("content", "style", "ideal", "result", "pixel blend")


@torch.no_grad()
def sheet(model, pairs: int, seed: int, pose: bool, steps: int = 50, blocks: int = 2, scale: int = 3):
    gt = G.GroundTruthPairs.make(pairs, seed=seed, size=model.sample_size, pose=pose)
    cfg = InjectionConfig.for_model(model, steps=steps)
    inv_s, inv_c = (ddim_invert(model, x, steps, progress=False) for x in (gt.style, gt.content))
    result = reverse(model, inv_s.x_T, inv_c, cfg, progress=False).float().clamp(-1, 1)
    cols = (gt.content, gt.style, gt.ideal, result, G.pixel_blend(gt.content, gt.style))
    per_block = -(-pairs // blocks)
    tiles = []
    for i in range(per_block):                       # row i: block 0's pair i, then block 1's pair i, …
        for b in range(blocks):
            k = b * per_block + i
            tiles += [c[k] if k < pairs else torch.ones_like(gt.style[0]) for c in cols]
    img = grid(torch.stack(tiles), nrow=len(cols) * blocks, pad=2)
    return img.resize((img.width * scale, img.height * scale), resample=0), cfg


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--pairs", type=int, default=24)
    p.add_argument("--seed", type=int, default=123_000)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="", help="folder for the PNGs (default: the model folder)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model = load_model(a.model)
    out = Path(a.out or a.model)
    out.mkdir(parents=True, exist_ok=True)
    for name, pose in (("posed", True), ("upright", False)):
        img, cfg = sheet(model, a.pairs, a.seed, pose, a.steps)
        atomic_write(out / f"contact_{name}.png", lambda tmp: img.save(tmp, format="PNG"))
        print(f"{out / f'contact_{name}.png'}: {a.pairs} {name} pairs (seed {a.seed}); columns {' · '.join(COLUMNS)}; "
              f"γ {cfg.gamma}, t_edit {cfg.t_edit}, t_boost {cfg.t_boost}, calibrate {cfg.calibrate} ω {cfg.omega}")


if __name__ == "__main__":
    main()
