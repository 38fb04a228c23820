# ---
# jupyter:
#   diffstyle_lab:
#     cpu_note: "2026-12-05; the exercise's three injections \u2248 11 s, the static\
#       \ sweep at 50 steps beside 12 \u2248 15 s"
#     cpu_s: 69.3
#     injects: true
#     needs:
#     - content_dir
#     - style_dir
#     paper_box: true
#     prerequisites:
#     - 02_replacing_h
#     - 03_correlations
#     quick:
#       inversion_steps: 8
#       n_pairs: 2
#       steps: 8
#       widget_steps: 6
#     reading_minutes: 6
#     teaches: "normalised Slerp with a \u03B3 slider (and the slerp/lerp ablations),\
#       \ a \u03B3 sweep, **one editing step written out by hand** (`hu.record`, `maths.normalised_slerp`,\
#       \ `hu.hooks(h=\u2026)`, `maths.asymmetric_step`) and checked against `dl.inject`,\
#       \ content/style measures against \u03B3"
#     title: "Normalised Slerp: how much content, \u03B3"
# ---

# %% [markdown]
# # 04 · Normalised Slerp: how much content, γ
#
# *Reading time ≈ 6 min · compute ≈ 69 s CPU for the full run (its exercise runs three injections) (a few s with `--quick`) · [← 03_correlations](03_correlations.ipynb) · [05_calibration →](05_calibration.ipynb) · notation: [glossary](README.md#glossary), [docs/method.md](../docs/method.md)*
#
# **What you will learn**
#
# * content injection with the paper's mixing rule,
#   h̃ = Slerp(h, (h^content/‖h^content‖)·‖h‖, γ): γ is the share of content, and ‖h̃‖ = ‖h‖;
# * what γ does to the result, interactively (a γ slider; the inversions are computed once, so a
#   re-render is only the reverse process) and as a fixed γ sweep;
# * one editing step written out by hand — hook points, normalised Slerp, the asymmetric step —
#   and checked against `dl.inject`;
# * how content and style measures move with γ over several pairs.
#
# The paper advises γ = 0.3–0.4 for its 256-px models and calls 0.7 too much. The curves at the end
# show where this model's trade-off lies; nothing here assumes it. Every injection starts from the
# model's stored settings (`InjectionConfig.for_model`); γ (and in the slider the mixing rule) is
# what this notebook varies on purpose.

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
steps = 50              # generation steps of the measured γ curves
widget_steps = 12       # generation steps the slider view starts at (fast re-render); the static sweep shows it and `steps`
n_pairs = 4             # (content i, style i) pairs, zipped in file order
content_dir = None      # a folder of content images (any size, loaded at the model's size); None → the sample faces (diffstyle_lab/data/samples/content)
style_dir = None        # a folder of style images; None → the sample faces (diffstyle_lab/data/samples/style)
gamma = None            # the slider's starting value; None → the model's default γ
gammas = [0.0, 0.2, 0.4, 0.6, 1.0]   # the static sweep and the measured curves (the curves also get the model's γ)
t_edit = None           # inject while t ≥ t_edit; None → the model's default (InjectionConfig.for_model)
t_boost = None          # quality boosting for t ≤ t_boost (clipped to t_edit); None → the model's default
seed = 0
cache_dir = None        # also keep inversions on disk in this folder (an InversionCache); None → memory only
out_dir = None          # a folder for the figures and the table; None → only shown

# %%
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
cfg = nb.config(m, gamma=gamma, t_edit=t_edit, t_boost=t_boost, seed=seed)     # the model's defaults
gamma, t_edit, t_boost = cfg.gamma, cfg.t_edit, cfg.t_boost
nb.show_box(m, "with normalised Slerp at γ = 0.3–0.4 the result takes the content's layout and keeps the "
               "style's colours; γ = 0.7 is too much content (§4.2, Fig. 5).")
content, style, c_names, s_names = nb.load_pairs(m, n_pairs, content_dir, style_dir)
n = len(content)
pair_names = [f"{c_names[i]} × {s_names[i]}" for i in range(n)]
store = nb.InversionStore(m, steps=inversion_steps, disk=cache_dir)
with nb.stopwatch() as sw:
    ci, si = store(content), store(style)
print(f"model: {m.source} on {m.device}; {n} pairs; inversions once: {sw.seconds:.1f} s")

# %% [markdown]
# ## 1. The γ slider
#
# Choose a pair and γ (and the mixing rule: `slerp` and `lerp` are the ablations without the norm
# rescaling, and the number of generation steps). Each change runs the reverse process once from the cached
# inversions; the latency of a re-render is printed below. `widget_steps` (12) keeps a re-render fast; `steps` (50)
# injects at four times as many timesteps — compare the two at the same γ.

# %%
def render(pair, gamma, method="normalised_slerp", n_steps=widget_steps):
    i = pair_names.index(pair)
    r = dl.inject(m, ci.select([i]), si.select([i]), cfg, gamma=float(gamma), method=method, steps=int(n_steps),
                  progress=False)
    return {"content": content[i], "style": style[i], "result": r.images[0]}


view = nb.Explorer(render, {
    "pair": widgets.Dropdown(options=pair_names, value=pair_names[0], description="pair"),
    "gamma": widgets.FloatSlider(value=gamma, min=0.0, max=1.0, step=0.05, description="γ", continuous_update=False),
    "method": widgets.Dropdown(options=["normalised_slerp", "slerp", "lerp"], value="normalised_slerp",
                               description="mixing"),
    "n_steps": widgets.Dropdown(options=sorted({widget_steps, steps}), value=widget_steps, description="steps")})
view.show()
latency = view.set(gamma=min(1.0, gamma + 0.1))
print(f"one re-render took {latency:.2f} s ({widget_steps} steps)")

# %% [markdown]
# **Static path** — the same view for fixed γ (rows: two pairs, each at `widget_steps` and at `steps` generation
# steps; the first two columns are the inputs). Varied on purpose: γ and the step count; everything else is the
# model's default. **Look at how the step count changes what γ does**: injection acts at every step with
# t ≥ t_edit, so 50 steps inject about four times as often as 12; compare each pair's two rows at the same γ. (On the
# default model the content's face and pose come through at a smaller γ with 50 steps; at 12 it is nearly
# all-or-nothing — its model card, *By eye*.) The measured curves of section 3 use `steps`.

# %%
sweep_rows = [{"pair": p, "n_steps": k} for p in pair_names[:2] for k in sorted({widget_steps, steps})]
fig = view.sweep_figure("gamma", gammas, rows=sweep_rows, keep=("content", "style"), fmt="γ={value}",
                        row_labels=[f"pair {pair_names.index(r['pair'])},\n{r['n_steps']} steps" for r in sweep_rows],
                        title=f"varied: γ and the step count; model defaults otherwise (t_edit={t_edit}, "
                              f"calibrate={cfg.calibrate})")
nb.save_figure(fig, out_dir, "gamma_sweep")
nb.show(fig)

# %% [markdown]
# ## 2. One editing step by hand
#
# What `dl.inject` does at every step with t ≥ t_edit, written out with the hook points of
# `model.hooked` and the step maths of `diffstyle_lab.maths`:
#
# 1. `hu.record()` reads h^content_t: h of the content image's x_t on its inversion trajectory
#    (here at t = 999, from its x_T — exactly what the inversion stored);
# 2. `hu.record()` reads h_t of the style's x_t, with ε = ε(x_t | h);
# 3. `maths.normalised_slerp(h, h^content, γ)` makes h̃ — content share γ, and ‖h̃‖ = ‖h‖;
# 4. `hu.hooks(h=…)` puts h̃ in place of h for one more call: ε̃ = ε(x_t | h̃);
# 5. `maths.asymmetric_step` takes P_t from ε̃ and the direction D_t from ε:
#    x_{t−1} = √ᾱ_{t−1}·P_t(ε̃) + D_t(ε).
#
# On a two-point grid (t = 999, then t = 0 — the last step, below t_edit, is a plain DDIM step) that
# is the whole process, so the result can be checked against `dl.inject` with the same settings
# (here without calibration and boosting, on both sides). The cell runs in float64, where both must
# agree to rounding. **The image it draws is mostly noise**: two steps are far too few to denoise
# (the figure shows the equality of the two results, not a usable transfer).

# %%
from diffstyle_lab import maths

m64 = nb.float64_copy(m)          # a float64 copy for an exact comparison
hu, acp = m64.hooked, m64.alphas_cumprod
inv_c = dl.ddim_invert(m64, content[:1].double(), steps=inversion_steps, progress=False)
inv_s = dl.ddim_invert(m64, style[:1].double(), steps=inversion_steps, progress=False)
t_hand = max(t_edit, 1)                               # t = 999 is an editing step, t = 0 is not
(t_last, t_first) = dl.timestep_grid(2, "authors", m64.T)   # 0, 999
a_t, a_prev = float(acp[t_first]), float(acp[t_last])

with torch.no_grad():
    with hu.record() as rec:                          # 1. h^content at t = 999
        hu.eps(inv_c.x_T, t_first)
    h_content = rec["h"]
    x_t = inv_s.x_T                                   # the style's x_T
    with hu.record() as rec:                          # 2. ε and h of the style's x_t
        eps = hu.eps(x_t, t_first)
    h = rec["h"]
    h_tilde = maths.normalised_slerp(h, h_content, gamma)        # 3. h̃
    with hu.hooks(h=lambda _: h_tilde):               # 4. ε̃ = ε(x_t | h̃)
        eps_tilde = hu.eps(x_t, t_first)
    x = maths.asymmetric_step(x_t, eps_tilde, eps, a_t, a_prev)  # 5. x_{t−1}: P_t(ε̃), D_t(ε)
    eps_0 = hu.eps(x, t_last)                         # the last step, t = 0 < t_edit: plain DDIM
    by_hand = maths.asymmetric_step(x, eps_0, eps_0, a_prev, 1.0)

ref = dl.inject(m64, inv_c, inv_s, gamma=gamma, t_edit=t_hand, t_boost=0, steps=2, calibrate=False,
                method="normalised_slerp", clip_x0=False, progress=False)
diff_h = float((h_content - inv_c.h_at(t_first)).abs().max())
diff = float((by_hand.cpu() - ref.images.double()).abs().max())
print(f"h^content read by hand vs stored by the inversion: max |Δ| = {diff_h:.1e}")
print(f"‖h‖ = {float(h.norm()):.2f}, ‖h^content‖ = {float(h_content.norm()):.2f}, ‖h̃‖ = {float(h_tilde.norm()):.2f} "
      f"(normalised Slerp keeps ‖h‖); ‖ε̃ − ε‖ = {float((eps_tilde - eps).norm()):.3f}")
print(f"one editing step by hand vs dl.inject (γ={gamma:g}, 2 steps): max |Δ| = {diff:.1e}")
assert diff_h == 0.0 and diff <= 1e-6, "the step written out does not reproduce dl.inject"
nb.show(nb.row_figure({"content": content[0], "style": style[0], "by hand": by_hand[0].float(),
                       "dl.inject": ref.images[0]},
                      title="one editing step (t = 999) + one plain step: mostly noise, as any 2-step run"))

# %% [markdown]
# ## 3. Measured over all pairs
#
# For each γ (`gammas`, and the model's γ), one batched injection of all pairs with `steps` steps, and the measures of
# `metrics.measures`: structure similarity (edge maps) with the content and with the style image, and
# the distance of the background colour to the style's and to the content's.

# %%
rows, outs = [], {}
for g in sorted({float(x) for x in gammas} | {0.0, float(gamma)}):   # γ = 0 and the model's γ always
    outs[g] = dl.inject(m, ci, si, cfg, gamma=g, steps=steps, progress=False).images
    rows.append(metrics.measures(outs[g], content, style).assign(gamma=g, pair=range(n)))
table = pd.concat(rows, ignore_index=True)
curve = table.groupby("gamma").mean(numeric_only=True)
refs = nb.reference_measures(outs[0.0], content, style)      # γ = 0 and the two cheap baselines
nb.save_settings(out_dir, m, cfg, gamma="the γ sweep and slider", method="the slider's ablations (slerp, lerp)")
if out_dir:
    os.makedirs(out_dir, exist_ok=True)
    table.to_csv(os.path.join(out_dir, "gamma_measures.csv"), index=False)

PANELS = {"struct_content": "structure similarity with the content", "colour_dist_style":
          "colour statistics distance to the style", "bg_dist_style": "background colour distance to the style"}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
for ax, (col, label) in zip(axes, PANELS.items()):
    ax.plot(curve.index, curve[col], "o-", label="normalised Slerp", color="C0")
    nb.draw_references(ax, refs, col)
    ax.set_xlabel("γ (share of content)")
    ax.set_ylabel(label, fontsize=8)
axes[0].legend(fontsize=8)
fig.suptitle(f"mean over {n} pairs, {steps} steps; varied: γ; model defaults otherwise (t_edit={t_edit}, "
             f"calibrate={cfg.calibrate}); lines: no injection and the two cheap baselines", fontsize=9)
fig.tight_layout()
nb.save_figure(fig, out_dir, "gamma_curves")
nb.show(fig)
curve[["struct_content", "struct_style", "bg_dist_style", "bg_dist_content", "tv"]].round(3)

# %% [markdown]
# ## Exercise
#
# **Break the norm on purpose.** Normalised Slerp exists because the U-Net expects ‖h‖ to stay
# paired with ‖g‖ (notebooks 02, 03). Take the h of section 2 (the style's h and the content's h at
# t = 999) and mix them at the model's γ with plain `lerp` (1−γ)·h + γ·h^content and with `slerp`
# (no rescaling of h^content): how far does each move ‖h̃‖/‖h‖ from 1? Then inject with the three
# rules, draw the results side by side and say with a paired interval whether lerp's structure
# similarity with the content differs from normalised Slerp's. Which rule shrinks the norm, and does
# the image show it?
#
# *The solution cell below (tagged `solution`) runs with the notebook, so it is tested.*

# %% tags=["solution"]
RULES = ("lerp", "slerp", "normalised_slerp")
ratios = {r: float(maths.mix_h(h, h_content, gamma, r).norm() / h.norm()) for r in RULES}
print(f"‖h̃‖/‖h‖ at t={t_first}, γ={gamma:g}: " + ", ".join(f"{r} {v:.3f}" for r, v in ratios.items())
      + f" (cos of the angle between h and h^content: {float(torch.nn.functional.cosine_similarity(h.flatten(), h_content.flatten(), 0)):.2f})")
mixed = {r: dl.inject(m, ci, si, cfg, method=r, steps=steps, progress=False).images for r in RULES}
k = min(n, 3)
fig = nb.grid_figure([[content[i], style[i]] + [mixed[r][i] for r in RULES] for i in range(k)],
                     col_labels=["content", "style"] + [f"{r}\n‖h̃‖/‖h‖ {ratios[r]:.2f} (t=999)" for r in RULES],
                     row_labels=[f"pair {i}" for i in range(k)],
                     title=f"the same injection with three mixing rules (γ={gamma:g}, {steps} steps); model defaults otherwise")
nb.save_figure(fig, out_dir, "mixing_rules")
nb.show(fig)
sc = {r: metrics.measures(mixed[r], content, style).struct_content.to_numpy() for r in RULES}
c = nb.compare(sc["lerp"], sc["normalised_slerp"])
print(f"structure similarity with the content: lerp {nb.interval_text(*c['value'])} vs normalised Slerp "
      f"{nb.interval_text(*c['ref'])}; difference {nb.interval_text(*c['diff'], sign=True)} — {c['effect']}; "
      f"the rule that moves the norm most: {max(ratios, key=lambda r: abs(ratios[r] - 1))}")

# %% [markdown]
# ## What the figures show
#
# Computed from this run. In the sweep, γ = 0 regenerates the style image from its own x_T; look
# for the γ at which the content image's face (hair, eyes, mouth) appears, and whether the style's
# colours (background, skin) survive at that γ. In the curves, an injection that works raises the
# structure similarity with the content above the no-injection line while the colour distances stay
# near it — and to be worth its cost it should beat the two cheap baselines (the lines). The
# sentences below say, with paired bootstrap intervals over the pairs, which of this happened.

# %%
per_gamma = {g: grp.reset_index(drop=True) for g, grp in table.groupby("gamma")}
up = [g for g in sorted(per_gamma) if g > 0 and
      nb.compare(per_gamma[g].struct_content.to_numpy(), per_gamma[0.0].struct_content.to_numpy())["effect"] == "higher"]
print(f"Measured on {m.source}, {n} pairs, {steps} steps, the model's settings (t_edit={t_edit}, calibrate={cfg.calibrate}):")
nb.show_claims(per_gamma[float(gamma)], refs,
               {"struct_content": ("structure similarity with the content", "higher"),
                "colour_dist_style": ("colour statistics distance to the style", "lower"),
                "bg_dist_style": ("background colour distance to the style", "lower")},
               name=f"γ={gamma:g}", digits=3)
print(f"• γ values whose structure similarity with the content is detectably above no injection (paired CI above 0): "
      f"{up if up else 'none of ' + str([g for g in sorted(per_gamma) if g > 0])}.")
layout = nb.compare(per_gamma[float(gamma)].struct_content.to_numpy(), per_gamma[0.0].struct_content.to_numpy())
colour = nb.compare(per_gamma[float(gamma)].bg_dist_style.to_numpy(), per_gamma[0.0].bg_dist_style.to_numpy())
moved = {"layout (structure similarity with the content)": layout["effect"] == "higher",
         "colours (background colour distance to the style)": colour["effect"] == "higher"}
print("• at the model's γ, against no injection: " + "; ".join(f"{k} {'moved' if v else 'did not move detectably'}"
                                                            for k, v in moved.items())
      + (" — the reverse of the paper, which moves the layout and keeps the colours: on this model h changes the "
         "colours more than the layout" if moved["colours (background colour distance to the style)"]
         and not moved["layout (structure similarity with the content)"] else "") + ".")
print(f"""• one re-render of the slider view: {latency:.2f} s ({widget_steps} steps; goal well under 2 s).
• one editing step written out (hu.record, maths.normalised_slerp, hu.hooks, maths.asymmetric_step) vs dl.inject: max |Δ| = {diff:.1e}.
• the slider starts at {widget_steps} steps (the static sweep shows {widget_steps} and {steps}); the curves and these sentences use {steps}.
Time of this notebook: wall {time.perf_counter() - t_start:.1f} s, CPU {time.process_time():.1f} s.""")
