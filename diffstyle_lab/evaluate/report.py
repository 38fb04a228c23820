"""The evaluation's outputs: tables (CSV) and example grids exported from a run, the sweep figures, and
the results page rebuilt from the exported tables alone (every sentence generated from the numbers)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..fileio import atomic_write, write_text
from ..stats.verdicts import CLAIM_VERDICTS, claim_rule
from .claims import CLAIMS, METRIC_WORDS, Claim, fmt_x, match_x, assess_claims, metric_summary
from .plan import OMEGAS, ablation_names
from .run import Evaluation

TABLE_FILES = {"pairs": "pairs.csv.gz", "plan": "plan.csv", "settings": "settings.csv", "sets": "sets.csv",
               "sets_boot": "sets_boot.csv.gz", "timing": "timing.csv", "run": "run.csv"}


def export(run: Evaluation | dict, tables_dir, examples: int = 6, scaling=None) -> Path:
    """Write a run's tables (CSV) and example grids (PNG) to ``tables_dir`` (e.g. ``docs/results``)."""
    tables = run.tables if isinstance(run, Evaluation) else run
    d = Path(tables_dir)
    d.mkdir(parents=True, exist_ok=True)
    for k, f in TABLE_FILES.items():
        tables[k].to_csv(d / f, index=False)
    if scaling is not None:
        import pandas as pd
        pd.DataFrame([scaling]).to_csv(d / "scaling.csv", index=False)
    if isinstance(run, Evaluation) and examples:
        _example_grids(run, d, examples)
    return d


def _example_grids(run: Evaluation, d: Path, k: int):
    from PIL import Image, ImageDraw
    plan, blocks, preview = run.tables["plan"], run.out_dir / "blocks", run.out_dir / "pairs_preview.npz"
    if not preview.is_file():
        return
    z = np.load(preview)
    sources = [("content", z["content"][:k]), ("style", z["style"][:k])]
    size, pad, head = 96, 4, 14                       # images shown at 96×96 (a 32-pixel image 3×)
    for sweep, xs in (("gamma", (0.0, 0.3, 0.7, 1.0)), ("ablation", ablation_names()), ("t_edit", (200, 400, 600, 800)),
                      ("omega", OMEGAS)):
        cols = []
        for x in xs:
            m = match_x(plan, sweep, x)
            if len(m) and (blocks / f"{m.setting_id.iloc[0]}.npy").is_file():
                cols.append((fmt_x(sweep, x), np.load(blocks / f"{m.setting_id.iloc[0]}.npy")[:k]))
        if not cols:
            continue
        cols = sources + cols
        W = len(cols) * (size + pad) + pad
        H = head * 2 + min(k, len(cols[0][1])) * (size + pad) + pad
        canvas = Image.new("RGB", (max(W, 10), H), "white")
        draw = ImageDraw.Draw(canvas)
        font = _font()
        for j, (name, imgs) in enumerate(cols):
            x0 = pad + j * (size + pad)
            draw.text((x0, 2), name[:18], fill="black", font=font)
            for i, im in enumerate(imgs[:k]):
                canvas.paste(Image.fromarray(im).resize((size, size), Image.NEAREST), (x0, head * 2 + i * (size + pad)))
        atomic_write(d / f"examples_{sweep}.png", lambda tmp: canvas.save(tmp, format="PNG"))


def _font():
    from PIL import ImageFont
    try:
        from matplotlib import font_manager
        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), 11)
    except Exception:          # any font problem: PIL's default (no Greek letters)
        return ImageFont.load_default()


def load_exported(tables_dir) -> dict:
    import pandas as pd
    d = Path(tables_dir)
    out = {}
    for k, f in TABLE_FILES.items():
        try:
            out[k] = pd.read_csv(d / f)
        except (FileNotFoundError, pd.errors.EmptyDataError):
            out[k] = pd.DataFrame()
    s = d / "scaling.csv"
    out["scaling"] = pd.read_csv(s) if s.is_file() else None
    return out


PLOT_METRICS = (("content_kept", "content kept ↑"), ("style_taken", "style taken ↑"),
                ("gram_style", "Gram dist. to style ↓"), ("ssim_content", "SSIM to content ↑"),
                ("frechet_classifier", "Fréchet dist. to real ↓"))


def plot_sweeps(summary, fig_dir) -> list[Path]:
    """One figure per sweep (γ, t_edit, ω: lines with bootstrap bands; ablation: bars with intervals)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    extra = [m for m in ("arcface_id_content", "vgg_gram_style", "frechet_inception") if m in set(summary.metric)]
    mets = list(PLOT_METRICS) + [(m, METRIC_WORDS.get(m, m)) for m in extra]
    for sweep, xlabel in (("gamma", "γ (content share)"), ("t_edit", "t_edit (inject while t ≥ t_edit)"),
                          ("omega", "ω (calibration strength)"), ("ablation", "")):
        d = summary[summary.sweep == sweep]
        if not len(d):
            continue
        present = [(m, t) for m, t in mets if m in set(d.metric)]
        fig, axes = plt.subplots(1, len(present), figsize=(3.1 * len(present), 3.0), squeeze=False)
        for ax, (m, title) in zip(axes[0], present):
            e = d[d.metric == m]
            if sweep == "ablation":
                order = [n for n in ablation_names() if n in set(e.x.astype(str))]
                e = e.set_index(e.x.astype(str)).loc[order]
                pos = np.arange(len(e))
                ax.bar(pos, e["mean"], color="#8fb3d9")
                ax.errorbar(pos, e["mean"], yerr=[e["mean"] - e.ci_low, e.ci_high - e["mean"]], fmt="none", c="k", lw=1)
                ax.set_xticks(pos, [o.replace("normalised ", "n-").replace(" + calibration", "+cal") for o in order],
                              rotation=50, ha="right", fontsize=7)
            else:
                e = e.assign(xf=e.x.astype(float)).sort_values("xf")
                ax.plot(e.xf, e["mean"], "o-", ms=3)
                ax.fill_between(e.xf, e.ci_low, e.ci_high, alpha=0.25)
                ax.set_xlabel(xlabel, fontsize=8)
            ax.set_title(title, fontsize=9)
            ax.tick_params(labelsize=7)
        fig.suptitle({"gamma": "γ sweep", "t_edit": "t_edit sweep", "omega": "ω sweep (calibration on)",
                      "ablation": "ablation"}[sweep] + " — means with 95% bootstrap intervals", fontsize=10)
        fig.tight_layout()
        p = fig_dir / f"sweep_{sweep}.png"
        atomic_write(p, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
        plt.close(fig)
        paths.append(p)
    return paths


def _md_table(df, floatfmt="{:.3g}") -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return floatfmt.format(v) if math.isfinite(v) else "–"
        return str(v)
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for _, r in df.iterrows()]
    return "\n".join(lines)


def _ci(mean, lo, hi, fmt="{:.3g}"):
    return f"{fmt.format(mean)} [{fmt.format(lo)}, {fmt.format(hi)}]"


# "What is measured" on the page: one bullet per entry, in this order (add one for a new metric family)
METRIC_NOTES = {
    "content kept": "the factor classifier's content heads (family, hair, eyes, mouth) on the result equal the "
                    "content image's factors (only heads where content and style differ count); 1 = all content "
                    "from the content image, 0 = none (the paper measures this with ArcFace identity similarity).",
    "style taken": "of the predicted background, skin and hair colours and the measured border colour, the share "
                   "nearer (RGB) to the style image's than to the content image's (the paper: VGG Gram loss).",
    "Gram distance to style": "Gram matrices of the classifier's conv activations (lower = closer to the style "
                              "image's texture/colour statistics); **SSIM**, **pixel RMSE**, **colour statistics** — "
                              "generic image metrics, against both images (see `pairs.csv.gz`).",
    "Fréchet distance to real": "quality: the Fréchet distance of the classifier's penultimate features (a small, "
                                "domain-specific stand-in for FID).",
}
# the metrics of the page's compact tables (those present in the run), in this order
PAGE_METRICS = ("content_kept", "style_taken", "gram_style", "ssim_content", "ssim_style", "frechet_classifier",
                "arcface_id_content", "vgg_gram_style", "frechet_inception")


def build_page(tables_dir, md_path, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
               figures: bool = True, claims: Sequence[Claim] = CLAIMS) -> Path:
    """Rebuild the results page (Markdown + figures) from the exported tables alone
    (``figures=False``: keep the figure files that are there); ``claims`` are judged in their order."""
    tables_dir, md_path = Path(tables_dir), Path(md_path)
    t = load_exported(tables_dir)
    if not len(t["pairs"]):
        raise FileNotFoundError(f"{tables_dir} holds no evaluation tables: run scripts/run_evaluation.py first")
    run = dict(zip(t["run"].key, t["run"].value))
    summary = metric_summary(t, n_boot=n_boot, level=level, seed=seed)
    write_text(tables_dir / "summary.csv", summary.to_csv(index=False))
    claims = assess_claims(t, claims, n_boot=n_boot, level=level, seed=seed)
    write_text(tables_dir / "claims.csv", claims.to_csv(index=False))
    figs = plot_sweeps(summary, tables_dir) if figures else \
        [tables_dir / f"sweep_{w}.png" for w in ("gamma", "t_edit", "omega", "ablation")
         if (tables_dir / f"sweep_{w}.png").is_file()]
    rel = os.path.relpath(tables_dir, md_path.parent)
    L = []
    L.append("# Evaluation results\n")
    L.append("_Generated by `python scripts/build_results.py` from the tables in "
             f"`{rel}/` (written by `python scripts/run_evaluation.py`). Do not edit by hand._\n")
    L.append("## Setup\n")
    L.append(f"- model: `{run.get('model_source')}` (weights sha256 `{str(run.get('model_sha256'))[:16]}…`)")
    L.append(f"- pairs: {run.get('pairs')} — {run.get('n_pairs')} content/style pairs with different content and "
             "colours; ground truth from the renderer")
    L.append(f"- inversion: {run.get('inversion_steps')} DDIM steps ({run.get('spacing')} grid), each image inverted "
             f"once and reused by every setting; generation: {run.get('steps')} steps")
    L.append(f"- intervals: {float(run.get('level', 0.95)):.0%} percentile bootstrap over pairs "
             f"({n_boot} resamples; {run.get('n_boot_frechet')} for Fréchet distances), paired wherever two settings "
             "are compared (all settings use the same pairs)")
    L.append(f"- Fréchet distances: classifier features of the {run.get('n_pairs')} results vs "
             f"{run.get('reference_n')} fresh real renders (at n = {run.get('n_pairs')} the distance is biased upwards; "
             "compare it between settings and with the real-image rows, not with published FIDs)\n")
    L += _measured_lines(run, t, summary)
    L += _paper_metric_lines(run)
    L += _claim_lines(claims, level)
    L += _figure_and_table_lines(summary, figs, tables_dir, rel, level)
    L += _cost_lines(run, t)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    write_text(md_path, "\n".join(L))
    return md_path


def _measured_lines(run: dict, t: dict, summary) -> list[str]:
    """What is measured: the metrics, the reference rows and, when the classifier reads these faces badly, why."""
    L = []
    L.append("### What is measured\n")
    L += [f"- **{name}** — {note}" for name, note in METRIC_NOTES.items()]
    names = ", ".join(map(str, t["plan"].loc[t["plan"].sweep == "reference", "x"]))
    L.append(f"- reference rows: baselines scored as if they were results ({names}). The content image and the "
             "style image are the ends of each scale. The content image's own *content kept* is the classifier's accuracy on these heads: "
             "the ceiling any result can reach; its *style taken* is the floor (0 with a perfect classifier).\n")
    ceiling = summary[(summary.x == "content image") & (summary.metric == "content_kept")]["mean"]
    if len(ceiling) and float(ceiling.iloc[0]) < 0.8:
        L.append(f"> **Low ceiling.** The classifier finds the content image's own content heads in only "
                 f"{float(ceiling.iloc[0]):.0%} of cases on these pairs, so *content kept* (and every claim about "
                 "content) has little power here: the classifier does not read these faces well (e.g. posed faces, "
                 "when it was trained on upright ones). A score against the ideal renders "
                 "(`training/groundtruth_eval.py`) does not depend on it.\n")
    return L


def _paper_metric_lines(run: dict) -> list[str]:
    """The paper's own metrics (ArcFace, VGG, Inception): measured, or why not."""
    L = []
    pm = json.loads(run.get("paper_metrics", "{}")) if isinstance(run.get("paper_metrics"), str) else {}
    used = json.loads(run.get("paper_metrics_used", "[]")) if isinstance(run.get("paper_metrics_used"), str) else []
    L.append("### The paper's own metrics\n")
    for k in ("arcface", "vgg", "inception"):
        if k in used:
            L.append(f"- **{k}**: measured ({pm.get(k, '')})")
        else:
            lines = [x.strip() for x in pm.get(k, "not configured").splitlines()]
            msg = " ".join([lines[0]] + [x for x in lines[1:] if x.startswith("put it at")])
            L.append(f"- **{k}**: not measured — {msg}")
    L.append("")
    return L


def _claim_lines(claims, level: float) -> list[str]:
    """The paper's findings, claim by claim, with their verdicts."""
    L = []
    L.append("## The paper's findings on this model, claim by claim\n")
    verdict_word = {v: f"{mark} {v}" for v, mark in zip(CLAIM_VERDICTS, ("✅", "❌", "➖", "–"))}
    counts = claims.verdict.value_counts().to_dict()
    L.append("Verdicts: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in CLAIM_VERDICTS) + ". " +
             claim_rule(level) + "\n")
    for i, c in claims.iterrows():
        L.append(f"{i + 1}. **{c.paper}** ({c.source}) — **{verdict_word[c.verdict]}** on this model. "
                 f"Measured: {c.measured}.")
    L.append("")
    return L


def _figure_and_table_lines(summary, figs, tables_dir: Path, rel: str, level: float) -> list[str]:
    """The sweep figures, the example sheets and the compact tables."""
    L = []
    L += ["## Sweeps\n"] + [f"![{p.stem}]({rel}/{p.name})\n" for p in figs]
    for sweep in ("gamma", "ablation", "t_edit", "omega"):
        p = tables_dir / f"examples_{sweep}.png"
        if p.is_file():
            L.append(f"Examples, {sweep} (columns: content, style, results):\n\n![examples {sweep}]({rel}/{p.name})\n")
    # compact tables
    L.append("## Tables\n")
    key = [m for m in PAGE_METRICS if m in set(summary.metric)]
    for sweep in ("gamma", "t_edit", "omega", "ablation", "reference"):
        d = summary[(summary.sweep == sweep) & summary.metric.isin(key)]
        if not len(d):
            continue
        wide = d.assign(v=[_ci(a, b, c) for a, b, c in zip(d["mean"], d.ci_low, d.ci_high)]).pivot_table(
            index="x", columns="metric", values="v", aggfunc="first", sort=False)
        wide = wide[[k for k in key if k in wide.columns]].reset_index()
        L.append(f"**{sweep}** (mean [{level:.0%} CI])\n")
        L.append(_md_table(wide) + "\n")
    return L


def _cost_lines(run: dict, t: dict) -> list[str]:
    """Compute time per phase, wall time, load, and the Dask scale-out demo."""
    L = []
    wall = run.get("wall_seconds_this_call")
    L.append("## Cost\n")
    L.append(f"Compute time of the evaluation on {run.get('cpu_count')} CPU cores ({run.get('scheduler')}, "
             f"{run.get('workers')} worker(s), {run.get('torch_threads')} torch threads), as recorded when each part "
             "was computed:\n")
    tim = t["timing"]
    tim = tim.assign(seconds=tim.seconds.round(1), share=(100 * tim.share).round(1).astype(str) + " %")
    L.append(_md_table(tim) + "\n")
    L.append(f"Total compute {float(run.get('compute_seconds', float('nan'))):.0f} s. Wall time: "
             f"{float(run.get('wall_seconds_all_calls', wall)):.0f} s over {run.get('calls', 1)} call(s) of "
             f"`evaluate` for these settings (the last one {float(wall):.0f} s; a resumed call pays only for the "
             f"settings it computes). Load average at the end of the last call: "
             f"{float(run.get('load_average_end', float('nan'))):.1f} on {run.get('cpu_count')} cores — other jobs "
             "sharing the CPU stretch these times.\n")
    sc = t.get("scaling")
    if sc is not None and len(sc):
        s = sc.iloc[0]
        L.append("## Scale-out (Dask)\n")
        L.append(f"The same small sweep ({s.settings} settings × {s.pairs} pairs × {s.steps} steps, "
                 f"{s.work_units} work units) on a Dask LocalCluster, 1 thread per worker: the distributed phase took "
                 f"{s.seconds_1:.1f} s on {int(s.workers_1)} worker and {s.seconds_n:.1f} s on {int(s.workers_n)} "
                 f"workers — speed-up ×{s.speedup:.2f}; the whole call (with the inversion on the client) "
                 f"{s.call_1:.1f} s vs {s.call_n:.1f} s (×{s.speedup_call:.2f}); with cluster start-up "
                 f"{s.total_1:.1f} s vs {s.total_n:.1f} s. Machine: {int(s.cpu_count)} CPU cores; "
                 + (f"right after the demo, {int(s.workers_n)} single-thread processes together did "
                    f"×{s.parallel_capacity:.2f} the work of one (the ceiling for this speed-up; "
                    f"{int(s.workers_n)} on idle cores). " if "parallel_capacity" in s and math.isfinite(
                        s.parallel_capacity) else "") + f"{s.note}\n")
    return L


