# ---
# jupyter:
#   diffstyle_lab:
#     cpu_s: 42.0
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
#     reading_minutes: 6
#     teaches: "masks on the h grid (4\xD74 toggle buttons for the default model), how\
#       \ local the change is (inside vs outside the mask)"
#     title: 'Local mixing: inject content in part of the image'
# ---

# %% [markdown]
# # 06 · Local mixing: inject content in part of the image
#
# *Reading time ≈ 6 min · compute ≈ 42 s CPU for the full run (a few s with `--quick`) · [← 05_calibration](05_calibration.ipynb) · [07_out_of_domain →](07_out_of_domain.ipynb) · notation: [glossary](README.md#glossary), [docs/method.md](../docs/method.md)*
#
# **What you will learn**
#
# * h is a spatial map (4×4 cells for the default 32-px model; 8×8 for the 256-px DDPM models), so
#   content can be injected in some cells only: h̃ = m ⊙ Slerp(…) + (1 − m) ⊙ h
#   (`InjectionConfig(mask=…)`, any resolution, resized to h's);
# * how to pick the cells with a grid of toggle buttons, and the fixed masks of the static path;
# * how local the effect is: the change of the image inside the masked region versus outside it,
#   measured against the run without injection.
#
# How local the result is on the model given as a parameter is measured, not assumed: one cell of
# h sees much more than its own patch of pixels. Every injection starts from the model's stored
# settings (`InjectionConfig.for_model`); the mask is what this notebook varies on purpose.

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
steps = 50              # generation steps of the measured table
widget_steps = 12       # generation steps of the interactive view and its static path
n_pairs = 4             # (content i, style i) pairs, zipped in file order
content_dir = None      # a folder of content images (any size, loaded at the model's size); None → the sample faces (diffstyle_lab/data/samples/content)
style_dir = None        # a folder of style images; None → the sample faces (diffstyle_lab/data/samples/style)
gamma = None            # content share inside the mask; None → the model's default γ
mask_norm = "normalised"  # "normalised": normalised Slerp inside the mask; "none": plain Slerp (the authors' code)
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
import numpy as np
import pandas as pd
import torch

import diffstyle_lab as dl
from diffstyle_lab.evaluate import metrics
from diffstyle_lab.lab import notebook as nb

t_start = time.perf_counter()
m = nb.load(model, device, threads)
cfg = nb.config(m, gamma=gamma, mask_norm=mask_norm, t_edit=t_edit, t_boost=t_boost, seed=seed)   # the model's defaults
gamma, t_edit, t_boost = cfg.gamma, cfg.t_edit, cfg.t_boost
nb.show_box(m, "injecting h only in the cells of a mask changes the image there and keeps the rest "
               "(local mixing, §4.4, Fig. 9).", about="local mixing (inside against outside a mask)")
content, style, c_names, s_names = nb.load_pairs(m, n_pairs, content_dir, style_dir)
n = len(content)
pair_names = [f"{c_names[i]} × {s_names[i]}" for i in range(n)]
store = nb.InversionStore(m, steps=inversion_steps, disk=cache_dir)
with nb.stopwatch() as sw:
    ci, si = store(content), store(style)
_, H, W = nb.h_shape(m)
print(f"model: {m.source} on {m.device}; h grid {H}×{W} (one cell ≈ {m.sample_size // H}×{m.sample_size // W} px); "
      f"{n} pairs; inversions once: {sw.seconds:.1f} s")

# %% [markdown]
# ## 1. Fixed masks on the h grid
#
# A mask is an H×W array of 0/1 over h's cells. The static path uses these; the toggles below start
# from the first one.

# %%
def cells(fn):
    return tuple(tuple(int(fn(i, j)) for j in range(W)) for i in range(H))


MASKS = {
    "top half": cells(lambda i, j: i < H // 2),
    "bottom half": cells(lambda i, j: i >= H // 2),
    "left half": cells(lambda i, j: j < W // 2),
    "centre": cells(lambda i, j: H // 4 <= i < H - H // 4 and W // 4 <= j < W - W // 4),
    "everywhere": cells(lambda i, j: True),
}


def mask_tensor(value):
    return nb.mask_from_cells(value)


def local_change(result, reference, mask):
    """Mean |result − reference| (0–255, over channels) inside and outside the mask at image size."""
    d = (result.clamp(-1, 1) - reference.clamp(-1, 1)).abs().mean(-3) * 127.5        # B×S×S
    mm = nb.upsample_mask(mask, result.shape[-1]).bool()
    inside = d[:, mm].mean(1)
    outside = d[:, ~mm].mean(1) if (~mm).any() else torch.full_like(inside, float("nan"))
    return inside, outside

# %% [markdown]
# ## 2. Toggle the cells
#
# Click cells to switch them on (content injected there) or off; the row shows the mask at image
# resolution (orange: content injected; grey: left alone), the style regenerated without injection,
# the locally mixed result, and where the result differs from the no-injection run (a 2-D map of the
# mean absolute change per pixel, 0–255; brighter = larger change).

# %%
@functools.lru_cache(maxsize=16)
def reference(i, n_steps):
    """The style regenerated from its x_T without injection (γ = 0)."""
    return dl.generate(m, si.select([i]).x_T, steps=n_steps, t_boost=t_boost, seed=seed, progress=False).float().cpu()


def render(pair, mask, gamma=gamma, mask_norm=mask_norm):
    i = pair_names.index(pair)
    mk = mask_tensor(mask)
    ref = reference(i, widget_steps)
    if mk.sum() == 0:
        out = ref
    else:
        out = dl.inject(m, ci.select([i]), si.select([i]), cfg, gamma=float(gamma), mask=mk, mask_norm=mask_norm,
                        steps=widget_steps, progress=False).images
    diff = (out.clamp(-1, 1) - ref.clamp(-1, 1)).abs().mean(1)[0] * 127.5            # 0–255, as in section 3
    on = nb.upsample_mask(mk, m.sample_size)[None]                                   # 1: injected, 0: kept
    shown = on * torch.tensor([1.0, 0.2, -0.8])[:, None, None] + (1 - on) * -0.6      # orange: injected, grey: kept
    return {"content": content[i], "style": style[i], "mask (orange: injected)": shown,
            "no injection": ref[0], "local mixing": out[0], "|change| (0–255)": diff}


toggles = nb.mask_toggles(H, W, initial=MASKS["top half"])
view = nb.Explorer(render, {
    "pair": widgets.Dropdown(options=pair_names, value=pair_names[0], description="pair"),
    "mask": toggles,
    "gamma": widgets.FloatSlider(value=gamma, min=0.0, max=1.0, step=0.05, description="γ", continuous_update=False),
    "mask_norm": widgets.ToggleButtons(options=["normalised", "none"], value=mask_norm, description="norm")})
view.show()
latency = view.set(mask=MASKS["centre"])
print(f"one re-render after changing the mask took {latency:.2f} s ({widget_steps} steps)")

# %% [markdown]
# **Static path** — the fixed masks for the first pair (each row one mask). The |change| maps share
# one colour scale (the bar on the right), so a dim map is a small change, not an auto-scaled one.

# %%
fig = view.static_figure([{"pair": pair_names[0], "mask": v} for v in MASKS.values()], row_labels=list(MASKS),
                         title=f"varied: the mask; model defaults otherwise (γ={gamma:g}, t_edit={t_edit}, "
                               f"calibrate={cfg.calibrate}), mask_norm={mask_norm}, {widget_steps} steps",
                         clim="shared", colorbar="|change| vs no injection (0–255)", cell=1.7)
nb.save_figure(fig, out_dir, "masks")
nb.show(fig)

# %% [markdown]
# ## 3. How local is it?
#
# For every fixed mask, one batched run over all pairs with `steps` steps. "inside" and "outside"
# are the mean absolute change (0–255) against the no-injection run, in the pixels under the mask
# (at image resolution) and in the rest. A ratio above 1 means the change concentrates under the mask
# — but the image does not change evenly even without a mask, so `ratio_unmasked` splits the change of
# the unmasked ("everywhere") injection over the same two regions: a mask is local where its ratio
# clearly exceeds that one (the summary's rule of thumb: by more than 20 %).

# %%
ref_all = dl.generate(m, si.x_T, steps=steps, t_boost=t_boost, seed=seed, progress=False).float().cpu()   # γ = 0
nb.save_settings(out_dir, m, cfg, mask="the fixed masks and the toggles")
rows, outs = [], {}
for name, value in MASKS.items():
    mk = mask_tensor(value)
    out = outs[name] = dl.inject(m, ci, si, cfg, mask=mk, steps=steps, progress=False).images
    inside, outside = local_change(out, ref_all, mk)
    meas = metrics.measures(out, content, style)
    for i in range(n):
        rows.append({"mask": name, "pair": i, "inside": float(inside[i]), "outside": float(outside[i]),
                     "struct_content": meas.struct_content[i], "bg_dist_style": meas.bg_dist_style[i]})
table = pd.DataFrame(rows)
if out_dir:
    os.makedirs(out_dir, exist_ok=True)
    table.to_csv(os.path.join(out_dir, "local_change.csv"), index=False)
loc = table.groupby("mask", sort=False).mean(numeric_only=True).drop(columns="pair")
loc["ratio"] = loc.inside / loc.outside
# the same split of the *unmasked* injection's change: where the image changes anyway (hair, background),
# a mask over that region has a ratio above 1 without being local
loc["ratio_unmasked"] = [float(np.divide(*(v.mean() for v in local_change(outs["everywhere"], ref_all, mask_tensor(MASKS[k])))))
                         if k != "everywhere" else np.nan for k in loc.index]

fig, ax = plt.subplots(figsize=(6.4, 3.0))
x = np.arange(len(loc))
ax.bar(x - 0.2, loc.inside, 0.4, label="inside the mask")
ax.bar(x + 0.2, loc.outside.fillna(0), 0.4, label="outside the mask")
ax.set_xticks(x, loc.index, fontsize=8)
ax.set_ylabel("mean |change| vs no injection (0–255)", fontsize=8)
ax.set_title(f"mean over {n} pairs, γ={gamma:g}, {steps} steps", fontsize=9)
ax.legend(fontsize=8)
fig.tight_layout()
nb.save_figure(fig, out_dir, "local_change")
nb.show(fig)
loc.round(3).astype(object).where(loc.notna(), "— (no outside)")     # "everywhere" has no outside

# %% [markdown]
# ## Exercise
#
# Use the authors' plain Slerp inside the mask (`mask_norm="none"`) for the "centre" mask: is the
# change inside the mask larger than with normalised Slerp? Compare per pair with a paired interval.
#
# *The solution cell below (tagged `solution`) runs with the notebook, so it is tested.*

# %% tags=["solution"]
centre = mask_tensor(MASKS["centre"])
plain = dl.inject(m, ci, si, cfg, mask=centre, mask_norm="none", steps=steps, progress=False).images
inside_plain, _ = local_change(plain, ref_all, centre)
t_c = table[table["mask"] == "centre"]
c = nb.compare(inside_plain.numpy(), t_c.inside.to_numpy())
print(f"change inside the centre mask: plain Slerp {nb.interval_text(*c['value'], digits=1)} vs normalised "
      f"{nb.interval_text(*c['ref'], digits=1)}; difference {nb.interval_text(*c['diff'], digits=1, sign=True)} — {c['effect']}")

# %% [markdown]
# ## What the figures show
#
# Computed from this run. In the static figure, compare the *|change|* map with the *mask* column:
# a local edit would be bright under the mask and dark elsewhere — look whether it is, or whether
# the whole face changes whatever the mask (the maps share one colour scale). The sentences below
# give, per mask, its inside/outside ratio against the unmasked injection's over the same regions
# (the locality verdict), then a paired interval of (change inside − change outside) over the pairs;
# "everywhere" is the unmasked injection for scale.

# %%
partial = loc.drop(index="everywhere")
print(f"""Measured on {m.source}, {n} pairs, γ={gamma:g}, mask_norm={mask_norm}, {steps} steps:
""" + "\n".join(f"• {k}: change inside {r.inside:.1f}, outside {r.outside:.1f} (ratio {r.ratio:.2f}; the unmasked injection "
                 f"over the same regions: {r.ratio_unmasked:.2f} → {'more local than no mask' if r.ratio > 1.2 * r.ratio_unmasked else 'no more local than no mask'})"
                 for k, r in partial.iterrows()) + f"""
• everywhere (no mask): mean change {loc.loc['everywhere', 'inside']:.1f}.
• the mean ratio inside/outside over the partial masks is {partial.ratio.mean():.2f}.""")
for name_ in partial.index:
    t_ = table[table["mask"] == name_]
    c = nb.compare(t_.inside.to_numpy(), t_.outside.to_numpy())
    print(f"• {name_}: change inside − outside {nb.interval_text(*c['diff'], digits=1, sign=True)} (0–255) — "
          + {"higher": "more change inside than outside (local only if its ratio beats the unmasked one, above)",
             "lower": "more change outside the mask than inside"}
          .get(c["effect"], c["effect"]))
print(f"""• one re-render of the toggle view: {latency:.2f} s ({widget_steps} steps; goal well under 2 s).
Time of this notebook: wall {time.perf_counter() - t_start:.1f} s, CPU {time.process_time():.1f} s.""")
