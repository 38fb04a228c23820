# ---
# jupyter:
#   diffstyle_lab:
#     cpu_s: 19.6
#     needs:
#     - content_dir
#     - style_dir
#     quick:
#       inversion_steps: 8
#       n_generate: 3
#     reading_minutes: 8
#     teaches: what h (mid-block output) and g (its skip connection) are, where they
#       sit in the U-Net, reading/replacing them with `model.hooked.record()` / `.hooks()`,
#       |h| and |g| along t for inversions and for generation, how alike two images'
#       h are per t; a t slider over an inversion trajectory
#     title: A tour of h-space
# ---

# %% [markdown]
# # 01 · A tour of h-space
#
# *Reading time ≈ 8 min · compute ≈ 20 s CPU for the full run (a few s with `--quick`) · [← notebooks/README](README.md) · [02_replacing_h →](02_replacing_h.ipynb) · notation: [glossary](README.md#glossary), [docs/method.md](../docs/method.md)*
#
# **What you will learn**
#
# * where the two tensors that content injection works on sit in a diffusers U-Net:
#   **h**, the output of the middle block (the bottleneck, "h-space"), and **g**, the skip
#   connection that the first decoder block concatenates with h;
# * how to read (and replace) them with the hook points `model.hooked.record()` / `model.hooked.hooks()`;
# * their shapes and norms, and how |h| and |g| change along the diffusion trajectory t = 999 … 0,
#   for real images (DDIM inversion) and for samples drawn from noise;
# * how similar the h of two different images is at each t.
#
# Everything below is measured in this notebook on the model given as a parameter — by default the
# embedded 32-px face model (`data/models/faces32`, its model card says how it was trained and what it
# can do), with the sample faces of `data/samples/` or your own images (`content_dir`, `style_dir`).
# Trust the printed numbers, not any number you remember from an earlier run.
#
# **A real checkpoint on a GPU.** Everything here runs on any diffusers `UNet2DModel`; for the
# paper's CelebA-HQ model and your own photos, put these in the parameters cell below (or pass them
# with papermill `-p`) and run all:
#
# ```python
# model = "google/ddpm-ema-celebahq-256"     # downloaded once into the Hugging Face cache (≈ 450 MB)
# device = "cuda"
# content_dir = "my_photos/content"          # any size: centre-cropped and resized to 256×256
# style_dir = "my_photos/style"
# inversion_steps = 50
# ```
#
# `notebooks/README.md` ("A real checkpoint on a GPU") has the same for every notebook.

# %%
# Colab / Kaggle only (a local kernel skips it): clone your copy of diffstyle_lab ($DIFFSTYLE_LAB_REPO, its git URL) and pip-install it.
import os, sys  # noqa: E401
if ("google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ) and os.system("pip show -q diffstyle_lab"):
    print("Set DIFFSTYLE_LAB_REPO to the git URL of your copy of diffstyle_lab (os.environ['DIFFSTYLE_LAB_REPO'] = 'https://…') and run this cell again.") if not os.environ.get("DIFFSTYLE_LAB_REPO") else (os.system(f"git clone -q --depth 1 {os.environ['DIFFSTYLE_LAB_REPO']} dsl && pip install -q -e 'dsl[notebooks]'"), sys.path.insert(0, "dsl"))

# %% tags=["parameters"]
model = None            # None → the embedded default model; or a diffusers folder / hub id (load_model)
device = None           # None → $DIFFSTYLE_LAB_DEVICE, else cuda if available, else cpu
threads = 1             # torch CPU threads (None → torch's default); see nb.load
inversion_steps = 50    # DDIM grid (authors' spacing) for the trajectories
n_generate = 8          # samples drawn from noise for the |h|, |g| curves
content_dir = None      # a folder of content images (any size, loaded at the model's size); None → the sample faces (diffstyle_lab/data/samples/content)
style_dir = None        # a folder of style images; None → the sample faces (diffstyle_lab/data/samples/style)
seed = 0
out_dir = None          # a folder to save the figures in; None → only shown

# %%
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

import diffstyle_lab as dl
from diffstyle_lab import hooks, maths
from diffstyle_lab.lab import notebook as nb

t_start = time.perf_counter()
m = nb.load(model, device, threads)
hu = m.hooked
print(f"model: {m.source} on {m.device}; images {m.in_channels}×{m.sample_size}×{m.sample_size}; T = {m.T}")

# %% [markdown]
# ## 1. Where h and g are
#
# The table lists the U-Net's top-level blocks in the order a forward pass runs them. The down
# path halves the resolution from level to level and stores a skip connection after every ResNet; the
# middle block (ResNet → attention → ResNet) turns the deepest features into **h**; the first
# up block concatenates h with the last stored skip, **g**, and the up path rebuilds ε from there
# with the remaining skips.

# %%
blocks = hooks.block_table(m)
h_shape, g_shape = blocks.attrs["h"], blocks.attrs["g"]
print(f"h: {'×'.join(map(str, h_shape))}   g: {'×'.join(map(str, g_shape))}   "
      f"(image {m.sample_size}×{m.sample_size}: one cell of h covers "
      f"{m.sample_size // h_shape[-1]}×{m.sample_size // h_shape[-2]} pixels)")
blocks

# %% [markdown]
# ## 2. Reading and replacing h with the hook points
#
# `with hu.record() as cache:` records h and g of the forward passes inside the block;
# `with hu.hooks(h=fn):` replaces h by `fn(h)`. Both hooks are removed when the block ends, even on
# an error. Here we noise a sample face to t = 500, read h and g, and ask how much ε changes when
# h is replaced by zeros — how much the prediction depends on the bottleneck at this t.

# %%
content, style, content_names, style_names = nb.load_pairs(m, 4, content_dir, style_dir)
images = torch.cat([content, style]).to(m.device)
names = content_names + style_names

gen = torch.Generator().manual_seed(seed)
t = 500
a_t = float(m.alphas_cumprod[t])
x0 = images[:1]
x_t = a_t ** 0.5 * x0 + (1 - a_t) ** 0.5 * torch.randn(x0.shape, generator=gen).to(x0)
with torch.no_grad(), hu.record() as cache:
    eps = hu.eps(x_t, t)
h, g = cache["h"], cache["g"]
with torch.no_grad(), hu.hooks(h=lambda h: torch.zeros_like(h)):
    eps_no_h = hu.eps(x_t, t)
print(f"h {tuple(h.shape)}  ‖h‖ = {h.norm():.2f}  (RMS per element {h.norm() / h.numel() ** 0.5:.3f})")
print(f"g {tuple(g.shape)}  ‖g‖ = {g.norm():.2f}  (RMS per element {g.norm() / g.numel() ** 0.5:.3f})")
sens_500 = float((eps_no_h - eps).norm() / eps.norm())
print(f"‖ε(x_t | h=0) − ε(x_t)‖ / ‖ε(x_t)‖ at t = {t}: {sens_500:.3f}")
print("hooks still attached after the with-blocks:", hu.has_hooks())

# %% [markdown]
# ## 3. |h| and |g| along the trajectory
#
# A sampler callback sees every model evaluation (a `StepInfo` with t, x_t, h and g). We record
# them while inverting the (up to 8) images (x_0 → x_T, deterministic DDIM) and while generating
# `n_generate` images from noise (x_T → x_0). The samples from noise are shown first — look at them
# before reading their curves. A model folder can store how it samples from noise (`generation_defaults` in its
# `diffstyle_lab.json`, here `m.generation`; `dl.sampling.noise_settings(m)` reads them): the default model stores
# `clip_x0`, which clamps the predicted x_0 (P_t) to [−1, 1] at every step, and `eta` 1, which adds fresh noise
# σ_t·z at every step (DDPM-like ancestral steps; η 0 is deterministic DDIM). The paper's sampler does neither, and
# with it a small model can push many pixels to the ends of the range (solid black or white images, or colour noise)
# or leave blotchy, half-drawn faces: fresh noise lets later steps correct earlier mistakes. The first row is drawn
# at the model's settings (its step count too), the second from the same noise with the paper's sampler on the
# inversion's grid; the cell prints the share of
# saturated pixels. `dl.generate` clips and adds noise only when asked — run from an inverted x_T it must give the
# image back; `dl.sample(m, n)` draws from noise at every stored setting, the step count included. The |h|, |g|
# curves of generation below are those of the first row's samples, whatever they look like: compare them with the
# curves of the inverted real images.

# %%
class Trajectory:
    """Keeps t, x_t, h and g of every model evaluation a sampler reports."""

    def __init__(self):
        self.steps = []

    def __call__(self, info):
        self.steps.append((info.t, info.x.cpu(), info.h.cpu(), None if info.g is None else info.g.cpu()))

    def sorted(self):
        s = sorted(self.steps, key=lambda r: r[0])
        ts = np.array([r[0] for r in s])
        x = torch.stack([r[1] for r in s], 1)       # B×n×C×H×W
        h = torch.stack([r[2] for r in s], 1)
        g = torch.stack([r[3] for r in s], 1)
        return ts, x, h, g


with nb.stopwatch() as sw:
    rec_inv = Trajectory()
    dl.ddim_invert(m, images, steps=inversion_steps, progress=False, callbacks=[rec_inv])
    rec_gen = Trajectory()
    x_T = torch.randn((n_generate, m.in_channels, m.sample_size, m.sample_size), generator=gen).to(m.device)
    how = dl.sampling.noise_settings(m)   # the model's stored settings for samples from noise (the paper's unless stored)
    samples = dl.generate(m, x_T, steps=how["steps"], progress=False, callbacks=[rec_gen],
                          clip_x0=how["clip_x0"], eta=how["eta"])
print(f"inverted {len(images)} images and generated {n_generate} in {sw.seconds:.1f} s")
other = dl.generate(m, x_T, steps=inversion_steps, progress=False)   # the same noise, the paper's sampler
model_way = f"{how['steps']} steps, η {how['eta']:g}, clip_x0 {'on' if how['clip_x0'] else 'off'}"
name = {"model": f"the model's settings ({model_way})",
        "paper": f"the paper's sampler ({inversion_steps} steps, η 0, no clipping)"}


def saturated(x):
    """Share of pixel values at the ends of the range (|x| ≥ 0.98 in [−1, 1])."""
    return float((x.float().clamp(-1, 1).abs() >= 0.98).float().mean())


print(f"pixel values at the ends of the range: {100 * saturated(samples):.0f} % of the samples from noise at "
      f"{name['model']}, {100 * saturated(other):.0f} % with {name['paper']}, "
      f"{100 * saturated(images):.0f} % of the real images")
fig = nb.grid_figure([list(samples.float().cpu()), list(other.float().cpu()), list(images.float().cpu())[:n_generate]],
                     row_labels=["from noise,\n" + model_way.replace(", clip", ",\nclip") + "\n(model's)", "from noise,\nη 0, no clip\n(paper's)",
                                 "inverted\n(real)"], cell=1.8,
                     title=f"samples from noise (top: at {name['model']}; middle: the same noise with "
                           f"{name['paper']}) and the inverted real images")
nb.save_figure(fig, out_dir, "samples_from_noise")
nb.show(fig)

ts_inv, x_inv, h_inv, g_inv = rec_inv.sorted()
ts_gen, _, h_gen, g_gen = rec_gen.sorted()
norm = lambda v: v.flatten(2).norm(dim=2).double().numpy()       # noqa: E731  B×n per-sample norms
hn_inv, gn_inv, hn_gen, gn_gen = norm(h_inv), norm(g_inv), norm(h_gen), norm(g_gen)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for ax, (label, a_inv, a_gen) in zip(axes, [("|h|", hn_inv, hn_gen), ("|g|", gn_inv, gn_gen)]):
    for ts, a, name, c in [(ts_inv, a_inv, "inversion of sample faces", "C0"), (ts_gen, a_gen, "generation from noise", "C3")]:
        mu, sd = a.mean(0), a.std(0)
        ax.plot(ts, mu, color=c, label=name)
        ax.fill_between(ts, mu - sd, mu + sd, color=c, alpha=0.2, lw=0)
    ax.set_xlim(m.T - 1, 0)
    ax.set_xlabel("t  (T on the left)")
    ax.set_ylabel(f"{label}  (per-sample L2 norm)")
    ax.legend(fontsize=8)
axes[0].set_title("mean ± s.d. over samples", fontsize=9)
fig.tight_layout()
nb.save_figure(fig, out_dir, "norms_over_t")
nb.show(fig)


def at(ts, a, t):
    """The mean over samples at the grid t nearest to t."""
    return float(a[:, int(np.argmin(np.abs(ts - t)))].mean())


t_hi, t_lo = int(ts_inv.max()), int(ts_inv.min())
print(f"inversion:  |h| {at(ts_inv, hn_inv, t_lo):8.2f} at t={t_lo}  →  {at(ts_inv, hn_inv, t_hi):8.2f} at t={t_hi}")
print(f"            |g| {at(ts_inv, gn_inv, t_lo):8.2f} at t={t_lo}  →  {at(ts_inv, gn_inv, t_hi):8.2f} at t={t_hi}")
print(f"generation: |h| {at(ts_gen, hn_gen, t_lo):8.2f} at t={t_lo}  →  {at(ts_gen, hn_gen, t_hi):8.2f} at t={t_hi}")
print(f"            |g| {at(ts_gen, gn_gen, t_lo):8.2f} at t={t_lo}  →  {at(ts_gen, gn_gen, t_hi):8.2f} at t={t_hi}")

# %% [markdown]
# ## 4. How alike are two images' h?
#
# The mean cosine similarity between the h of two *different* sample faces at the same t. If h
# carries what makes an image itself, this similarity says how much of that is left at each t.

# %%
def mean_pair_cosine(h):
    """Mean cos(h_i, h_j) over pairs i ≠ j, per t (h: B×n×…)."""
    f = torch.nn.functional.normalize(h.flatten(2).double(), dim=2)        # B×n×D
    c = torch.einsum("itd,jtd->tij", f, f)                                  # n×B×B
    b = f.shape[0]
    off = ~torch.eye(b, dtype=torch.bool)
    return c[:, off].mean(1).numpy()


cos_inv = mean_pair_cosine(h_inv)
cos_gen = mean_pair_cosine(h_gen)
fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.plot(ts_inv, cos_inv, label="inversion of sample faces")
ax.plot(ts_gen, cos_gen, label="generation from noise", color="C3")
ax.set_xlim(m.T - 1, 0)
ax.set_xlabel("t  (T on the left)")
ax.set_ylabel("mean cos(h_i, h_j), i ≠ j")
ax.legend(fontsize=8)
fig.tight_layout()
nb.save_figure(fig, out_dir, "pair_cosine_over_t")
nb.show(fig)
print(f"mean cosine between different images' h (inversion): {cos_inv[-1]:.3f} at t={t_hi}, "
      f"{cos_inv[0]:.3f} at t={t_lo}")

# %% [markdown]
# ## 5. Look at h: an interactive view and its static path
#
# Pick an image and a step of its inversion trajectory. The panels are x_t, the model's predicted
# x_0 = P_t(ε), and two 2-D maps: the norm of h over channels in each cell of h's grid, and the same
# for g (brighter = larger; each map has its own scale). One re-render is one U-Net pass plus
# drawing; the latency is printed below the view.

# %%
def render(image, step):
    i, k = names.index(image), int(step)
    t = int(ts_inv[k])
    x_t = x_inv[i, k][None].to(m.device)
    with torch.no_grad(), hu.record() as c:
        e = hu.eps(x_t, t)
    x0_hat = maths.pred_x0(x_t, e, float(m.alphas_cumprod[t]))
    return {"x_t": x_t[0], "predicted x_0": x0_hat[0],
            "|h| per cell": c["h"][0].norm(dim=0), "|g| per cell": c["g"][0].norm(dim=0)}


view = nb.Explorer(render, {
    "image": widgets.Dropdown(options=names, value=names[0], description="image"),
    "step": widgets.IntSlider(value=len(ts_inv) // 2, min=0, max=len(ts_inv) - 1, description="grid step",
                              continuous_update=False)})
view.show()
lat = view.set(step=len(ts_inv) // 4)
print(f"one re-render took {lat:.3f} s")

# %%
steps_shown = sorted({0, len(ts_inv) // 4, len(ts_inv) // 2, 3 * len(ts_inv) // 4, len(ts_inv) - 1})
fig = view.static_figure([{"image": names[0], "step": k} for k in steps_shown],
                         row_labels=[f"t={ts_inv[k]}" for k in steps_shown],
                         title=f"{names[0]} along its inversion trajectory")
nb.save_figure(fig, out_dir, "h_maps")
nb.show(fig)

# %% [markdown]
# ## Exercise
#
# Section 2 replaced h by zeros. Replace it instead by **another image's h** at the same t (the same
# noise added to both images) at t = 900 and at t = 100: how much does ε change, as a share of its
# norm? At which t does the prediction depend more on which image h came from?
#
# *Try it first; the solution cell below (tagged `solution`) runs with the notebook, so it is tested.*

# %% tags=["solution"]
def eps_change_with_other_h(t, i=0, j=1):
    """‖ε(x_t^i | h^j) − ε(x_t^i)‖ / ‖ε(x_t^i)‖ with one noise draw for both images."""
    t = min(int(t), m.T - 1)
    a = float(m.alphas_cumprod[t])
    noise = torch.randn(images[:1].shape, generator=torch.Generator().manual_seed(seed)).to(images)
    x_i, x_j = (a ** 0.5 * images[k:k + 1] + (1 - a) ** 0.5 * noise for k in (i, j % len(images)))
    with torch.no_grad():
        with hu.record() as rec_j:
            hu.eps(x_j, t)
        e = hu.eps(x_i, t)
        with hu.hooks(h=lambda _: rec_j["h"]):
            e_swapped = hu.eps(x_i, t)
    return float((e_swapped - e).norm() / e.norm())


solution = {t: eps_change_with_other_h(t) for t in (900, 100)}
print("ε change when h comes from another image: " + ", ".join(f"t={t}: {100 * v:.1f} %" for t, v in solution.items())
      + f" → the prediction depends more on h at t={max(solution, key=solution.get)}")

# %% [markdown]
# ## What the figures show
#
# The summary below is computed from this run. Things to look for:
#
# * **the table**: h and g have the same spatial size, the smallest in the network; g is the last
#   skip of the down path, so it is computed from x_t alone and never sees h;
# * **|h| and |g| over t**: whether the two norms rise or fall together along t — the paper's
#   argument for normalised Slerp (notebooks 02–04) is that |h| and |g| of the *same* sample go
#   together, so replacing h by another image's h breaks that pairing;
# * **cosine between images**: where in t the h of different faces are most alike, i.e. where h
#   carries the least about which face it is;
# * **the maps**: whether the bright cells of |h| follow the face, and how x_t and the predicted x_0
#   change along the trajectory.

# %%
def trend(a_lo, a_hi):
    """How the value at t_hi compares with the value at t_lo."""
    r = a_hi / a_lo
    word = "larger than" if r > 1.1 else "smaller than" if r < 0.9 else "within ±10 % of"
    return f"is {word} its value at t={t_lo} (ratio {r:.2f})"


hg_same = np.mean([np.corrcoef(hn_inv[:, k], gn_inv[:, k])[0, 1] for k in range(len(ts_inv))])
print(f"""Measured on {m.source}:
• h is {'×'.join(map(str, h_shape))} and g is {'×'.join(map(str, g_shape))} for {m.sample_size}-px images.
• Inversion of the sample faces: mean |h| at t={t_hi} {trend(at(ts_inv, hn_inv, t_lo), at(ts_inv, hn_inv, t_hi))}; mean |g| at t={t_hi} {trend(at(ts_inv, gn_inv, t_lo), at(ts_inv, gn_inv, t_hi))}.
• Generation from noise: mean |h| at t={t_hi} {trend(at(ts_gen, hn_gen, t_lo), at(ts_gen, hn_gen, t_hi))}; mean |g| at t={t_hi} {trend(at(ts_gen, gn_gen, t_lo), at(ts_gen, gn_gen, t_hi))}.
• Across the {len(images)} sample faces, corr(|h|, |g|) averaged over t is {hg_same:+.2f} (notebook 03 measures this properly, with intervals).
• Two different faces' h have mean cosine {cos_inv[-1]:.3f} at t={t_hi} and {cos_inv[0]:.3f} at t={t_lo}: they are most alike at t={int(ts_inv[int(np.argmax(cos_inv))])}.
• Zeroing h at t=500 changes ε by {100 * sens_500:.1f} % of its norm.
• At t={t_lo}, |h| of the samples drawn from noise is {at(ts_gen, hn_gen, t_lo):.1f} against {at(ts_inv, hn_inv, t_lo):.1f} for the inverted images (ratio {at(ts_gen, hn_gen, t_lo) / at(ts_inv, hn_inv, t_lo):.2f}); the first figure shows what those samples look like.
• One re-render of the view took {lat:.3f} s (goal: well under 2 s).
Time of this notebook: wall {time.perf_counter() - t_start:.1f} s, CPU {time.process_time():.1f} s.""")
