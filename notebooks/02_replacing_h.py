# %% [markdown]
# # 02 · Replacing h: the paper's first experiment
#
# **What you will learn**
#
# * what happens when the h of a style image's reverse process is **replaced** by the h of a
#   content image (h̃ = h^content), or when the content's h is **added** (h̃ = h + h^content) — the
#   two naive injections the paper starts from (`InjectionConfig(method="replace")` / `"add"`);
# * the paper's explanation of why they distort: they change the norm of h at every step, while the
#   skip connection g (computed from the style's x_t) keeps its own — the |h|–|g| pairing the
#   U-Net was trained on breaks;
# * how **normalised Slerp** (`method="normalised_slerp"`, the paper's method) is built to avoid
#   this: it mixes directions and keeps ‖h̃‖ = ‖h‖ exactly;
# * how large the norm change and the distortion actually are on this model (measured below).
#
# The images and every number in the closing summary are produced by this notebook, on the model
# given as a parameter (default: the embedded 32-px face model, still being trained).

# %%
# Colab / Kaggle only (a local kernel skips it): clone your copy of diffstyle_lab ($DIFFSTYLE_LAB_REPO, its git URL) and pip-install it.
import os, sys  # noqa: E401
if ("google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ) and os.system("pip show -q diffstyle_lab"):
    os.system(f"git clone -q --depth 1 {os.environ['DIFFSTYLE_LAB_REPO']} dsl && pip install -q -e 'dsl[notebooks]'"); sys.path.insert(0, "dsl")

# %% tags=["parameters"]
model = None            # None → the embedded default model; or a diffusers folder / hub id (load_model)
device = None           # None → $DIFFSTYLE_LAB_DEVICE, else cuda if available, else cpu
threads = 1             # torch CPU threads (None → torch's default); see nb.load
inversion_steps = 50    # DDIM inversion grid
steps = 50              # generation steps
n_pairs = 4             # (content i, style i) pairs from diffstyle_lab/data/samples
gamma = 0.3             # γ of normalised Slerp (the paper's default)
t_edit = None           # inject while t ≥ t_edit; None → the model's default (InjectionConfig.for_model)
t_boost = None          # stochastic quality boosting for t ≤ t_boost (clipped to t_edit); None → the model's default
seed = 0
cache_dir = None        # also keep inversions on disk in this folder (an InversionCache); None → memory only
out_dir = None          # a folder to save the figures and the table in; None → only shown

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch

import diffstyle_lab as dl
from diffstyle_lab.evaluate import metrics
from diffstyle_lab.lab import notebook as nb

t_start = time.perf_counter()
m = nb.load(model, device, threads)
t_edit, t_boost = nb.injection_defaults(m, t_edit, t_boost)
content, style, c_names, s_names = nb.sample_pairs(m.sample_size, n_pairs)
n = len(content)
store = nb.InversionStore(m, steps=inversion_steps, disk=cache_dir)
with nb.stopwatch() as sw:
    ci, si = store(content), store(style)
print(f"model: {m.source} on {m.device}; {n} pairs; inversions: {sw.seconds:.1f} s")

# %% [markdown]
# ## 1. Replace, add, normalised Slerp
#
# Every run starts from the style image's x_T and injects the content image's recorded h while
# t ≥ t_edit. A callback records, at each editing step, the norms of the live h, of the injected
# h̃ and of the skip connection g. "no injection" (γ = 0) regenerates the style image from its own
# x_T — the reference for what the model does without any edit.

# %%
METHODS = {
    "no injection": dict(method="normalised_slerp", gamma=0.0),
    "replace": dict(method="replace", gamma=1.0),
    "add": dict(method="add", gamma=1.0),
    f"normalised Slerp γ={gamma:g}": dict(method="normalised_slerp", gamma=gamma),
}


class EditNorms:
    """Records ‖h‖, ‖h̃‖ and ‖g‖ per sample at every editing step."""

    def __init__(self):
        self.rows = []

    def __call__(self, info):
        if info.phase == "inject":
            for i, (h, ht, g) in enumerate(zip(info.h.flatten(1).norm(dim=1), info.h_tilde.flatten(1).norm(dim=1),
                                               info.g.flatten(1).norm(dim=1))):
                self.rows.append({"t": info.t, "pair": i, "h": float(h), "h_tilde": float(ht), "g": float(g)})


results, norms, tables = {}, [], []
cfg = dl.InjectionConfig(t_edit=t_edit, t_boost=min(t_boost, t_edit), steps=steps, seed=seed)
for name, kw in METHODS.items():
    rec = EditNorms()
    with nb.stopwatch() as sw:
        r = dl.inject(m, ci, si, cfg, progress=False, callbacks=[rec], **kw)
    results[name] = r.images
    norms.append(pd.DataFrame(rec.rows).assign(method=name))
    tables.append(metrics.measures(r.images, content, style).assign(method=name, pair=range(n)))
    print(f"{name:28s} {sw.seconds:6.1f} s")
norms = pd.concat(norms, ignore_index=True)
table = pd.concat(tables, ignore_index=True)

rows = [[content[i], style[i]] + [results[k][i] for k in METHODS] for i in range(n)]
fig = nb.grid_figure(rows, col_labels=["content", "style"] + list(METHODS),
                     row_labels=[f"pair {i}" for i in range(n)], cell=1.45)
nb.save_figure(fig, out_dir, "replace_add_slerp")
nb.show(fig)

# %% [markdown]
# ## 2. What each injection does to the norm of h
#
# ‖h̃‖ / ‖h‖ at each editing step (the line is the mean over pairs, the band their range). A ratio
# of 1 means the injected h has the norm the U-Net expects next to this step's g.

# %%
norms["ratio"] = norms["h_tilde"] / norms["h"]
fig, ax = plt.subplots(figsize=(6.2, 3.4))
for k, (name, grp) in enumerate(norms[norms.method != "no injection"].groupby("method", sort=False)):
    s = grp.groupby("t")["ratio"].agg(["mean", "min", "max"]).sort_index()
    ax.plot(s.index, s["mean"], label=name, color=f"C{k}")
    ax.fill_between(s.index, s["min"], s["max"], color=f"C{k}", alpha=0.2, lw=0)
ax.axhline(1, color="0.5", lw=0.8)
ax.set_xlim(m.T - 1, t_edit)
ax.set_xlabel("t  (T on the left; editing interval only)")
ax.set_ylabel("‖h̃‖ / ‖h‖")
ax.legend(fontsize=8)
fig.tight_layout()
nb.save_figure(fig, out_dir, "norm_ratio")
nb.show(fig)

ratio = norms[norms.method != "no injection"].groupby("method", sort=False)["ratio"].agg(["mean", "min", "max"])
ratio

# %% [markdown]
# ## 3. Measures of the results
#
# Per method, averaged over the pairs (`metrics.measures`):
# `struct_content` / `struct_style` — edge-map correlation with the content / style image (shape,
# blind to colour); `bg_dist_style` — distance of the background colour to the style's (0–441);
# `tv` — total variation (noise and blotches raise it); `out_of_range` — share of raw output values
# outside [−1, 1] before clamping (a symptom of a step the model could not handle).

# %%
cols = ["struct_content", "struct_style", "bg_dist_style", "colour_dist_style", "tv", "out_of_range"]
summary = table.groupby("method", sort=False)[cols].mean()
if out_dir:
    os.makedirs(out_dir, exist_ok=True)
    table.to_csv(os.path.join(out_dir, "measures.csv"), index=False)
summary.round(3)

# %% [markdown]
# ## What the figures show
#
# The summary below is computed from this run. Look at the grid for blotches, noise or washed-out
# faces in the *replace* and *add* columns next to *normalised Slerp*, and at the second figure:
# normalised Slerp sits on ‖h̃‖/‖h‖ = 1 by construction, while nothing holds replace and add there —
# how far they move depends on the model and on t (add roughly doubles the norm when the two h are
# alike; replace moves it only as far as the two images' h norms differ). Whether a norm change
# shows up as distortion in the images is what `tv` and `out_of_range` measure (compare them with
# the *no injection* row).

# %%
ns = f"normalised Slerp γ={gamma:g}"
base = summary.loc["no injection"]


def rel(method, col):
    return summary.loc[method, col] - base[col]


dev = (ratio["mean"] - 1).abs()
most = dev.drop(ns).idxmax()
print(f"""Measured on {m.source}, {n} pairs, {steps} steps, t_edit={t_edit}:
• ‖h̃‖/‖h‖ over the editing steps: replace {ratio.loc['replace', 'mean']:.3f} (range {ratio.loc['replace', 'min']:.3f}–{ratio.loc['replace', 'max']:.3f}), add {ratio.loc['add', 'mean']:.3f} (range {ratio.loc['add', 'min']:.3f}–{ratio.loc['add', 'max']:.3f}), normalised Slerp {ratio.loc[ns, 'mean']:.6f} (max deviation from 1: {max(abs(ratio.loc[ns, 'min'] - 1), abs(ratio.loc[ns, 'max'] - 1)):.1e}).
  The injection that moves the norm most is {most!r}.
• Total variation relative to no injection ({base['tv']:.2f}): replace {rel('replace', 'tv'):+.2f}, add {rel('add', 'tv'):+.2f}, normalised Slerp {rel(ns, 'tv'):+.2f}.
• Out-of-range share relative to no injection ({base['out_of_range']:.4f}): replace {rel('replace', 'out_of_range'):+.4f}, add {rel('add', 'out_of_range'):+.4f}, normalised Slerp {rel(ns, 'out_of_range'):+.4f}.
• Structure similarity to the content image: no injection {base['struct_content']:.3f}, replace {summary.loc['replace', 'struct_content']:.3f}, add {summary.loc['add', 'struct_content']:.3f}, normalised Slerp {summary.loc[ns, 'struct_content']:.3f}.
• Background colour distance to the style image: no injection {base['bg_dist_style']:.1f}, replace {summary.loc['replace', 'bg_dist_style']:.1f}, add {summary.loc['add', 'bg_dist_style']:.1f}, normalised Slerp {summary.loc[ns, 'bg_dist_style']:.1f}.
Time of this notebook: wall {time.perf_counter() - t_start:.1f} s, CPU {time.process_time():.1f} s.""")
