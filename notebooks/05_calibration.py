# ---
# jupyter:
#   diffstyle_lab:
#     cpu_s: 41.7
#     injects: true
#     needs:
#     - content_dir
#     - style_dir
#     paper_box: true
#     prerequisites:
#     - 04_slerp
#     quick:
#       inversion_steps: 8
#       n_pairs: 2
#       steps: 8
#       widget_steps: 6
#     reading_minutes: 5
#     teaches: "style calibration with an \u03C9 slider, with and without side by side,\
#       \ measured against \u03C9, and its cost"
#     title: "Style calibration, \u03C9"
# ---

# %% [markdown]
# # 05 · Style calibration, ω
#
# *Reading time ≈ 5 min · compute ≈ 42 s CPU for the full run (a few s with `--quick`) · [← 04_slerp](04_slerp.ipynb) · [06_local_mixing →](06_local_mixing.ipynb) · notation: [glossary](README.md#glossary), [docs/method.md](../docs/method.md)*
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
# Every injection starts from the model's stored settings (`InjectionConfig.for_model`; the default
# model has calibration **on** with ω 0.3); ω, and calibration off in the "without" column, are what
# this notebook varies on purpose.

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
n_pairs = 4             # (content i, style i) pairs, zipped in file order
content_dir = None      # a folder of content images (any size, loaded at the model's size); None → the sample faces (diffstyle_lab/data/samples/content)
style_dir = None        # a folder of style images; None → the sample faces (diffstyle_lab/data/samples/style)
gamma = None            # γ of normalised Slerp; None → the model's default
omega = None            # the slider's starting ω; None → the model's default (the paper's 0.3 if it has none)
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
from diffstyle_lab.evaluate import metrics
from diffstyle_lab.lab import notebook as nb

t_start = time.perf_counter()
m = nb.load(model, device, threads)
cfg = nb.config(m, gamma=gamma, omega=omega, t_edit=t_edit, t_boost=t_boost, seed=seed)   # the model's defaults
gamma, omega, t_edit, t_boost = cfg.gamma, cfg.omega, cfg.t_edit, cfg.t_boost
nb.show_box(m, "style calibration (ω = 0.3) keeps more of the style's colours and texture than injection "
               "without it, at little cost to the content (§4.3, Fig. 7).", about="style calibration against no calibration")
content, style, c_names, s_names = nb.load_pairs(m, n_pairs, content_dir, style_dir)
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
    return dl.inject(m, ci.select([i]), si.select([i]), cfg, gamma=float(gamma), calibrate=calibrate,
                     omega=float(omega), steps=n_steps, progress=False).images[0]


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
# uncalibrated result, then the calibrated result for each ω). Varied on purpose: ω, and calibration
# off in the third column; everything else is the model's default. `widget_steps` steps here,
# `steps` in the measured curves below.

# %%
fig = view.sweep_figure("omega", omegas, rows=[{"pair": p} for p in pair_names[:2]],
                        keep=("content", "style", "without calibration"), result="with calibration",
                        fmt="ω={value}", row_labels=[f"pair {k}" for k in range(min(2, n))],
                        title=f"varied: ω (and calibration off, 3rd column); model defaults otherwise "
                              f"(γ={gamma:g}, t_edit={t_edit}); {widget_steps} steps")
nb.save_figure(fig, out_dir, "omega_sweep")
nb.show(fig)

# %% [markdown]
# ## 2. One calibrated step by hand
#
# What `calibrate=True` does at an editing step, written out: the injected prediction ε̃ = ε(x_t | h̃)
# and the plain one ε = ε(x_t) give the shift `maths.calibration_shift(x_t, ε, ε̃, ᾱ_t, ω)`; the
# calibrated x'_t = x_t + dx gets a fresh ε(x'_t) and a **plain** DDIM step from there. On a two-point
# grid in float64, without boosting (the library call gets the same settings), it must equal
# `dl.inject(..., calibrate=True)`. **The image is mostly noise**: two steps are far too few to
# denoise; the point is the equality.

# %%
from diffstyle_lab import maths

m64 = nb.float64_copy(m)          # a float64 copy for an exact comparison
hu64, acp = m64.hooked, m64.alphas_cumprod
inv_c = dl.ddim_invert(m64, content[:1].double(), steps=inversion_steps, progress=False)
inv_s = dl.ddim_invert(m64, style[:1].double(), steps=inversion_steps, progress=False)
t_last, t_first = dl.timestep_grid(2, "authors", m64.T)
a_t, a_prev = float(acp[t_first]), float(acp[t_last])
with torch.no_grad():
    with hu64.record() as rec:
        hu64.eps(inv_c.x_T, t_first)
    h_content = rec["h"]
    x_t = inv_s.x_T
    with hu64.record() as rec:
        eps = hu64.eps(x_t, t_first)
    h_tilde = maths.normalised_slerp(rec["h"], h_content, gamma)
    with hu64.hooks(h=lambda _: h_tilde):
        eps_tilde = hu64.eps(x_t, t_first)
    x_cal = x_t + maths.calibration_shift(x_t, eps, eps_tilde, a_t, omega)    # the calibration
    eps_cal = hu64.eps(x_cal, t_first)                                        # a fresh ε at x'_t
    x = maths.asymmetric_step(x_cal, eps_cal, eps_cal, a_t, a_prev)           # a plain DDIM step
    eps_0 = hu64.eps(x, t_last)
    by_hand = maths.asymmetric_step(x, eps_0, eps_0, a_prev, 1.0)
ref = dl.inject(m64, inv_c, inv_s, gamma=gamma, t_edit=max(t_edit, 1), t_boost=0, steps=2, calibrate=True,
                omega=omega, method="normalised_slerp", clip_x0=False, progress=False)
diff_cal = float((by_hand.cpu() - ref.images.double()).abs().max())
print(f"calibration_shift + one plain step vs dl.inject(calibrate=True, ω={omega:g}), 2 steps: max |Δ| = {diff_cal:.1e}")
assert diff_cal <= 1e-6, "the calibrated step written out does not reproduce calibrate=True"

# %% [markdown]
# ## 3. Measured over all pairs
#
# For each ω, a batched calibrated injection of all pairs (`steps` steps), against the uncalibrated
# one: colour statistics and background colour distance to the style (style kept?), structure
# similarity with the content (content kept?). The solid orange line is the run without calibration;
# the dashed line is no injection (γ = 0), the dotted and dash-dotted lines the pixel blend and
# Reinhard's colour transfer (legend in the left panel).

# %%
images = {}


def run(calibrate, w, g=gamma):
    with nb.stopwatch() as sw:
        r = dl.inject(m, ci, si, cfg, gamma=g, calibrate=calibrate, omega=float(w), steps=steps, progress=False)
    images[(calibrate, w if calibrate else None, g)] = r.images
    return metrics.measures(r.images, content, style).assign(omega=w if calibrate else None, calibrate=calibrate,
                                                        pair=range(n), seconds=sw.seconds)


base = run(False, 0.0)
run(False, 0.0, g=0.0)                      # no injection, for scale
table = pd.concat([base] + [run(True, w) for w in sorted({float(x) for x in omegas} | {float(omega)})],
                  ignore_index=True)
refs = nb.reference_measures(images[(False, None, 0.0)], content, style)   # γ = 0 and the two cheap baselines
nb.save_settings(out_dir, m, cfg, omega="the ω sweep and slider", calibrate="off in the 'without calibration' runs")
if out_dir:
    os.makedirs(out_dir, exist_ok=True)
    table.to_csv(os.path.join(out_dir, "omega_measures.csv"), index=False)
cal = table[table.calibrate].groupby("omega").mean(numeric_only=True)
unc = base.mean(numeric_only=True)

fig, axes = plt.subplots(1, 3, figsize=(15, 3.2))
for ax, col, label in zip(axes, ["colour_dist_style", "bg_dist_style", "struct_content"],
                          ["colour statistics distance to style", "background colour distance to style",
                           "structure similarity with content"]):
    ax.plot(cal.index, cal[col], "o-", label="calibrated")
    ax.axhline(unc[col], ls="-", color="C1", label="without calibration")
    nb.draw_references(ax, refs, col)
    # the axis starts at 0 (a zoomed axis makes noise around a line look like an effect)
    top = max(cal[col].max(), unc[col], *(float(df[col].mean()) for df in refs.values()))
    ax.set_ylim(0, 1.0 if col.startswith("struct") else 1.1 * top)
    ax.set_xlabel("ω")
    ax.set_ylabel(label, fontsize=8)
axes[-1].legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
fig.suptitle(f"mean over {n} pairs, {steps} steps; varied: ω, calibration; model defaults otherwise (γ={gamma:g}); "
             "lines: without calibration, no injection, the two cheap baselines", fontsize=9)
fig.tight_layout()
nb.save_figure(fig, out_dir, "omega_curves")
nb.show(fig)
pd.concat([unc.to_frame("without").T, cal])[
    ["colour_dist_style", "bg_dist_style", "struct_content", "struct_style", "tv", "seconds"]].round(3)

# %% [markdown]
# ## Exercise
#
# Move ω to 1 (the formula then keeps only the normalisation term): is the result closer to the
# run without injection than the model's ω is? Measure the mean pixel difference to the γ = 0 run
# for both, per pair, and compare them with a paired interval.
#
# *The solution cell below (tagged `solution`) runs with the notebook, so it is tested.*

# %% tags=["solution"]
def px_pairs(a, b):
    return ((a.clamp(-1, 1) - b.clamp(-1, 1)).abs().flatten(1).mean(1) * 127.5).numpy()


w1 = images.get((True, 1.0, gamma))     # ω = 1 is in the sweep by default: its run is reused
if w1 is None:
    w1 = dl.inject(m, ci, si, cfg, calibrate=True, omega=1.0, steps=steps, progress=False).images
c = nb.compare(px_pairs(w1, images[(False, None, 0.0)]), px_pairs(images[(True, float(omega), gamma)], images[(False, None, 0.0)]))
print(f"pixel difference to no injection: ω=1 {nb.interval_text(*c['value'], digits=1)} vs ω={omega:g} "
      f"{nb.interval_text(*c['ref'], digits=1)}; difference {nb.interval_text(*c['diff'], digits=1, sign=True)} — {c['effect']}")

# %% [markdown]
# ## What the figures show
#
# Computed from this run. Compare each calibrated column with the uncalibrated one: calibration is
# meant to keep more of the style's colours (lower distances to the style) without losing the
# content (structure similarity with the content should not fall much). The axes start at 0, so a
# small wobble around a line stays small; the sentences below decide with paired intervals. Per the method notes,
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
  → the lowest mean is at ω={best:g} (means only: the paired intervals at the model's ω are the last lines).
• background colour distance to the style: without {unc.bg_dist_style:.1f}; calibrated {', '.join(f'ω={w:g}: {v:.1f}' for w, v in cal.bg_dist_style.items())}.
• structure similarity with the content: without {unc.struct_content:.3f}; calibrated {', '.join(f'ω={w:g}: {v:.3f}' for w, v in cal.struct_content.items())}.
• mean pixel difference (0–255): calibrated ω={w_lo:g} vs uncalibrated {px(images[(True, w_lo, gamma)], uncal_img):.1f}; calibrated ω={w_hi:g} vs no injection {px(images[(True, w_hi, gamma)], none_img):.1f}; for scale, uncalibrated vs no injection {px(uncal_img, none_img):.1f}.
• cost: {unc.seconds:.1f} s without and {cal.seconds.mean():.1f} s with calibration per batch of {n} pairs.
• one re-render of the ω view: {latency:.2f} s ({widget_steps} steps; goal well under 2 s).
• calibration_shift + one plain step written out equals dl.inject(calibrate=True): max |Δ| = {diff_cal:.1e}.""")
at_w = table[table.calibrate & (table.omega == float(omega))].reset_index(drop=True)
refs_c = {**refs, "without calibration": base}
nb.show_claims(at_w, refs_c, {"colour_dist_style": ("colour statistics distance to the style", "lower"),
                              "struct_content": ("structure similarity with the content", "higher")},
               name=f"calibrated ω={omega:g}", digits=2)
print(f"""Time of this notebook: wall {time.perf_counter() - t_start:.1f} s, CPU {time.process_time():.1f} s.""")
