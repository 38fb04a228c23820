"""Score content injection against ground-truth ideals (issue: the default model must show it).

    python scripts/groundtruth_eval.py MODEL_DIR --pairs 100 --gammas 0 0.2 0.3 0.4 0.6 1 \
        --t-edits 200 300 400 --t-boost 0 --out runs/gt/NAME.json

For each (t_edit, γ): mean RMSE to the ideal with a 95 % bootstrap CI over pairs, the paired
difference to the unchanged style image, the gap closed towards the reconstruction floor, the
factor-match rates (layout and identity as content; colours as style) and the background error
relative to γ = 0. Baselines: the style image, 0.7·style + 0.3·content, Reinhard. 50 inversion and
50 generation steps (the paper's), normalised Slerp.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import diffstyle_lab as dl
from diffstyle_lab import groundtruth as G
from diffstyle_lab.models import load_model
from diffstyle_lab.sampling import InjectionConfig, ddim_invert, reverse

CONTENT_FACTORS = G.LAYOUT_FACTORS + (G.IDENTITY, G.HAIR)


def boot_ci(v: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    v = np.asarray(v, float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(v), (n_boot, len(v)))
    reps = v[idx].mean(1)
    return float(v.mean()), float(np.percentile(reps, 2.5)), float(np.percentile(reps, 97.5))


def gap_ci(res, sty, floor, n_boot: int = 2000, seed: int = 0):
    idx = np.random.default_rng(seed).integers(0, len(res), (n_boot, len(res)))
    reps = (sty[idx].mean(1) - res[idx].mean(1)) / (sty[idx].mean(1) - floor[idx].mean(1))
    return G.gap_closed(res, sty, floor), float(np.percentile(reps, 2.5)), float(np.percentile(reps, 97.5))


def summarise(name: str, sc: dict, ref: dict, floor: np.ndarray, bg0: np.ndarray | None) -> dict:
    row = {"setting": name, "rmse": boot_ci(sc["rmse"]), "ssim": boot_ci(sc["ssim"]),
           "diff_vs_style": boot_ci(ref["rmse"] - sc["rmse"]),
           "gap_closed": gap_ci(sc["rmse"], ref["rmse"], floor),
           "rmse_bg": boot_ci(sc["rmse_bg"]), "rmse_fg": boot_ci(sc["rmse_fg"])}
    for k in CONTENT_FACTORS:
        row[f"{k}_as_content"] = boot_ci(sc[k])
    for k in G.COLOUR_FACTORS:
        row[f"{k}_as_style"] = boot_ci(sc[k])
    layout = np.nanmean(np.stack([sc[k] for k in G.LAYOUT_FACTORS + (G.IDENTITY,)]), 0)
    row["large_footprint_as_content"] = boot_ci(layout)
    colours = np.nanmean(np.stack([sc[k] for k in G.COLOUR_FACTORS]), 0)
    row["colours_as_style"] = boot_ci(colours)
    if bg0 is not None:
        row["bg_error_vs_gamma0"] = float(np.nanmean(sc["rmse_bg"]) / np.nanmean(bg0))
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--seed", type=int, default=90_000)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--gammas", type=float, nargs="+", default=[0.0, 0.2, 0.3, 0.4, 0.6, 1.0])
    p.add_argument("--t-edits", type=int, nargs="+", default=[400])
    p.add_argument("--t-boost", type=int, default=None, help="default: min(200, t_edit)")
    p.add_argument("--method", default="normalised_slerp")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    model = load_model(a.model)
    gt = G.GroundTruthPairs.make(a.pairs, seed=a.seed, size=model.sample_size)
    inv = {k: ddim_invert(model, getattr(gt, k), a.steps, progress=False) for k in ("content", "style", "ideal")}
    recon = reverse(model, inv["ideal"].x_T, None, InjectionConfig(t_boost=0, steps=a.steps), progress=False)
    floor = G.score(recon, gt)["rmse"]
    ref = G.score(gt.style, gt)
    rows = [summarise("style image (nothing)", ref, ref, floor, None),
            summarise("reconstructed ideal (floor)", G.score(recon, gt), ref, floor, None),
            summarise("pixel blend 0.7/0.3", G.score(G.pixel_blend(gt.content, gt.style), gt), ref, floor, None),
            summarise("Reinhard", G.score(G.reinhard(gt.content, gt.style), gt), ref, floor, None)]
    for t_edit in a.t_edits:
        tb = min(200, t_edit) if a.t_boost is None else min(a.t_boost, t_edit)
        bg0 = None
        for g in a.gammas:
            cfg = InjectionConfig(gamma=g, t_edit=t_edit, t_boost=tb, steps=a.steps, method=a.method)
            x = reverse(model, inv["style"].x_T, inv["content"], cfg, progress=False)
            sc = G.score(x, gt)
            if g == 0:
                bg0 = sc["rmse_bg"]
            rows.append(summarise(f"t_edit={t_edit} t_boost={tb} gamma={g}", sc, ref, floor, bg0))
            r = rows[-1]
            print(f"{r['setting']:36s} rmse {r['rmse'][0]:6.2f}  gap {r['gap_closed'][0]:+.3f} "
                  f"[{r['gap_closed'][1]:+.3f},{r['gap_closed'][2]:+.3f}]  layout {r['large_footprint_as_content'][0]:.2f} "
                  f"colours {r['colours_as_style'][0]:.2f}  bg× {r.get('bg_error_vs_gamma0', float('nan')):.2f}",
                  flush=True)
    for r in rows[:4]:
        print(f"{r['setting']:36s} rmse {r['rmse'][0]:6.2f}  gap {r['gap_closed'][0]:+.3f}  "
              f"layout {r['large_footprint_as_content'][0]:.2f} colours {r['colours_as_style'][0]:.2f}")
    out = {"model": a.model, "weights_sha256": model.weights_hash(), "pairs": a.pairs, "seed": a.seed,
           "steps": a.steps, "method": a.method, "seconds": round(time.time() - t0, 1), "rows": rows,
           "diffstyle_lab": dl.__version__}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {a.out} in {out['seconds']} s")


if __name__ == "__main__":
    main()
