# ---
# jupyter:
#   diffstyle_lab:
#     cpu_s: 56.0
#     injects: true
#     needs:
#     - content_dir
#     - ood_dir
#     prerequisites:
#     - 04_slerp
#     quick:
#       inversion_steps: 8
#       n_contents: 2
#       n_styles: 2
#       steps: 8
#       widget_steps: 6
#     reading_minutes: 6
#     teaches: out-of-domain style images (`data/ood/`, procedural paintings), how much
#       of them the face model can regenerate, t_boost = 0 (the paper's advice) vs 200
#     title: Out-of-domain styles
# ---

# %% [markdown]
# # 07 · Out-of-domain styles
#
# *Reading time ≈ 6 min · compute ≈ 56 s CPU for the full run (a few s with `--quick`) · [← 06_local_mixing](06_local_mixing.ipynb) · [08_sweep →](08_sweep.ipynb) · notation: [glossary](README.md#glossary), [docs/method.md](../docs/method.md)*
#
# **What you will learn**
#
# * content injection with a style image the model was never trained on — here procedural
#   "paintings" and textures shipped in `data/ood/` (stripes, a sunset, clouds, a checkerboard, a
#   swirl, a mosaic; see `data/ood/README.md`): invert the painting to its x_T, run the reverse
#   process from it and inject a face's h;
# * how well the face model can even reproduce an out-of-domain image through DDIM inversion
#   (γ = 0), which bounds how much of its style can survive;
# * the paper's advice for this case, **t_boost = 0** (no stochastic quality boosting, which — the
#   paper argues — pulls the image back towards the training domain), compared with t_boost = 200.
#
# Your own images work too: set `ood_dir` to a folder of pictures (any size; centre-cropped), and
# `content_dir` to your faces. Every injection starts from the model's stored settings
# (`InjectionConfig.for_model`); **t_boost is varied on purpose** (0, the paper's advice for
# out-of-domain styles, against `t_boost_compare`), and said so in each figure's title.

# %%
# Colab / Kaggle only (a local kernel skips it): clone your copy of diffstyle_lab ($DIFFSTYLE_LAB_REPO, its git URL) and pip-install it.
import os, sys  # noqa: E401
if ("google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ) and os.system("pip show -q diffstyle_lab"):
    print("Set DIFFSTYLE_LAB_REPO to the git URL of your copy of diffstyle_lab (os.environ['DIFFSTYLE_LAB_REPO'] = 'https://…') and run this cell again.") if not os.environ.get("DIFFSTYLE_LAB_REPO") else (os.system(f"git clone -q --depth 1 {os.environ['DIFFSTYLE_LAB_REPO']} dsl && pip install -q -e 'dsl[notebooks]'"), sys.path.insert(0, "dsl"))

# %% tags=["parameters"]
model = None            # None → the embedded default model; or a diffusers folder / hub id (load_model)
device = None           # None → $DIFFSTYLE_LAB_DEVICE, else cuda if available, else cpu
threads = 1             # torch CPU threads (None → torch's default); see nb.load
ood_dir = None          # a folder of style images; None → the shipped data/ood/
inversion_steps = 50    # DDIM inversion grid
steps = 50              # generation steps of the grids and the table
widget_steps = 12       # generation steps of the interactive view
n_styles = 6            # how many out-of-domain style images to use
n_contents = 3          # how many content images to use
content_dir = None      # a folder of content images (any size, loaded at the model's size); None → the sample faces (diffstyle_lab/data/samples/content)
gamma = None            # γ of normalised Slerp; None → the model's default
t_edit = None           # inject while t ≥ t_edit; None → the model's default (InjectionConfig.for_model)
t_boost = 0             # varied on purpose: the paper's advice for out-of-domain styles (model default: 200 for faces32)
t_boost_compare = None  # the other setting compared; None → the model's default t_boost
seed = 0
cache_dir = None        # also keep inversions on disk in this folder (an InversionCache); None → memory only
out_dir = None          # a folder for the figures and the table; None → only shown

# %%
import time

import ipywidgets as widgets
import pandas as pd
import torch

import diffstyle_lab as dl
from diffstyle_lab.evaluate import metrics
from diffstyle_lab.lab import notebook as nb
from diffstyle_lab.faces import procedural

t_start = time.perf_counter()
m = nb.load(model, device, threads)
cfg = nb.config(m, gamma=gamma, t_edit=t_edit, seed=seed)       # the model's defaults
gamma, t_edit = cfg.gamma, cfg.t_edit
t_boost_compare = cfg.t_boost if t_boost_compare is None else int(t_boost_compare)
nb.save_settings(out_dir, m, cfg, t_boost=f"varied on purpose: {t_boost} (the paper's advice) vs {t_boost_compare}")
folder = ood_dir or nb.ood_folder()
if os.path.isdir(folder):
    styles, st_names = nb.load_folder(folder, m.sample_size)
else:   # a pip-installed copy without data/: make the same images in memory
    from diffstyle_lab.images import to_tensor
    from PIL import Image
    made = procedural.ood_images()
    styles = torch.cat([to_tensor(Image.fromarray(a).resize((m.sample_size,) * 2, Image.LANCZOS)) for a in made.values()])
    st_names = list(made)
styles, st_names = styles[:n_styles], st_names[:n_styles]
content, c_names = nb.load_images(content_dir or nb.data_path("samples", "content"), m.sample_size, "content_dir")
content, c_names = content[:n_contents], c_names[:n_contents]
store = nb.InversionStore(m, steps=inversion_steps, disk=cache_dir)
with nb.stopwatch() as sw:
    ci, si = store(content), store(styles)
print(f"model: {m.source} on {m.device}; {len(styles)} styles from {folder}; {len(content)} contents; "
      f"inversions once: {sw.seconds:.1f} s")

# %% [markdown]
# ## 1. Every style × every content (the parameter `t_boost`: 0 by default, the paper's advice)
#
# Columns: the style image, its regeneration from its own x_T without injection (γ = 0: what the
# face model makes of it), then the result for each content face. All pairs run as one batch
# (`pairs="product"`).

# %%
def product_run(tb, gamma_=gamma):
    kw = dict(t_boost=min(int(tb), t_edit), steps=steps, progress=False)
    res = dl.inject(m, ci, si, cfg, gamma=gamma_, pairs="product", **kw).images
    ref = dl.generate(m, si.x_T, steps=steps, t_boost=kw["t_boost"], seed=seed, progress=False).float().cpu()   # γ = 0
    return res.view(len(content), len(styles), *res.shape[1:]), ref


with nb.stopwatch() as sw:
    res, recon = product_run(t_boost)
print(f"{len(content) * len(styles)} injections + {len(styles)} regenerations in {sw.seconds:.1f} s")
rows = [[styles[j], recon[j]] + [res[i, j] for i in range(len(content))] for j in range(len(styles))]
fig = nb.grid_figure([[None, None] + list(content)] + rows, row_labels=["content"] + st_names,
                     col_labels=["style", "γ = 0"] + [f"× {c}" for c in c_names],
                     title=f"out-of-domain styles; varied: t_boost={t_boost}; model defaults otherwise "
                           f"(γ={gamma:g}, t_edit={t_edit}, calibrate={cfg.calibrate})")
nb.save_figure(fig, out_dir, "ood_grid")
nb.show(fig)

# %% [markdown]
# ## 2. The two boosting settings: `t_boost` (0 by default) versus `t_boost_compare` (200 by default)
#
# The same injections with boosting on up to the parameter `t_boost_compare`. Measures per setting, averaged
# over all (style, content) pairs: colour statistics distance to the style image (does the
# painting's palette survive?), structure similarity with the content face and with the style.

# %%
res_b, recon_b = product_run(t_boost_compare)
rows = [[styles[j], res[0, j], res_b[0, j], recon[j], recon_b[j]] for j in range(len(styles))]
fig = nb.grid_figure(rows, row_labels=st_names,
                     col_labels=["style", f"t_boost={t_boost}", f"t_boost={t_boost_compare}",
                                 f"γ=0, t_boost={t_boost}", f"γ=0, t_boost={t_boost_compare}"],
                     title=f"content: {c_names[0]}; varied: t_boost; model defaults otherwise")
nb.save_figure(fig, out_dir, "t_boost_compare")
nb.show(fig)

flat_c = content.repeat_interleave(len(styles), 0)
flat_s = styles.repeat(len(content), 1, 1, 1)
table = pd.concat([
    metrics.measures(r.reshape(-1, *r.shape[2:]), flat_c, flat_s).assign(
        t_boost=tb, style=st_names * len(content), content=[c for c in c_names for _ in st_names])
    for tb, r in ((t_boost, res), (t_boost_compare, res_b))], ignore_index=True)
recon_table = pd.concat([metrics.measures(r, None, styles).assign(t_boost=tb, style=st_names)
                         for tb, r in ((t_boost, recon), (t_boost_compare, recon_b))], ignore_index=True)
if out_dir:
    os.makedirs(out_dir, exist_ok=True)
    table.to_csv(os.path.join(out_dir, "ood_measures.csv"), index=False)
cols = ["colour_dist_style", "bg_dist_style", "struct_content", "struct_style", "tv"]
by_tb = table.groupby("t_boost")[cols].mean()
by_tb.round(3)

# %% [markdown]
# Per style (at the parameter `t_boost`): how close the regeneration without injection stays to the style
# image (PSNR, colour distance), and what the injection keeps.

# %%
per_style = table[table.t_boost == t_boost].groupby("style", sort=False)[cols].mean()
per_style["recon_psnr"] = recon_table[recon_table.t_boost == t_boost].set_index("style").psnr_style
per_style["recon_colour_dist"] = recon_table[recon_table.t_boost == t_boost].set_index("style").colour_dist_style
per_style.round(2)

# %% [markdown]
# ## 3. Interactive: pick a style, a face and γ
#
# Inversions are cached; a re-render is one injection with `widget_steps` steps. The static path
# is the grid of section 1.

# %%
def render(style_name, content_name, gamma, t_boost):
    j, i = st_names.index(style_name), c_names.index(content_name)
    r = dl.inject(m, ci.select([i]), si.select([j]), cfg, gamma=float(gamma), t_boost=min(int(t_boost), t_edit),
                  steps=widget_steps, progress=False)
    return {"content": content[i], "style": styles[j], "result": r.images[0]}


view = nb.Explorer(render, {
    "style_name": widgets.Dropdown(options=st_names, value=st_names[0], description="style"),
    "content_name": widgets.Dropdown(options=c_names, value=c_names[0], description="content"),
    "gamma": widgets.FloatSlider(value=gamma, min=0.0, max=1.0, step=0.05, description="γ", continuous_update=False),
    "t_boost": widgets.ToggleButtons(options=[t_boost, t_boost_compare], value=t_boost, description="t_boost")})
view.show()
latency = view.set(gamma=min(1.0, gamma + 0.2))
print(f"one re-render took {latency:.2f} s ({widget_steps} steps)")

# %% [markdown]
# ## Exercise
#
# Raise γ to 0.6 for the first content face at the parameter `t_boost`: does more of the face
# survive (structure similarity with the content), per style, than at the model's γ? Compare per
# style with a paired interval.
#
# *The solution cell below (tagged `solution`) runs with the notebook, so it is tested.*

# %% tags=["solution"]
hi_g = dl.inject(m, ci.select([0] * len(styles)), si, cfg, gamma=0.6, t_boost=min(t_boost, t_edit), steps=steps,
                 progress=False).images
sc_hi = metrics.measures(hi_g, content[:1].expand(len(styles), -1, -1, -1), styles).struct_content.to_numpy()
sc_lo = table[(table.t_boost == t_boost) & (table.content == c_names[0])].struct_content.to_numpy()
c = nb.compare(sc_hi, sc_lo)
print(f"structure similarity with {c_names[0]}: γ=0.6 {nb.interval_text(*c['value'])} vs γ={gamma:g} "
      f"{nb.interval_text(*c['ref'])}; difference {nb.interval_text(*c['diff'], sign=True)} — {c['effect']}")

# %% [markdown]
# ## What the figures show
#
# Computed from this run. In the grid, look at the γ = 0 column first: it shows how much of each
# painting the face model can regenerate at all; the style that survives injection cannot be more
# than that. Then compare the two t_boost settings: per the paper, boosting pulls out-of-domain
# images towards the training domain (faces on plain backgrounds), which would show as a larger
# colour distance to the style with the larger boosting setting (`t_boost_compare`).

# %%
lo, hi = by_tb.loc[t_boost], by_tb.loc[t_boost_compare]
c_tb = nb.compare(table[table.t_boost == t_boost_compare].colour_dist_style.to_numpy(),
                  table[table.t_boost == t_boost].colour_dist_style.to_numpy())
verdict = (f"colour distance with t_boost={t_boost_compare} minus with t_boost={t_boost}: "
           f"{nb.interval_text(*c_tb['diff'], digits=1, sign=True)} — "
           + {"higher": f"t_boost={t_boost} keeps the painting's colours closer"
              + (", as the paper advises" if t_boost < t_boost_compare else ""),
              "lower": f"t_boost={t_boost_compare} keeps the painting's colours closer"}.get(c_tb["effect"], c_tb["effect"]))
best = per_style.recon_psnr.idxmax()
worst = per_style.recon_psnr.idxmin()
print(f"""Measured on {m.source}, {len(styles)} styles × {len(content)} faces, γ={gamma:g}, {steps} steps:
• colour statistics distance to the style: t_boost={t_boost}: {lo.colour_dist_style:.1f}, t_boost={t_boost_compare}: {hi.colour_dist_style:.1f}
  → {verdict}.
• structure similarity with the content face: {lo.struct_content:.3f} (t_boost={t_boost}) vs {hi.struct_content:.3f} (t_boost={t_boost_compare});
  with the style image: {lo.struct_style:.3f} vs {hi.struct_style:.3f}.
• regeneration without injection (t_boost={t_boost}): PSNR to the style from {per_style.recon_psnr.min():.1f} dB ({worst}) to {per_style.recon_psnr.max():.1f} dB ({best}).
• one re-render of the view: {latency:.2f} s ({widget_steps} steps; goal well under 2 s).
Time of this notebook: wall {time.perf_counter() - t_start:.1f} s, CPU {time.process_time():.1f} s.""")
