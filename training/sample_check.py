"""Can a model sample? Images from pure noise at given settings, judged without a person (issue 25 §6).

    python -m training.sample_check MODEL [MODEL …] [--n 128] [--settings 50:0:0 50:0:1 200:1:1] [--sheet DIR]

For each model and each sampler setting STEPS:ETA:CLIP (DDIM steps; η of every step, 0 deterministic, 1
DDPM-like; clip_x0 0/1 — default: 50 steps, η 0, clip_x0 off and on): the share of saturated pixels (|x| ≥ 0.98; a training render has
≈ 0 % outside its flat colours, see the "renders" row), the factor classifier's mean top-class probability on the
family head and on the content heads (hair, eyes, mouth) against the same on held-out training renders, and the
Fréchet distance on the classifier's features against held-out renders, as a multiple of the floor (two sets of
held-out renders). ``--sheet DIR`` writes ``DIR/<model>_s<steps>_eta<η>_clip<0|1>.png`` (8×8 samples, 3× nearest-neighbour).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import diffstyle_lab as dl
from diffstyle_lab.faces import avatars, factors
from diffstyle_lab.fileio import atomic_write, write_json


def confidences(clf, x: torch.Tensor) -> dict:
    with torch.no_grad():
        logits = clf(x)
    top = {h: logits[h].softmax(1).max(1).values.mean().item() for h in factors.HEADS}
    return {"family": top["family"], "content": sum(top[h] for h in ("hair", "eyes", "mouth")) / 3}


def saturated(x: torch.Tensor) -> float:
    return (x.abs() >= 0.98).float().mean().item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--settings", nargs="+", default=["50:0:0", "50:0:1"], metavar="STEPS:ETA:CLIP",
                   help="sampler settings, e.g. 50:0:1 (50 DDIM steps, eta 0, clip_x0 on)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sheet", default="", help="folder for 8x8 sample sheets")
    p.add_argument("--json", default="", help="write the rows here")
    a = p.parse_args(argv)
    try:
        settings = [(int(st), float(eta), bool(int(c))) for st, eta, c in (x.split(":") for x in a.settings)]
    except ValueError:
        p.error(f"--settings {a.settings}: each must be STEPS:ETA:CLIP, e.g. 50:0:1")
    torch.set_num_threads(a.threads)
    clf = factors.load().eval()
    held_a = factors.to_tensor(avatars.make_faces(a.n, seed=40_000)[0])
    held_b = factors.to_tensor(avatars.make_faces(a.n, seed=50_000)[0])
    with torch.no_grad():
        fa, fb = clf.features(held_a), clf.features(held_b)
    floor = factors.frechet_distance(fb, fa)
    rows = [{"model": "renders", "clip_x0": None, "saturated": saturated(held_b), **confidences(clf, held_b),
             "frechet_x_floor": 1.0}]
    for path in a.models:
        m = dl.load_model(path)
        x_T = torch.randn(a.n, 3, m.sample_size, m.sample_size, generator=torch.Generator().manual_seed(a.seed))
        for steps, eta, clip in settings:
            x = dl.generate(m, x_T, steps=steps, eta=eta, progress=False, clip_x0=clip).clamp(-1, 1)
            with torch.no_grad():
                fr = factors.frechet_distance(clf.features(x), fa)
            rows.append({"model": Path(path).name, "steps": steps, "eta": eta, "clip_x0": clip, "saturated": saturated(x), **confidences(clf, x),
                         "frechet_x_floor": fr / floor})
            if a.sheet:
                from diffstyle_lab.images import grid
                Path(a.sheet).mkdir(parents=True, exist_ok=True)
                img = grid(x[:64], nrow=8)
                img = img.resize((img.width * 3, img.height * 3), 0)
                atomic_write(Path(a.sheet) / f"{Path(path).name}_s{steps}_eta{eta:g}_clip{int(clip)}.png",
                             lambda tmp: img.save(tmp, format="PNG"))
    print(f"{'model':28s} steps  eta  clip_x0  saturated  family-conf  content-conf  Fréchet/floor   (floor {floor:.2f}, n {a.n})")
    for r in rows:
        print(f"{r['model']:28s} {r.get('steps', ''):>5} {r.get('eta', ''):>4} {str(r['clip_x0']):7s}  {r['saturated']:9.3f}  {r['family']:11.3f}  "
              f"{r['content']:12.3f}  {r['frechet_x_floor']:13.2f}")
    if a.json:
        write_json(a.json, {"floor": floor, "n": a.n, "settings": a.settings, "rows": rows}, indent=1)


if __name__ == "__main__":
    main()
