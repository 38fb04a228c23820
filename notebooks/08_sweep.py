# ---
# jupyter:
#   diffstyle_lab:
#     cpu_s: 86.5
#     injects: true
#     needs:
#     - content_dir
#     - style_dir
#     paper_box: true
#     prerequisites:
#     - 04_slerp
#     - 05_calibration
#     quick:
#       gammas:
#       - 0.0
#       - 0.6
#       inversion_steps: 8
#       n_pairs: 2
#       steps: 8
#       t_edits:
#       - 400
#     reading_minutes: 5
#     teaches: "a papermill batch sweep over \u03B3 \xD7 t_edit (\u03B3 0, 0.2, 0.4,\
#       \ 0.6, 1 and the model's \u03B3 \xD7 t_edit 200, 400, 600; \u03B3 = 0 run once,\
#       \ since it does not depend on t_edit) writing `sweep.csv` (tidy: one row per\
#       \ pair \xD7 setting), `sweep.png` and `sweep_images.png` into `out_dir`"
#     title: "A parameter sweep: \u03B3 \xD7 t_edit"
# ---

# %% [markdown]
# # 08 · A parameter sweep: γ × t_edit
#
# *Reading time ≈ 5 min · compute ≈ 87 s CPU for the full run (a few s with `--quick`) · [← 07_out_of_domain](07_out_of_domain.ipynb) · [09_when_h_carries_content →](09_when_h_carries_content.ipynb) · notation: [glossary](README.md#glossary), [docs/method.md](../docs/method.md)*
#
# **What you will learn**
#
# * how to run a parametrized sweep of content injection as a batch job — this notebook is meant to
#   be executed by papermill with other parameters, e.g.
#   `papermill 08_sweep.ipynb out.ipynb -p gammas "[0.2, 0.4]" -p t_edits "[300, 600]" -p out_dir runs/sweep1`
#   or `python -m diffstyle_lab.lab.run_notebooks --only 08 -p model=PATH`;
# * how the content share γ and the length of the editing interval (t ≥ t_edit) trade content
#   against style, measured with `diffstyle_lab.evaluate.metrics` — structure similarity (edge maps) with
#   the content and with the style image, background-colour distances, PSNR;
# * the outputs: a tidy CSV (`sweep.csv`, one row per pair × γ × t_edit), a figure of the means
#   (`sweep.png`) and an image grid (`sweep_images.png`), all written to `out_dir`, with
#   `sweep_manifest.json` recording every setting.
#
# γ and t_edit are varied on purpose; every other setting is the model's stored default
# (`InjectionConfig.for_model`: for the default model t_boost 200, calibration on with ω 0.3) unless
# you pass it.

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
n_pairs = 4             # (content i, style i) pairs, zipped in file order
content_dir = None      # a folder of content images (any size, loaded at the model's size); None → the sample faces (diffstyle_lab/data/samples/content)
style_dir = None        # a folder of style images; None → the sample faces (diffstyle_lab/data/samples/style)
gammas = [0.0, 0.2, 0.4, 0.6, 1.0]   # the model's own γ is always added, and 0 (no injection)
t_edits = [200, 400, 600]
t_boost = None          # quality boosting for t ≤ t_boost (clipped to t_edit); None → the model's default
method = None           # the mixing rule; None → the model's default (normalised_slerp)
calibrate = None        # style calibration; None → the model's default
omega = None            # ω of the calibration; None → the model's default
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
from diffstyle_lab.evaluate import metrics
from diffstyle_lab.lab import notebook as nb

t_start = time.perf_counter()
m = nb.load(model, device, threads)
cfg = nb.config(m, t_boost=t_boost, method=method, calibrate=calibrate, omega=omega, steps=steps, seed=seed)
t_boost, method, calibrate, omega = cfg.t_boost, cfg.method, cfg.calibrate, cfg.omega
nb.show_box(m, "γ trades content against style: γ 0.3–0.4 with t_edit 400 of 1000 is the sweet spot; "
               "more γ or a longer editing interval loses the style (§4.2, §5, Fig. 5).")
content, style, c_names, s_names = nb.load_pairs(m, n_pairs, content_dir, style_dir)
n = len(content)
gammas = sorted({float(g) for g in gammas} | {0.0, float(cfg.gamma)})   # γ = 0 and the model's γ always
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
#
# **γ = 0 is run once per t_boost, not once per t_edit**: at γ = 0 nothing is injected (h̃ = h, so
# ε̃ = ε and calibration moves x by 0), and t_edit only says where injection happens — so the γ = 0
# result is the same for every t_edit with the same boosting (min(t_boost, t_edit)). The cell checks
# this on one pair with 12-step runs at the smallest and the largest t_edit before
# reusing it; the reused rows of `sweep.csv` have no `seconds`.

# %%
def run_setting(g, te):
    return dl.inject(m, ci, si, cfg, gamma=float(g), t_edit=int(te), t_boost=min(t_boost, int(te)), progress=False)


same = {}   # min(t_boost, t_edit) → the t_edits that share one γ = 0 run
for te in t_edits:
    same.setdefault(min(t_boost, int(te)), []).append(int(te))
probe = [(te_s[0], te_s[-1]) for te_s in same.values() if len(te_s) > 1]
for te_a, te_b in probe:      # the check: γ = 0 at two t_edits with the same boosting
    a, b = (dl.inject(m, ci.select([0]), si.select([0]), cfg, gamma=0.0, t_edit=te, t_boost=min(t_boost, te),
                      steps=12, progress=False).images for te in (te_a, te_b))
    gap = float((a - b).abs().max())
    print(f"γ = 0 at t_edit={te_a} vs {te_b} (1 pair, 12 steps): max |Δ| = {gap:.1e}")
    assert gap < 1e-3, "γ = 0 depends on t_edit here: run it at every t_edit"
rows, images, seconds, zero = [], {}, {}, {}
for g, te in itertools.product(gammas, t_edits):
    tb = min(t_boost, int(te))
    if g == 0.0 and tb in zero:     # reused: see above (its seconds are left empty in the table)
        images[(g, te)], seconds[(g, te)] = zero[tb][0], float("nan")
    else:
        with nb.stopwatch() as sw:      # varied on purpose: γ and t_edit; the rest is cfg (the model's defaults)
            r = run_setting(g, te)
        images[(g, te)], seconds[(g, te)] = r.images, sw.seconds
        if g == 0.0:
            zero[tb] = (r.images, sw.seconds)
    meas = metrics.measures(images[(g, te)], content, style)
    meas.insert(0, "pair", range(n))
    meas.insert(1, "content", c_names)
    meas.insert(2, "style", s_names)
    meas.insert(3, "gamma", float(g))
    meas.insert(4, "t_edit", int(te))
    meas["t_boost"] = min(t_boost, int(te))
    meas["method"] = method
    meas["calibrate"] = calibrate
    meas["seconds"] = seconds[(g, te)] / n
    rows.append(meas)
table = pd.concat(rows, ignore_index=True)
table["model"] = m.source
csv_path = os.path.join(out_dir, "sweep.csv")
table.to_csv(csv_path, index=False, float_format="%.6g")
with open(os.path.join(out_dir, "sweep_manifest.json"), "w") as fh:
    json.dump(dl.sampling.manifest(m, {"gammas": list(map(float, gammas)), "t_edits": list(map(int, t_edits)),
                                        "t_boost": t_boost, "method": method, "calibrate": calibrate, "omega": omega,
                                        "steps": steps, "inversion_steps": inversion_steps, "n_pairs": n,
                                        "seed": seed, "varied_on_purpose": ["gamma", "t_edit"],
                                        "model_defaults": nb.save_settings(None, m, cfg)["model_defaults"]}),
              fh, indent=1)
nb.save_settings(out_dir, m, cfg, gamma="the sweep's γ values", t_edit="the sweep's t_edit values")
print(f"{len(table)} rows → {csv_path}")
table.head().astype({"seconds": object}).fillna({"seconds": "— (the γ = 0 run reused)"})

# %% [markdown]
# ## 2. Means over pairs

# %%
curves = [("struct_content", "structure sim. with content"), ("struct_style", "structure sim. with style"),
           ("bg_dist_style", "background colour dist. to style"), ("psnr_content", "PSNR to content (dB)")]
mean = table.groupby(["t_edit", "gamma"])[[k for k, _ in curves] + ["bg_dist_content", "psnr_style", "tv"]].mean()
# the references: no injection (γ = 0 with the model's t_boost; the sweep's run when it has one) and the two cheap baselines
none_img = zero[cfg.t_boost][0] if cfg.t_boost in zero else dl.inject(m, ci, si, cfg, gamma=0.0, progress=False).images
refs = nb.reference_measures(none_img, content, style)
fig, axes = plt.subplots(1, len(curves), figsize=(3.3 * len(curves) + 2.5, 3.3))
for ax, (col, label) in zip(axes, curves):
    for k, te in enumerate(t_edits):
        s = mean.loc[te][col]
        ax.plot(s.index, s.values, "o-", ms=3, label=f"t_edit={te}", color=f"C{k}")
    nb.draw_references(ax, refs, col)
    ax.set_xlabel("γ")
    ax.set_title(label, fontsize=8)
axes[-1].legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
fig.suptitle(f"{m.source}: mean over {n} pairs, {steps} steps; varied: γ, t_edit; model defaults otherwise "
             f"({method}, calibrate={calibrate}, ω={omega:g}); lines: no injection and the two cheap baselines\n"
             "γ = 0 is one run per t_boost, drawn at every t_edit (it injects nothing; checked above)",
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
                     col_labels=["content", "style"] + [f"γ={g:g}" for g in gammas], cell=1.5)
nb.save_figure(fig, out_dir, "sweep_images")
nb.show(fig)

# %% [markdown]
# ## Exercise
#
# **Is the model's default setting a good trade-off?** Injection buys content (structure similarity
# with the content, higher is better) and pays in style (background colour distance to the style,
# lower is better). Load `sweep.csv` with pandas, average over pairs per (γ, t_edit), and find the
# settings no other setting beats on both at once (the Pareto front). Is the model's own setting
# (γ, t_edit from its `diffstyle_lab.json`) on the front — and if not, which setting beats it on both?
#
# *The solution cell below (tagged `solution`) runs with the notebook, so it is tested.*

# %% tags=["solution"]
sweep = pd.read_csv(csv_path)
per_setting = sweep.groupby(["gamma", "t_edit"])[["struct_content", "bg_dist_style"]].mean()


def beaten_by(row, others):
    """The settings at least as good on both measures and better on one."""
    better = (others.struct_content >= row.struct_content) & (others.bg_dist_style <= row.bg_dist_style) & \
        ((others.struct_content > row.struct_content) | (others.bg_dist_style < row.bg_dist_style))
    return list(others.index[better])


front = [k for k, r in per_setting.iterrows() if not beaten_by(r, per_setting)]
print("Pareto front (γ, t_edit): " + "; ".join(f"{k} structure {per_setting.loc[k, 'struct_content']:.3f}, "
                                                f"background distance {per_setting.loc[k, 'bg_dist_style']:.1f}"
                                                for k in sorted(front)))
own = (float(cfg.gamma), int(cfg.t_edit))
if own in per_setting.index:
    by = beaten_by(per_setting.loc[own], per_setting)
    print(f"the model's setting {own}: " + ("on the front" if not by else
                                            f"beaten on both measures by {sorted(by)} (means over {n} pairs)"))
else:
    print(f"the model's setting {own} is not in this sweep (add its γ and t_edit to gammas / t_edits)")

# %% [markdown]
# ## What the figures show
#
# Computed from this run. Read the curves as a trade-off: moving right (more content, γ) and using
# a longer editing interval (smaller t_edit) should raise the structure similarity with the content
# and lower it with the style; the background colour distance says how much of the style's colour
# is lost on the way. Every sentence below compares with no injection (γ = 0) and the two cheap
# baselines, with paired bootstrap intervals over the pairs; a setting is only called better than
# doing nothing where the interval says so.

# %%
flat = mean.reset_index()
key = (float(cfg.gamma), cfg.t_edit)      # the model's own setting: the sweep's run where it has it
at_default = images[key] if key in images and min(t_boost, cfg.t_edit) == cfg.t_boost else \
    dl.inject(m, ci, si, cfg, progress=False).images
default_meas = metrics.measures(at_default, content, style)
print(f"Measured on {m.source}, {n} pairs, {steps} steps ({len(table)} rows in {csv_path}):")
nb.show_claims(default_meas, refs, {"struct_content": ("structure similarity with the content", "higher"),
                                    "bg_dist_style": ("background colour distance to the style", "lower")},
               name=f"γ={cfg.gamma:g}, t_edit={cfg.t_edit} (the model's)", digits=3)
good = []
for (g, te), grp in table[table.gamma > 0].groupby(["gamma", "t_edit"]):
    sc = nb.compare(grp.struct_content.to_numpy(), refs[nb.NO_INJECTION].struct_content.to_numpy())
    bg = nb.compare(grp.bg_dist_style.to_numpy(), refs[nb.NO_INJECTION].bg_dist_style.to_numpy())
    if sc["effect"] == "higher" and bg["effect"] != "higher":
        good.append(f"γ={g:g}, t_edit={te} (structure {nb.interval_text(*sc['diff'], sign=True)}, "
                    f"background distance {nb.interval_text(*bg['diff'], digits=1, sign=True)})")
print("• settings with more content structure than no injection (paired CI above 0) and no detectable loss of the "
      "style's background: " + ("; ".join(good) if good else "none"))
inj = flat[flat.gamma > 0]
best_s = inj.loc[inj.bg_dist_style.idxmin()] if len(inj) else None
if best_s is not None:
    print(f"• closest background colour to the style among the injected settings: γ={best_s.gamma:g}, "
          f"t_edit={int(best_s.t_edit)} (distance {best_s.bg_dist_style:.1f}, against {refs[nb.NO_INJECTION].bg_dist_style.mean():.1f} "
          f"without injection).")
print(f"• mean time per injected image: {table.seconds.mean():.2f} s.")
print(f"Time of this notebook: wall {time.perf_counter() - t_start:.1f} s, CPU {time.process_time():.1f} s.")
