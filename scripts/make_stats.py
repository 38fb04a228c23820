"""Regenerate the committed h/g statistics (method.md §8): docs/stats/correlations.csv and .png.

    python scripts/make_stats.py                      # the shipped model (diffstyle_lab/data/models/faces32)
    python scripts/make_stats.py --model tiny --n 16 --steps 10 --out /tmp/stats    # quick check

Generation from seeded random x_T (plain DDIM, η = 0, the authors' 50-step grid) over n samples
records |h|, |g| and the static mixings of each sample's h with another sample's h (replace, add,
lerp, slerp, normalised Slerp); then for each ``--inject`` method a real injection run (content:
another sample's generated h trajectory; t_edit from ``--t-edit``) measures r between |h̃| and the
|g| of the injected trajectory. Per-batch results are kept under ``--work`` so an interrupted run
resumes where it stopped. Prints a short summary of the numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    from diffstyle_lab import load_default_model, load_model, tiny_model
    if name == "default":
        try:
            return load_default_model()
        except FileNotFoundError as e:
            raise SystemExit(f"{e}\n(for a quick check without it: --model tiny)")
    if name == "tiny":
        return tiny_model(seed=0)
    return load_model(name)


def summary(df) -> str:
    import numpy as np
    lines = []
    piv = df[df.statistic.isin(["r_homo", "r_hetero", "r_alt", "r_inject"])]

    def curve(stat, setting="none"):
        c = piv[(piv.statistic == stat) & (piv.setting == setting)].set_index("t").sort_index()
        return c
    homo, het = curve("r_homo"), curve("r_hetero")
    n = int(homo.n.iloc[0])
    lines.append(f"model {homo.model.iloc[0]}, n = {n}, {len(homo)} timesteps {homo.index.min()}…{homo.index.max()}")
    for name, c in [("r_homo", homo), ("r_hetero", het)] + [
            (f"r_alt {s}", curve("r_alt", s)) for s in piv[piv.statistic == "r_alt"].setting.unique()] + [
            (f"r_inject {s}", curve("r_inject", s)) for s in piv[piv.statistic == "r_inject"].setting.unique()]:
        v = c.value
        near_T = c[c.index >= 800].value.mean()
        lines.append(f"  {name:26s} mean over t {v.mean():+.3f}  (min {v.min():+.3f}, max {v.max():+.3f}; "
                     f"t ≥ 800: {near_T:+.3f})")
    for s in piv[piv.statistic == "r_inject"].setting.unique():
        c = curve("r_inject", s)
        d = c.value - homo.value.reindex(c.index)
        lines.append(f"  on the injected t ({c.index.min()}…{c.index.max()}): "
                     f"r_homo {homo.value.reindex(c.index).mean():+.3f}, "
                     f"r_inject {s} {c.value.mean():+.3f} (mean difference {d.mean():+.3f}, max |difference| "
                     f"{d.abs().max():.3f})")
    sep = (homo.ci_low > het.reindex(homo.index).ci_high)
    lines.append(f"  r_homo > r_hetero at {int((homo.value > het.value).sum())}/{len(homo)} t; "
                 f"bootstrap intervals separate at {int(sep.sum())}/{len(homo)} t"
                 + (f" (not at t = {', '.join(map(str, homo.index[~sep.to_numpy()]))})" if (~sep).any() else ""))
    ns = curve("r_alt", "normalised_slerp")
    if len(ns):
        lines.append(f"  max |r_alt(normalised Slerp) − r_homo| = {np.max(np.abs(ns.value - homo.value)):.2e}")
    rep = curve("r_alt", "replace")
    if len(rep):
        lines.append(f"  replacement lowers r by {np.mean(homo.value - rep.value):+.3f} on average "
                     f"(r_alt(replace) − r_hetero: {np.mean(rep.value - het.value):+.3f}); "
                     f"r_alt(replace) < r_homo at {int((rep.value < homo.value).sum())}/{len(homo)} t")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default", help="'default' (diffstyle_lab/data/models/faces32), 'tiny', or a folder / hub id")
    p.add_argument("--n", type=int, default=128, help="samples (≥ 64 for the committed results)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--spacing", default="authors")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gamma", type=float, default=None,
                   help="γ of lerp / slerp / normalised Slerp and of the injection runs (replace and add use 1); "
                        "default: the model's stored γ")
    p.add_argument("--inject", nargs="*", default=["normalised_slerp", "replace"],
                   help="methods to measure in real injection runs (none: skip)")
    p.add_argument("--t-edit", type=int, default=None, help="default: the model's stored t_edit")
    p.add_argument("--n-inject", type=int, default=None, help="samples per injection run (default: --n)")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--out", default=str(ROOT / "docs" / "stats"))
    p.add_argument("--work", default=None, help="resume folder (default runs/stats/<model>)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)

    import pandas as pd
    import torch

    from diffstyle_lab import InjectionConfig
    from diffstyle_lab.stats import estimators as stats
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.n < 64 and a.model == "default":
        print(f"note: n = {a.n} < 64; the committed results use n ≥ 64", file=sys.stderr)
    model = load(a.model)
    stored = InjectionConfig.for_model(model)
    a.gamma = stored.gamma if a.gamma is None else a.gamma
    a.t_edit = stored.t_edit if a.t_edit is None else a.t_edit
    tag = Path(a.model).name if a.model not in ("default", "tiny") else a.model
    work = Path(a.work) if a.work else ROOT / "runs" / "stats" / f"{tag}-{model.weights_hash[:12]}"
    t0 = time.perf_counter()
    tables = [stats.collect(model, a.n, source="generate", steps=a.steps, spacing=a.spacing,
                            batch_size=a.batch_size, seed=a.seed, gamma=a.gamma,
                            out_dir=work / f"generate-n{a.n}-s{a.steps}-{a.spacing}-b{a.batch_size}-seed{a.seed}",
                            progress=not a.no_progress)]
    for method in a.inject or ():
        cfg = InjectionConfig(steps=a.steps, spacing=a.spacing, gamma=a.gamma, method=method,
                              t_edit=a.t_edit, t_boost=0, seed=a.seed)
        ni = a.n_inject or a.n
        tables.append(stats.collect(model, ni, source="inject", config=cfg, batch_size=a.batch_size, seed=a.seed,
                                    gamma=a.gamma, progress=not a.no_progress,
                                    out_dir=work / f"inject-{method}-n{ni}-s{a.steps}-{a.spacing}-b{a.batch_size}"
                                                   f"-g{a.gamma}-te{a.t_edit}-seed{a.seed}"))
    t1 = time.perf_counter()
    df = stats.summarise(tables[0], n_boot=a.n_boot, seed=a.seed)
    for t in tables[1:]:     # from injection runs keep only what the static run cannot give
        d = stats.summarise(t, n_boot=a.n_boot, seed=a.seed)
        df = pd.concat([df, d[d.statistic.isin(["r_inject", "cos_content"]) |
                              ((d.statistic == "energy") & d.setting.str.startswith("inject:"))]],
                       ignore_index=True)
    out = Path(a.out)
    csv = stats.save_frame(df, out / "correlations.csv")
    png = out / "correlations.png"
    stats.plot_correlations(df, png, title=f"|h| vs |g| on {model.source}: n = {a.n}, {a.steps} DDIM steps "
                                           f"({a.spacing} grid), γ = {a.gamma}, t_edit = {a.t_edit}; shaded: 95% bootstrap CI")
    print(summary(df))
    print(f"wrote {csv} ({len(df)} rows) and {png}; sampling {t1 - t0:.0f} s (work folder {work})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
