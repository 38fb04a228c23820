# %% [markdown]
# # 08 · A parameter sweep: γ × t_edit
#
# *Reading time ≈ 5 min · compute ≈ 67 s CPU for the full run (a few s with `--quick`) · [← 07_out_of_domain](07_out_of_domain.ipynb) · [09_when_h_carries_content →](09_when_h_carries_content.ipynb) · notation: [glossary](README.md#glossary), [docs/method.md](../docs/method.md)*
#
# **What you will learn**
#
# * how to run a parametrized sweep of content injection as a batch job — this notebook is meant to
#   be executed by papermill with other parameters, e.g.
#   `papermill 08_sweep.ipynb out.ipynb -p gammas "[0.2, 0.4]" -p t_edits "[300, 600]" -p out_dir runs/sweep1`
#   or `python -m diffstyle_lab.run_notebooks --only 08 -p model=PATH`;
# * how the content share γ and the length of the editing interval (t ≥ t_edit) trade content
#   against style, measured with `diffstyle_lab.metrics` — structure similarity (edge maps) with
#   the content and with the style image, background-colour distances, PSNR;
# * the outputs: a tidy CSV (`sweep.csv`, one row per pair × γ × t_edit), a figure of the means
#   (`sweep.png`) and an image grid (`sweep_images.png`), all written to `out_dir`.

# %%
# Colab / Kaggle only (a local kernel skips it): clone your copy of diffstyle_lab ($DIFFSTYLE_LAB_REPO, its git URL) and pip-install it.
import os, sys  # noqa: E401
if ("google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ) and os.system("pip show -q diffstyle_lab"):
    print("Set DIFFSTYLE_LAB_REPO to the git URL of your copy of diffstyle_lab (os.environ['DIFFSTYLE_LAB_REPO'] = 'https://…') and run this cell again.") if not os.environ.get("DIFFSTYLE_LAB_REPO") else (os.system(f"git clone -q --depth 1 {os.environ['DIFFSTYLE_LAB_REPO']} dsl && pip install -q -e 'dsl[notebooks]'"), sys.path.insert(0, "dsl"))

# %% tags=["parameters"]
model = None            # None → the embedded default model; or a diffusers folder / hub id (load_model)
device = None           # None → $DIFFSTYLE_LAB_DEVICE, else cuda if available, else cpu
threads = 1             # torch CPU threads (None → torch's default); see nb.load
inversion_steps = 50    # DDIM inversion grid
steps = 50              # generation steps
n_pairs = 4             # (content i, style i) pairs from data/samples (or content_dir/style_dir)
content_dir = None      # a folder of content images; None → data/samples/content
style_dir = None        # a folder of style images; None → data/samples/style
gammas = [0.0, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0]
t_edits = [200, 400, 600]
t_boost = None          # quality boosting for t ≤ t_boost (clipped to t_edit); None → the model's default
method = "normalised_slerp"
calibrate = False
omega = 0.3
seed = 0
cache_dir = None        # also keep inversions on disk in this folder (an InversionCache); None → memory only
out_dir = "outputs/08_sweep"   # where sweep.csv, sweep.png and sweep_images.png go

# %%
import itertools
import json
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch

import diffstyle_lab as dl
from diffstyle_lab import metrics
from diffstyle_lab import notebook as nb

t_start = time.perf_counter()
m = nb.load(model, device, threads)
_, t_boost = nb.injection_defaults(m, t_boost=t_boost)
content, style, c_names, s_names = nb.sample_pairs(m.sample_size, n_pairs, content_dir, style_dir)
n = len(content)
store = nb.InversionStore(m, steps=inversion_steps, disk=cache_dir)
with nb.stopwatch() as sw:
    ci, si = store(content), store(style)
os.makedirs(out_dir, exist_ok=True)
print(f"model: {m.source} on {m.device}; {n} pairs; {len(gammas)} γ × {len(t_edits)} t_edit; "
      f"inversions: {sw.seconds:.1f} s; writing to {os.path.abspath(out_dir)}")

# %% [markdown]
# ## 1. The sweep
#
# One batched injection of all pairs per (γ, t_edit). Each row of the table is one pair at one
# setting, with its measures (`metrics.measures`) and the run's seconds.

# %%
rows, images = [], {}
for g, te in itertools.product(gammas, t_edits):
    cfg = dl.InjectionConfig(gamma=float(g), t_edit=int(te), t_boost=min(t_boost, int(te)), method=method,
                             calibrate=calibrate, omega=omega, steps=steps, seed=seed)
    with nb.stopwatch() as sw:
        r = dl.inject(m, ci, si, cfg, progress=False)
    images[(g, te)] = r.images
    meas = metrics.measures(r.images, content, style)
    meas.insert(0, "pair", range(n))
    meas.insert(1, "content", c_names)
    meas.insert(2, "style", s_names)
    meas.insert(3, "gamma", float(g))
    meas.insert(4, "t_edit", int(te))
    meas["t_boost"] = min(t_boost, int(te))
    meas["method"] = method
    meas["calibrate"] = calibrate
    meas["seconds"] = sw.seconds / n
    rows.append(meas)
table = pd.concat(rows, ignore_index=True)
table["model"] = m.source
csv_path = os.path.join(out_dir, "sweep.csv")
table.to_csv(csv_path, index=False, float_format="%.6g")
with open(os.path.join(out_dir, "sweep_manifest.json"), "w") as fh:
    json.dump(dl.sampling.manifest(m, {"gammas": list(map(float, gammas)), "t_edits": list(map(int, t_edits)),
                                        "t_boost": t_boost, "method": method, "calibrate": calibrate, "omega": omega,
                                        "steps": steps, "inversion_steps": inversion_steps, "n_pairs": n,
                                        "seed": seed}), fh, indent=1)
print(f"{len(table)} rows → {csv_path}")
table.head()

# %% [markdown]
# ## 2. Means over pairs

# %%
curves = [("struct_content", "structure sim. with content"), ("struct_style", "structure sim. with style"),
           ("bg_dist_style", "background colour dist. to style"), ("psnr_content", "PSNR to content (dB)")]
mean = table.groupby(["t_edit", "gamma"])[[k for k, _ in curves] + ["bg_dist_content", "psnr_style", "tv"]].mean()
fig, axes = plt.subplots(1, len(curves), figsize=(3.3 * len(curves), 3.1))
for ax, (col, label) in zip(axes, curves):
    for k, te in enumerate(t_edits):
        s = mean.loc[te][col]
        ax.plot(s.index, s.values, "o-", ms=3, label=f"t_edit={te}", color=f"C{k}")
    ax.set_xlabel("γ")
    ax.set_title(label, fontsize=8)
axes[0].legend(fontsize=7)
fig.suptitle(f"{m.source}: mean over {n} pairs, {steps} steps, {method}{' + calibration' if calibrate else ''}",
             fontsize=9)
fig.tight_layout()
nb.save_figure(fig, out_dir, "sweep")
nb.show(fig)
mean.round(3)

# %% [markdown]
# ## 3. The images of the first pair

# %%
rows_img = [[content[0], style[0]] + [images[(g, te)][0] for g in gammas] for te in t_edits]
fig = nb.grid_figure(rows_img, row_labels=[f"t_edit={te}" for te in t_edits],
                     col_labels=["content", "style"] + [f"γ={g:g}" for g in gammas], cell=1.1)
nb.save_figure(fig, out_dir, "sweep_images")
nb.show(fig)

# %% [markdown]
# ## What the figures show
#
# Computed from this run. Read the curves as a trade-off: moving right (more content, γ) and using
# a longer editing interval (smaller t_edit) should raise the structure similarity with the content
# and lower it with the style; the background colour distance says how much of the style's colour
# is lost on the way. The printed lines name the settings at the ends of that trade-off.

# %%
flat = mean.reset_index()
best_c = flat.loc[flat.struct_content.idxmax()]
best_s = flat.loc[flat.bg_dist_style.idxmin()]
# a balanced setting: content structure above the style's while the background stays nearest the style's
ok = flat[flat.struct_content > flat.struct_style]
bal = ok.loc[ok.bg_dist_style.idxmin()] if len(ok) else None
print(f"""Measured on {m.source}, {n} pairs, {steps} steps ({len(table)} rows in {csv_path}):
• most content structure: γ={best_c.gamma:g}, t_edit={int(best_c.t_edit)} (structure sim. with content {best_c.struct_content:.3f}, background dist. to style {best_c.bg_dist_style:.1f}).
• closest background colour to the style: γ={best_s.gamma:g}, t_edit={int(best_s.t_edit)} (background dist. {best_s.bg_dist_style:.1f}, structure sim. with content {best_s.struct_content:.3f}).""")
print(f"• among settings whose result is structurally closer to the content than to the style, the style's background "
      f"is kept best at γ={bal.gamma:g}, t_edit={int(bal.t_edit)} (background dist. {bal.bg_dist_style:.1f})." if bal is not None
      else "• no setting made the result structurally closer to the content than to the style.")
print(f"• mean time per injected image: {table.seconds.mean():.2f} s.")
print(f"Time of this notebook: wall {time.perf_counter() - t_start:.1f} s, CPU {time.process_time():.1f} s.")
