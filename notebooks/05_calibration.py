# %% [markdown]
# # 05 · Style calibration, ω
#
# *Reading time ≈ 5 min · compute ≈ 32 s CPU for the full run (a few s with `--quick`) · [← 04_slerp](04_slerp.ipynb) · [06_local_mixing →](06_local_mixing.ipynb) · notation: [glossary](README.md#glossary), [docs/method.md](../docs/method.md)*
#
# **What you will learn**
#
# * the paper's reason why injecting through h loses some style: the injected step also changes the
#   next x_t, and so the next skip connections;
# * the paper's **style calibration**: at each editing step, move x̃_t so that a plain step from it
#   lands where the injected step would, keeping x-space detail —
#   dx = √ᾱ_t·(norm(P̃) − P) + ω·√(1−ᾱ_t)·(ε̃ − ε), then a DDIM step from x̃_t + dx;
# * what its strength ω does, with an ω slider showing the result **with and without** calibration
#   side by side (`InjectionConfig(calibrate=True, omega=ω)`; calibration is an explicit switch, and
#   ω = 0 means what the formula says), and the cost: one more U-Net pass per editing step.
#
# What calibration does on the model given as a parameter is measured at the end of the notebook.

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
steps = 50              # generation steps of the measured ω curves
widget_steps = 12       # generation steps of the interactive view and its static path
n_pairs = 4             # (content i, style i) pairs from data/samples
gamma = 0.3             # γ of normalised Slerp
omega = 0.3             # the slider's starting ω (the paper's default)
omegas = [0.0, 0.3, 0.6, 1.0]   # the static sweep and the measured curves
t_edit = None           # inject while t ≥ t_edit; None → the model's default (InjectionConfig.for_model)
t_boost = None          # quality boosting for t ≤ t_boost (clipped to t_edit); None → the model's default
seed = 0
cache_dir = None        # also keep inversions on disk in this folder (an InversionCache); None → memory only
out_dir = None          # a folder for the figures and the table; None → only shown

# %%
import functools
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pandas as pd
import torch

import diffstyle_lab as dl
from diffstyle_lab import metrics
from diffstyle_lab import notebook as nb

t_start = time.perf_counter()
m = nb.load(model, device, threads)
t_edit, t_boost = nb.injection_defaults(m, t_edit, t_boost)
content, style, c_names, s_names = nb.sample_pairs(m.sample_size, n_pairs)
n = len(content)
pair_names = [f"{c_names[i]} × {s_names[i]}" for i in range(n)]
store = nb.InversionStore(m, steps=inversion_steps, disk=cache_dir)
with nb.stopwatch() as sw:
    ci, si = store(content), store(style)
print(f"model: {m.source} on {m.device}; {n} pairs; inversions once: {sw.seconds:.1f} s")

# %% [markdown]
# ## 1. With and without calibration, side by side
#
# The uncalibrated result does not depend on ω, so it is computed once per pair and γ and kept;
# moving ω re-runs only the calibrated injection.

# %%
def injected(i, gamma, calibrate, omega, n_steps):
    return dl.inject(m, ci.select([i]), si.select([i]), gamma=float(gamma), t_edit=t_edit,
                     t_boost=min(t_boost, t_edit), calibrate=calibrate, omega=float(omega), steps=n_steps, seed=seed,
                     progress=False).images[0]


@functools.lru_cache(maxsize=64)
def uncalibrated(i, gamma):
    return injected(i, gamma, False, 0.0, widget_steps)


def render(pair, omega, gamma=gamma):
    i = pair_names.index(pair)
    return {"content": content[i], "style": style[i], "without calibration": uncalibrated(i, float(gamma)),
            "with calibration": injected(i, gamma, True, omega, widget_steps)}


view = nb.Explorer(render, {
    "pair": widgets.Dropdown(options=pair_names, value=pair_names[0], description="pair"),
    "omega": widgets.FloatSlider(value=omega, min=0.0, max=1.0, step=0.05, description="ω", continuous_update=False),
    "gamma": widgets.FloatSlider(value=gamma, min=0.0, max=1.0, step=0.05, description="γ", continuous_update=False)})
view.show()
latency = view.set(omega=min(1.0, omega + 0.1))
print(f"one re-render after moving ω took {latency:.2f} s ({widget_steps} steps, calibration on)")

# %% [markdown]
# **Static path** — fixed ω values (rows: pairs; the first columns are the inputs and the
# uncalibrated result, then the calibrated result for each ω).

# %%
fig = view.sweep_figure("omega", omegas, rows=[{"pair": p} for p in pair_names[:2]],
                        keep=("content", "style", "without calibration"), result="with calibration",
                        fmt="ω={value}", row_labels=[f"pair {k}" for k in range(min(2, n))],
                        title=f"γ={gamma:g}, t_edit={t_edit}, {widget_steps} steps")
nb.save_figure(fig, out_dir, "omega_sweep")
nb.show(fig)

# %% [markdown]
# ## 2. Measured over all pairs
#
# For each ω, a batched calibrated injection of all pairs (`steps` steps), against the uncalibrated
# one: colour statistics and background colour distance to the style (style kept?), structure
# similarity with the content (content kept?). The dashed lines are the uncalibrated values.

# %%
images = {}


def run(calibrate, w, g=gamma):
    with nb.stopwatch() as sw:
        r = dl.inject(m, ci, si, gamma=g, t_edit=t_edit, t_boost=min(t_boost, t_edit), calibrate=calibrate,
                      omega=float(w), steps=steps, seed=seed, progress=False)
    images[(calibrate, w if calibrate else None, g)] = r.images
    return metrics.measures(r.images, content, style).assign(omega=w if calibrate else None, calibrate=calibrate,
                                                        pair=range(n), seconds=sw.seconds)


base = run(False, 0.0)
run(False, 0.0, g=0.0)                      # no injection, for scale
table = pd.concat([base] + [run(True, w) for w in omegas], ignore_index=True)
if out_dir:
    os.makedirs(out_dir, exist_ok=True)
    table.to_csv(os.path.join(out_dir, "omega_measures.csv"), index=False)
cal = table[table.calibrate].groupby("omega").mean(numeric_only=True)
unc = base.mean(numeric_only=True)

fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
for ax, col, label in zip(axes, ["colour_dist_style", "bg_dist_style", "struct_content"],
                          ["colour statistics distance to style", "background colour distance to style",
                           "structure similarity with content"]):
    ax.plot(cal.index, cal[col], "o-", label="calibrated")
    ax.axhline(unc[col], ls="--", color="0.4", label="without calibration")
    ax.set_xlabel("ω")
    ax.set_ylabel(label, fontsize=8)
    ax.legend(fontsize=7)
fig.suptitle(f"mean over {n} pairs, γ={gamma:g}, {steps} steps", fontsize=9)
fig.tight_layout()
nb.save_figure(fig, out_dir, "omega_curves")
nb.show(fig)
pd.concat([unc.to_frame("without").T, cal])[
    ["colour_dist_style", "bg_dist_style", "struct_content", "struct_style", "tv", "seconds"]].round(3)

# %% [markdown]
# ## What the figures show
#
# Computed from this run. Compare each calibrated column with the uncalibrated one: calibration is
# meant to keep more of the style's colours (lower distances to the style) without losing the
# content (structure similarity with the content should not fall much). Per the method notes,
# ω = 1 leaves only the normalisation term of dx, and ω → 0 approaches the uncalibrated injected
# step; the pixel differences printed below check both ends on this model (a small first number
# means ω → 0 is close to no calibration; a small second one means ω = 1 is close to no injection).

# %%
best = cal.colour_dist_style.idxmin()


def px(a, b):
    """Mean absolute pixel difference (0–255) between two batches of results."""
    return float((a.clamp(-1, 1) - b.clamp(-1, 1)).abs().mean() * 127.5)


uncal_img, none_img = images[(False, None, gamma)], images[(False, None, 0.0)]
w_lo, w_hi = min(omegas), max(omegas)
print(f"""Measured on {m.source}, {n} pairs, γ={gamma:g}, {steps} steps:
• colour statistics distance to the style: without calibration {unc.colour_dist_style:.1f}; calibrated {', '.join(f'ω={w:g}: {v:.1f}' for w, v in cal.colour_dist_style.items())}
  → the lowest is at ω={best:g} ({'lower' if cal.colour_dist_style[best] < unc.colour_dist_style else 'not lower'} than without calibration).
• background colour distance to the style: without {unc.bg_dist_style:.1f}; calibrated {', '.join(f'ω={w:g}: {v:.1f}' for w, v in cal.bg_dist_style.items())}.
• structure similarity with the content: without {unc.struct_content:.3f}; calibrated {', '.join(f'ω={w:g}: {v:.3f}' for w, v in cal.struct_content.items())}.
• mean pixel difference (0–255): calibrated ω={w_lo:g} vs uncalibrated {px(images[(True, w_lo, gamma)], uncal_img):.1f}; calibrated ω={w_hi:g} vs no injection {px(images[(True, w_hi, gamma)], none_img):.1f}; for scale, uncalibrated vs no injection {px(uncal_img, none_img):.1f}.
• cost: {unc.seconds:.1f} s without and {cal.seconds.mean():.1f} s with calibration per batch of {n} pairs.
• one re-render of the ω view: {latency:.2f} s ({widget_steps} steps; goal well under 2 s).
Time of this notebook: wall {time.perf_counter() - t_start:.1f} s, CPU {time.process_time():.1f} s.""")
