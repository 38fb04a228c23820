# ---
# jupyter:
#   diffstyle_lab:
#     cpu_s: 49.5
#     prerequisites:
#     - 01_tour_of_h_space
#     - 02_replacing_h
#     quick:
#       n_pairs: 2
#       probe_steps: 8
#     reading_minutes: 6
#     teaches: "the h-influence probe r(t) \u2014 one step by hand (`probe.trajectory`,\
#       \ `hu.hooks(h=\u2026)`, `maths.pred_x0`), then `probe.h_influence` \u2014 on\
#       \ the first default model (`faces32_v1`, its decoder ignores h) and the current\
#       \ one, and the emergence curve of a skip-dropout fine-tuning (the one that made\
#       \ v2; the shipped v4 has no curve of its own), next to its control"
#     title: When does h carry content?
# ---

# %% [markdown]
# # 09 · When does h carry content?
#
# *Reading time ≈ 6 min · compute ≈ 50 s CPU for the full run (a few s with `--quick`) · [← 08_sweep](08_sweep.ipynb) · [back to notebooks/README →](README.md) · notation: [glossary](README.md#glossary), [docs/method.md](../docs/method.md)*
#
# **What you will learn**
#
# * how to measure whether a U-Net's decoder reads h at all: the **h-influence** r(t). On the style
#   image's own trajectory x_t, swap its h for the content image's h at the same t and see how far
#   the predicted x_0 (P_t, the paper's Eq. 12) moves, as a share of the distance between the two
#   images' own predictions:
#   r(t) = RMSE(P_t(x_t^s | h^c), P_t(x_t^s)) / RMSE(P_t(x_t^c), P_t(x_t^s));
# * that a U-Net need not read h: r near 0 means the skip connections carry nearly everything and
#   content injection has nothing to act on — the state of the first default model;
# * the **emergence curve**: r and the ground-truth transfer score against the training step, for a
#   fine-tuning run with coarse skips dropped at random while training (*skip dropout*) and for a
#   control fine-tuned identically without it — for the default model, the run that made the
#   previous default model (v2): the shipped one was trained without snapshots (section 3 says which
#   curve it shows);
# * what the change reaches and what it does not (the closing summary prints the numbers).
#
# One probe step is done by hand first (`probe.trajectory`, `hu.hooks(h=…)`, `maths.pred_x0`), then
# with `diffstyle_lab.stats.probe.h_influence`, and checked to agree.

# %%
# Colab / Kaggle only (a local kernel skips it): clone your copy of diffstyle_lab ($DIFFSTYLE_LAB_REPO, its git URL) and pip-install it.
import os, sys  # noqa: E401
if ("google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ) and os.system("pip show -q diffstyle_lab"):
    print("Set DIFFSTYLE_LAB_REPO to the git URL of your copy of diffstyle_lab (os.environ['DIFFSTYLE_LAB_REPO'] = 'https://…') and run this cell again.") if not os.environ.get("DIFFSTYLE_LAB_REPO") else (os.system(f"git clone -q --depth 1 {os.environ['DIFFSTYLE_LAB_REPO']} dsl && pip install -q -e 'dsl[notebooks]'"), sys.path.insert(0, "dsl"))

# %% tags=["parameters"]
model = None            # None → the embedded default model; or a diffusers folder / hub id (load_model)
before = None           # the model to compare with; None → the first default model (data/models/faces32_v1) when `model` is the default model and that folder exists; "" → none
device = None           # None → $DIFFSTYLE_LAB_DEVICE, else cuda if available, else cpu
threads = 1             # torch CPU threads (None → torch's default); see nb.load
n_pairs = 8             # ground-truth content/style pairs for the live probe
probe_steps = 20        # DDIM grid of the probe's trajectories
t_show = 500            # the t (nearest grid point) of the hand-made probe step
curve = None            # the emergence-curve CSV; None → the one shipped with the default model (only when `model` is it)
out_dir = None          # a folder to save the figures and the table in; None → only shown

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display

from diffstyle_lab.faces import groundtruth as G
from diffstyle_lab import maths
from diffstyle_lab.stats import probe
from diffstyle_lab.lab import notebook as nb

t_start = time.perf_counter()
models = {"current": nb.load(model, device, threads)}
is_default = models["current"].source == "diffstyle_lab:faces32"
if before is None:
    v1 = nb.data_path("models", "faces32_v1")
    before = str(v1) if is_default and (v1 / "unet").is_dir() else ""
    before_note = (f"before/after: {v1}" if before else
                   "no before/after comparison: it needs the earlier checkpoint (data/models/faces32_v1) of the same "
                   "model, which exists only for the default model" + ("" if is_default else
                   f"; {models['current'].source} has none (pass before=PATH for one of yours)"))
else:
    before_note = f"before/after: {before}" if before else "no before/after comparison (before='')"
if before:
    models["before"] = nb.load(before, device, threads)
    if models["before"].sample_size != models["current"].sample_size:
        raise ValueError(f"before={before}: its images are {models['before'].sample_size} px, the model's "
                         f"{models['current'].sample_size} px; compare checkpoints of the same size")
gt = G.GroundTruthPairs.make(n_pairs, seed=90_000, size=models["current"].sample_size)
print({k: v.source for k, v in models.items()}, f"{n_pairs} pairs, {probe_steps}-step grid")
print(before_note)

# %% [markdown]
# ## 1. One probe step by hand
#
# DDIM-invert both images, keeping x_t and h at every grid t (`probe.trajectory`). At one t, run the
# U-Net on the style image's x_t three ways: as it is, with its h replaced by the content image's
# (a hook on the `h` point), and the content image's own x_t. Each ε gives a predicted x_0, P_t.

# %%
def rmse(a, b):
    return (a - b).flatten(1).pow(2).mean(1).sqrt()


by_hand = {}
for name, m in models.items():
    hu = m.hooked
    tr_c, tr_s = probe.trajectory(m, gt.content, probe_steps), probe.trajectory(m, gt.style, probe_steps)
    t = min(tr_s, key=lambda v: abs(v - t_show))
    (xs, hs), (xc, hc) = tr_s[t], tr_c[t]
    a_t = float(m.alphas_cumprod[t])
    with torch.no_grad():
        eps_s, eps_c = hu.eps(xs, t), hu.eps(xc, t)
        with hu.hooks(h=lambda h: hc):                      # h̃ = h^content (replacement)
            eps_i = hu.eps(xs, t)
    p_s, p_c, p_i = (maths.pred_x0(x, e, a_t) for x, e in ((xs, eps_s), (xc, eps_c), (xs, eps_i)))
    r = rmse(p_i, p_s) / rmse(p_c, p_s)
    by_hand[name] = {"t": t, "r": float(r.mean()), "images": (p_s, p_i, p_c)}
    print(f"{name}: t={t}, r by hand = {float(r.mean()):.4f}  (per pair: {[round(float(v), 2) for v in r]})")

k = min(n_pairs, 4)
rows, labels = [], []
for name, d in by_hand.items():
    p_s, p_i, p_c = d["images"]
    for i in range(k):
        rows.append([gt.content[i], gt.style[i], p_s[i].clamp(-1, 1), p_i[i].clamp(-1, 1), p_c[i].clamp(-1, 1)])
        labels.append(f"{name} {i}")
fig = nb.grid_figure(rows, col_labels=["content", "style", "P_t(style)", "P_t(style | h^c)", "P_t(content)"],
                     row_labels=labels, cell=1.7)
nb.save_figure(fig, out_dir, "probe_by_hand")
nb.show(fig)

# %% [markdown]
# ## 2. r(t) over the whole trajectory
#
# `probe.h_influence` does the same at every grid t (and normalised Slerp at the model's own γ —
# `InjectionConfig.for_model`, 0.3 for the default model, the paper's
# default mix, for comparison). It must agree with the hand-made step above.

# %%
curves = []
for name, m in models.items():
    for method, gamma in (("replace", 1.0), ("normalised_slerp", nb.config(m).gamma)):
        rows_ = probe.h_influence(m, gt.content, gt.style, steps=probe_steps, method=method, gamma=gamma)
        curves.append(pd.DataFrame(rows_).assign(model=name, method=method))
    got = next(r for r in curves[-2].itertuples() if r.t == by_hand[name]["t"]).r
    assert abs(got - by_hand[name]["r"]) < 1e-6, (got, by_hand[name]["r"])
curves = pd.concat(curves, ignore_index=True)

fig, ax = plt.subplots(figsize=(6.2, 3.4))
for k_, ((name, method), grp) in enumerate(curves.groupby(["model", "method"], sort=False)):
    ax.plot(grp.t, grp.r, marker=".", label=f"{name}, {method}", color=f"C{k_ // 2}", ls="-" if method == "replace" else "--")
ax.set_xlim(curves.t.max(), curves.t.min())         # T on the left, as in every notebook
ax.set_xlabel("t  (T on the left)")
ax.set_ylabel("h-influence r(t)")
ax.set_ylim(0, max(0.1, curves.r.max() * 1.1))
ax.legend(fontsize=8)
fig.tight_layout()
nb.save_figure(fig, out_dir, "h_influence")
nb.show(fig)
if out_dir:
    os.makedirs(out_dir, exist_ok=True)
    curves.to_csv(os.path.join(out_dir, "h_influence.csv"), index=False)

# %% [markdown]
# ## 3. The emergence curve
#
# Measured while fine-tuning (`python -m training.emergence` on every snapshot, stored with the model):
# the peak of r(t) over t ∈ [400, 800] (16 pairs, 20-step grid) and the share of the gap to the
# ideal render that injection closes (24 pairs, 20 steps, normalised Slerp) — for the skip-dropout
# run and for the control trained the same way without it. The shipped model (v4) has no curve of its
# own (v3 was trained on a GPU without snapshots; v4's snapshots were scored on ground-truth pairs, not with
# this probe — its card has them), so for it this section shows the curve of an earlier default model's
# fine-tuning (v2, `data/models/faces32_v2`), and says so. v4 was *trained* to read layout from h (its card
# says how): the natural emergence this section teaches is v2's and v1's, not v4's.

# %%
if curve is None and is_default:      # the model's own curve, else the previous default model's (v2)
    own, v2 = nb.data_path("models", "faces32", "emergence.csv"), nb.data_path("models", "faces32_v2", "emergence.csv")
    curve = str(own) if own.exists() else str(v2) if v2.exists() else None
    if curve == str(v2):
        print(f"the shipped model has no emergence curve of its own: showing v2's fine-tuning ({v2})")
curve_path = curve
if curve_path is None or not os.path.exists(curve_path):
    pr = None
    print(f"no emergence curve for {models['current'].source}: it is measured while training (training/emergence.py) "
          "and shipped only with the default model; pass curve=PATH for one of yours")
else:
    em = pd.read_csv(curve_path)
    pr = em[em.kind == "probe"]
    pr = pr[(pr.t >= 400) & (pr.t <= 800)].groupby(["run", "step"]).value.max().reset_index()
    tf = em[em.kind == "transfer"]
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.2))
    for k_, (run, grp) in enumerate(pr.groupby("run")):
        axs[0].plot(grp.step, grp.value, marker="o", label=run, color=f"C{k_}")
    for k_, ((run, setting), grp) in enumerate(tf[tf.setting != "floor"].groupby(["run", "setting"])):
        axs[1].plot(grp.step, grp.value, marker=".", label=f"{run}: {setting}", lw=1)
    axs[0].set(xlabel="fine-tuning step", ylabel="peak r, t ∈ [400, 800]", title="h-influence")
    axs[1].set(xlabel="fine-tuning step", ylabel="gap closed", title="transfer to the ideal")
    axs[0].legend(fontsize=8)
    axs[1].legend(fontsize=8)
    fig.tight_layout()
    nb.save_figure(fig, out_dir, "emergence")
    nb.show(fig)
    piv = pr.pivot(index="step", columns="run", values="value").round(3)
    display(piv.astype(object).where(piv.notna(), "—"))     # "—": that run has no snapshot at that step

# %% [markdown]
# ## Exercise
#
# Probe the model at one more t by hand: at the grid t nearest 800, is r larger or smaller than at
# `t_show`? Use the hand-made step of section 1 (`probe.trajectory`, `hu.hooks(h=…)`,
# `maths.pred_x0`) and check it against `probe.h_influence`'s row for that t.
#
# *The solution cell below (tagged `solution`) runs with the notebook, so it is tested.*

# %% tags=["solution"]
m_ = models["current"]
tr_c, tr_s = probe.trajectory(m_, gt.content, probe_steps), probe.trajectory(m_, gt.style, probe_steps)
t8 = min(tr_s, key=lambda v: abs(v - 800))
(xs, hs), (xc, hc) = tr_s[t8], tr_c[t8]
a8 = float(m_.alphas_cumprod[t8])
with torch.no_grad():
    e_s, e_c = m_.hooked.eps(xs, t8), m_.hooked.eps(xc, t8)
    with m_.hooked.hooks(h=lambda h: hc):
        e_i = m_.hooked.eps(xs, t8)
p_s, p_c, p_i = (maths.pred_x0(x, e, a8) for x, e in ((xs, e_s), (xc, e_c), (xs, e_i)))
r8 = float((rmse(p_i, p_s) / rmse(p_c, p_s)).mean())
lib8 = curves[(curves.model == "current") & (curves.method == "replace") & (curves.t == t8)].r.iloc[0]
print(f"r at t={t8}: by hand {r8:.4f}, probe.h_influence {lib8:.4f}; at t={by_hand['current']['t']}: "
      f"{by_hand['current']['r']:.4f} → {'larger' if r8 > by_hand['current']['r'] else 'smaller'} at t={t8}")
assert abs(r8 - lib8) < 1e-6

# %% [markdown]
# ## What the figures show
#
# The first grid shows what h does to the model's prediction at one t: the fourth column is the
# style image's prediction with the content image's h, and r is how far it moved from the third
# column towards the fifth (0: a copy of the third, 1: as far as the content's own prediction). At
# the small r of these 32-px models **both** rows can look like copies of the third column: the
# before/after difference is in the numbers (r by hand above the grid, the r(t) plot), not something
# the eye finds in the grid — the summary says how large it is. The emergence curve says how it
# came about during training, next to the control; read its two panels together: a transfer score
# that rises while h-influence stays flat (the summary checks each run) moved for another reason
# than h carrying more content — fine-tuning alone can move colours towards the style, which the
# gap-closed score rewards. The summary below is computed from this run.

# %%
peak = {name: probe.peak(grp[grp.method == "replace"].to_dict("records"), 400, 800)
        for name, grp in curves.groupby("model", sort=False)}
if pr is not None:   # each run's own last snapshot (the runs need not end at the same step)
    last = pr.sort_values("step").groupby("run").tail(1).set_index("run")
    em_line = "emergence curve (" + str(curve_path) + "): peak r at each run's last step: " + \
        "; ".join(f"{k}={r.value:.3f} at step {int(r.step)}" for k, r in last.iterrows())
    flat = []
    for run, grp in pr.groupby("run"):
        g = grp.sort_values("step")
        tr = tf[(tf.run == run) & (tf.setting != "floor")].sort_values("step").groupby("step").value.mean()
        if len(g) > 1 and len(tr) > 1:
            d_r, d_gap = g.value.iloc[-1] - g.value.iloc[0], tr.iloc[-1] - tr.iloc[0]
            em_line += f"\n  {run}: peak r {g.value.iloc[0]:.3f} → {g.value.iloc[-1]:.3f} ({d_r:+.3f}), gap closed " \
                       f"{tr.iloc[0]:.3f} → {tr.iloc[-1]:.3f} ({d_gap:+.3f}) from the first to the last snapshot"
            if d_gap > 0.05 and abs(d_r) < 0.05:
                flat.append(run)
    if flat:
        em_line += (f"\n  → in {', '.join(flat)} the transfer score rises while h-influence stays flat: that rise is "
                    "not h carrying more content")
    if curve_path and "faces32_v2" in str(curve_path) and "skip_dropout_finetune" in last.index:
        em_line += (f"\n  → this curve is v2's: v2 ended at peak r {last.loc['skip_dropout_finetune', 'value']:.3f}, the "
                    f"shipped model measures {peak['current'][1]:.3f} here; it was trained differently (its model card "
                    "says how), so v2's curve is not the shipped model's history")
else:
    em_line = "emergence curve: none for this model"
print(f"""Measured on {', '.join(f'{k}={v.source}' for k, v in models.items())}, {n_pairs} pairs, {probe_steps}-step grid:
• {before_note}
• hand-made probe step: {'; '.join(f"{k}: r={d['r']:.3f} at t={d['t']}" for k, d in by_hand.items())} (equal to probe.h_influence)
• peak r over t ∈ [400, 800] (replacement): {'; '.join(f'{k}: {r:.3f} at t={t}' for k, (t, r) in peak.items())}
• {em_line}
Time of this notebook: wall {time.perf_counter() - t_start:.1f} s, CPU {time.process_time():.1f} s.""")
