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
from diffstyle_lab.faces import groundtruth as G
from diffstyle_lab.stats.bootstrap import bootstrap_ci, paired_statistic
from diffstyle_lab.models import load_model
from diffstyle_lab.sampling import InjectionConfig

CONTENT_FACTORS = G.LAYOUT_FACTORS + (G.IDENTITY, G.HAIR)


def gap_ci(res, sty, floor):
    """Gap closed (ratio of means) and its paired bootstrap interval over pairs."""
    return paired_statistic(lambda r, s, f: (s.mean(-1) - r.mean(-1)) / (s.mean(-1) - f.mean(-1)), res, sty, floor,
                            n_boot=2000)


def summarise(name: str, sc: dict, ref: dict, floor: np.ndarray, bg0: np.ndarray | None) -> dict:
    row = {"setting": name, "rmse": bootstrap_ci(sc["rmse"]), "ssim": bootstrap_ci(sc["ssim"]),
           "diff_vs_style": bootstrap_ci(ref["rmse"] - sc["rmse"]),
           "gap_closed": gap_ci(sc["rmse"], ref["rmse"], floor),
           "rmse_bg": bootstrap_ci(sc["rmse_bg"]), "rmse_fg": bootstrap_ci(sc["rmse_fg"])}
    for k in CONTENT_FACTORS:
        row[f"{k}_as_content"] = bootstrap_ci(sc[k])
    for k in G.COLOUR_FACTORS:
        row[f"{k}_as_style"] = bootstrap_ci(sc[k])
    layout = np.nanmean(np.stack([sc[k] for k in G.LAYOUT_FACTORS + (G.IDENTITY,)]), 0)
    row["large_footprint_as_content"] = bootstrap_ci(layout)
    colours = np.nanmean(np.stack([sc[k] for k in G.COLOUR_FACTORS]), 0)
    row["colours_as_style"] = bootstrap_ci(colours)
    if bg0 is not None:
        row["bg_error_vs_gamma0"] = float(np.nanmean(sc["rmse_bg"]) / np.nanmean(bg0))
    return row


SETS = {"posed": "content differs in identity and pose", "upright": "content differs in identity only (same pose)"}


def evaluate_set(model, cfgs: dict, pairs: int, seed: int, steps: int, pose: bool) -> tuple[list, dict]:
    """Rows (references first, then one per config key (t_edit, t_boost, γ)) and the raw per-pair scores."""
    gt = G.GroundTruthPairs.make(pairs, seed=seed, size=model.sample_size, pose=pose)
    sc = G.transfer_scores(model, gt, cfgs, steps=steps)   # the references ("style", "floor", …) and every config
    ref, floor = sc["style"], sc["floor"]["rmse"]
    rows = [summarise(label, sc[key], ref, floor, None) for key, label in (
        ("style", "style image (nothing)"), ("floor", "reconstructed ideal (floor)"),
        ("blend", "pixel blend 0.7/0.3"), ("reinhard", "Reinhard"))]
    for key in cfgs:
        t_edit, tb, _ = key
        bg0 = sc[(t_edit, tb, 0.0)]["rmse_bg"] if (t_edit, tb, 0.0) in sc else None
        rows.append(summarise(f"t_edit={key[0]} t_boost={key[1]} gamma={key[2]}", sc[key], ref, floor, bg0))
    return rows, sc


def model_summary(model, path: str, pairs: int, seed: int, steps: int, command: str) -> dict:
    """The machine-readable summary the notebooks read (``<model folder>/summary.json``): both pair sets at
    the model's stored defaults, with the two cheap baselines and paired bootstrap intervals."""
    cfg = InjectionConfig.for_model(model, steps=steps)
    key = (cfg.t_edit, cfg.t_boost, cfg.gamma)
    out = {"schema": 1, "model": Path(path).name, "weights_sha256": model.weights_hash, "command": command,
           "settings": {"gamma": cfg.gamma, "t_edit": cfg.t_edit, "t_boost": cfg.t_boost, "calibrate": cfg.calibrate,
                        "omega": cfg.omega, "steps": steps, "method": cfg.method}, "sets": {}}
    for name, desc in SETS.items():
        rows, sc = evaluate_set(model, {key: cfg}, pairs, seed, steps, pose=name == "posed")
        r = rows[-1]
        floor, style = sc["floor"]["rmse"], sc["style"]["rmse"]
        out["sets"][name] = {
            "pairs": pairs, "seed": seed, "description": desc,
            "gap_closed": list(r["gap_closed"]), "layout_as_content": list(r["large_footprint_as_content"]),
            "colours_as_style": list(r["colours_as_style"]),
            "rmse": {k: float(np.mean(sc[k]["rmse"])) for k in ("style", "floor", "blend", "reinhard")}
            | {"result": float(np.mean(sc[key]["rmse"]))},
            "per_pair_rmse": {k: [round(float(v), 3) for v in sc[k2]["rmse"]]      # for paired comparisons of models
                              for k, k2 in (("result", key), ("style", "style"), ("floor", "floor"))},
            "baselines": {name_b: {"gap_closed": list(gap_ci(sc[k]["rmse"], style, floor)),
                                   "result_minus_baseline_rmse": list(bootstrap_ci(sc[key]["rmse"] - sc[k]["rmse"]))}
                          for name_b, k in (("pixel_blend", "blend"), ("reinhard", "reinhard"))}}
    return out


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
    p.add_argument("--calibrate", action="store_true", help="the paper's calibration (Eq. 9) with --omega")
    p.add_argument("--omega", type=float, default=0.3)
    p.add_argument("--upright", action="store_true", help="upright pairs: content differs in identity only")
    p.add_argument("--summary", action="store_true",
                   help="score both pair sets at the model's stored defaults and write MODEL/summary.json "
                        "(the notebooks read it); the sweep options are then ignored")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="", help="the sweep's JSON (required unless --summary)")
    a = p.parse_args(argv)
    if not a.summary and not a.out:
        p.error("--out is required (or --summary to write MODEL/summary.json)")
    torch.set_num_threads(a.threads)
    t0 = time.time()
    model = load_model(a.model)
    if a.summary:
        command = f"python scripts/groundtruth_eval.py {a.model} --summary --pairs {a.pairs} --seed {a.seed} --steps {a.steps}"
        out = model_summary(model, a.model, a.pairs, a.seed, a.steps, command)
        out["seconds"] = round(time.time() - t0, 1)
        for name, r in out["sets"].items():
            print(f"{name:8s} gap {r['gap_closed'][0]:+.3f} [{r['gap_closed'][1]:+.3f},{r['gap_closed'][2]:+.3f}]  "
                  f"layout {r['layout_as_content'][0]:.2f} colours {r['colours_as_style'][0]:.2f}  "
                  f"blend {r['baselines']['pixel_blend']['gap_closed'][0]:+.3f} "
                  f"reinhard {r['baselines']['reinhard']['gap_closed'][0]:+.3f}")
        target = Path(a.model) / "summary.json"
        tmp = target.with_name("summary.json.tmp")
        tmp.write_text(json.dumps(out, indent=1))
        tmp.replace(target)
        print(f"wrote {target} in {out['seconds']} s")
        return
    cfgs = {}
    for t_edit in a.t_edits:
        tb = min(200, t_edit) if a.t_boost is None else min(a.t_boost, t_edit)
        for g in a.gammas:
            cfgs[(t_edit, tb, g)] = InjectionConfig(gamma=g, t_edit=t_edit, t_boost=tb, steps=a.steps, method=a.method,
                                                calibrate=a.calibrate, omega=a.omega)
    rows, _ = evaluate_set(model, cfgs, a.pairs, a.seed, a.steps, pose=not a.upright)
    for r in rows[4:]:
        print(f"{r['setting']:36s} rmse {r['rmse'][0]:6.2f}  gap {r['gap_closed'][0]:+.3f} "
              f"[{r['gap_closed'][1]:+.3f},{r['gap_closed'][2]:+.3f}]  layout {r['large_footprint_as_content'][0]:.2f} "
              f"colours {r['colours_as_style'][0]:.2f}  bg× {r.get('bg_error_vs_gamma0', float('nan')):.2f}")
    for r in rows[:4]:
        print(f"{r['setting']:36s} rmse {r['rmse'][0]:6.2f}  gap {r['gap_closed'][0]:+.3f}  "
              f"layout {r['large_footprint_as_content'][0]:.2f} colours {r['colours_as_style'][0]:.2f}")
    out = {"model": a.model, "weights_sha256": model.weights_hash, "pairs": a.pairs, "seed": a.seed,
           "steps": a.steps, "set": "upright" if a.upright else "posed", "method": a.method, "calibrate": a.calibrate,
           "omega": a.omega, "seconds": round(time.time() - t0, 1), "rows": rows, "diffstyle_lab": dl.__version__}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {a.out} in {out['seconds']} s")


if __name__ == "__main__":
    main()
