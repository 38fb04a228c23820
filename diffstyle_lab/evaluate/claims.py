"""The evaluation's verdicts: per-pair metrics summarised with bootstrap intervals, and the paper's claims
checked one by one on the measured numbers. A claim compares settings named by (sweep, x): a plan's sweep
(``"gamma"``, ``"t_edit"``, ``"omega"``, ``"ablation"``) or a baseline (``("reference", "content image")``).
Intervals, the minimum n and the verdict words are the one verdict engine's (:mod:`diffstyle_lab.stats.verdicts`)."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ..stats.bootstrap import check_level
from ..stats.verdicts import (NOT_MEASURED, ci_text, claim_verdict, difference_interval, enough, mean_interval,
                              replicate_interval, trend_interval)

SUMMARY_COLUMNS = ["sweep", "x", "setting_id", "metric", "mean", "ci_low", "ci_high", "n"]


def metric_summary(tables: dict, metrics_: Sequence[str] | None = None, n_boot: int = 1000, level: float = 0.95,
                   seed: int = 0):
    """Long table (:data:`SUMMARY_COLUMNS`): the mean of each per-pair metric (default: every metric column of
    ``tables["pairs"]``) per plan row with its bootstrap interval over pairs (none below the engine's
    ``MIN_N`` pairs), plus the set-level Fréchet distances with theirs (likewise)."""
    import pandas as pd
    check_level(level)
    pairs, plan, sets = tables["pairs"], tables["plan"], tables["sets"]
    if metrics_ is None:
        metrics_ = [c for c in pairs.columns if c not in ("setting_id", "pair") and pairs[c].dtype.kind in "fiub"]
    out = []
    for _, p in plan.iterrows():
        d = pairs[pairs.setting_id == p.setting_id]
        if not len(d):
            continue
        for m in [m for m in metrics_ if m in d]:
            v = d[m].to_numpy(np.float64)
            if not np.isfinite(v).any():
                continue
            mean, lo, hi = mean_interval(v, n_boot, level, seed)
            out.append({"sweep": p.sweep, "x": p.x, "setting_id": p.setting_id, "metric": m, "mean": mean,
                        "ci_low": lo, "ci_high": hi, "n": int(np.isfinite(v).sum())})
        if len(sets):
            for _, s in sets[sets.setting_id == p.setting_id].iterrows():
                lo, hi = (s.ci_low, s.ci_high) if enough(int(s.n)) else (float("nan"), float("nan"))
                out.append({"sweep": p.sweep, "x": p.x, "setting_id": p.setting_id, "metric": s.metric,
                            "mean": s.value, "ci_low": lo, "ci_high": hi, "n": int(s.n)})
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


@dataclasses.dataclass(frozen=True)
class Claim:
    """One finding of the paper and how it is tested.

    kind: ``diff`` — mean(metric | a) − mean(metric | b), paired over pairs, expected sign ``direction``;
          ``trend`` — Spearman of the metric's mean against the sweep's x, expected sign ``direction``;
          ``above`` — mean(metric | a) > ``threshold``;
          ``set_diff`` — a set-level metric (Fréchet distance) of a minus b, paired bootstrap replicates.
    a / b: (sweep, x) of the settings compared; for ``trend``, a = (sweep, None).
    """

    id: str
    paper: str
    kind: str
    metric: str
    a: tuple
    b: tuple | None = None
    direction: int = 1
    threshold: float = 0.0
    source: str = ""


CLAIMS = (
    Claim("content-injected", "Injecting the content image's h transfers its content: results keep more of the "
          "content image than the same reverse process without injection (γ = 0).", "diff", "content_kept",
          ("gamma", 0.3), ("gamma", 0.0), +1, source="paper §4, Fig. 1"),
    Claim("style-kept", "The result keeps the style image's look (its colours come from x_T and the skip "
          "connections): at the paper's defaults most colour factors are nearer the style image than the content image.",
          "above", "style_taken", ("gamma", 0.3), None, +1, 0.5, source="paper §3–4"),
    Claim("gamma-content", "A larger γ injects more content (the paper's ID similarity rises with γ).", "trend",
          "content_kept", ("gamma", None), None, +1, source="paper Fig. (γ sweep)"),
    Claim("gamma-style", "A larger γ keeps less of the style (the paper's Gram style loss rises with γ).", "trend",
          "gram_style", ("gamma", None), None, +1, source="paper Fig. (γ sweep)"),
    Claim("t_edit-content", "A longer editing interval (smaller t_edit) injects more content.", "trend",
          "content_kept", ("t_edit", None), None, -1, source="paper Fig. (t_edit sweep)"),
    Claim("gamma-quality", "Too much content hurts quality (the paper advises γ 0.3–0.4; 0.7 is too much): the "
          "Fréchet distance at γ = 0.7 exceeds that at γ = 0.3.", "set_diff", "frechet_classifier",
          ("gamma", 0.7), ("gamma", 0.3), +1, source="paper §4.2, README"),
    Claim("nslerp-vs-replace", "Normalised Slerp gives better quality than replacing h (replacement breaks the "
          "correlation of |h| and |g| and distorts images): lower Fréchet distance.", "set_diff",
          "frechet_classifier", ("ablation", "replace"), ("ablation", "normalised slerp"), +1,
          source="paper §4.2, ablation table"),
    Claim("nslerp-vs-add", "Normalised Slerp gives better quality than adding h^content to h.", "set_diff",
          "frechet_classifier", ("ablation", "add"), ("ablation", "normalised slerp"), +1,
          source="paper ablation table"),
    Claim("nslerp-vs-lerp", "Normalised Slerp gives better quality than linear interpolation.", "set_diff",
          "frechet_classifier", ("ablation", "lerp"), ("ablation", "normalised slerp"), +1,
          source="paper ablation table"),
    Claim("nslerp-vs-slerp", "Normalising the norm matters: normalised Slerp gives better quality than plain Slerp.",
          "set_diff", "frechet_classifier", ("ablation", "slerp"), ("ablation", "normalised slerp"), +1,
          source="paper §4.2, ablation table"),
    Claim("calibration-style", "Style calibration brings the result closer to the style image (lower Gram style "
          "distance than normalised Slerp alone).", "diff", "gram_style",
          ("ablation", "normalised slerp + calibration"), ("ablation", "normalised slerp"), -1,
          source="paper §4.3, ablation table"),
    Claim("omega-content", "A larger ω keeps less injected content (ω = 1 cancels the injection up to the "
          "normalisation term).", "trend", "content_kept", ("omega", None), None, -1, source="paper §4.3, method.md §7"),
)

METRIC_WORDS = {"content_kept": "content kept", "style_taken": "style taken",
                "gram_style": "Gram distance to the style image",
                "frechet_classifier": "Fréchet distance to real faces (classifier features)",
                "frechet_inception": "FID (Inception)",
                "arcface_id_content": "ArcFace identity similarity to the content image",
                "vgg_gram_style": "VGG Gram distance to the style image"}


def fmt_x(sweep, x):
    if sweep in ("gamma", "omega"):
        return f"{'γ' if sweep == 'gamma' else 'ω'} = {float(x):g}"
    return f"t_edit = {int(float(x))}" if sweep == "t_edit" else str(x)


def match_x(plan, sweep, x):
    d = plan[plan.sweep == sweep]
    if x is None:
        return d
    try:
        return d[np.isclose(d.x.astype(float), float(x))]
    except (TypeError, ValueError):
        return d[d.x.astype(str) == str(x)]


def _sid(plan, where) -> str:
    """The setting id of (sweep, x) in the plan; LookupError (→ "not measured") when the run has none."""
    d = match_x(plan, *where)
    if not len(d):
        raise LookupError
    return d.setting_id.iloc[0]


def _pair_values(tables, sid, metric, n_pairs):
    d = tables["pairs"]
    d = d[d.setting_id == sid].set_index("pair").reindex(range(n_pairs))
    return d[metric].to_numpy(np.float64) if metric in d else np.full(n_pairs, np.nan)


def _set_values(tables, sid, metric):
    """A set-level metric of a setting, its bootstrap replicates (in replicate order) and its n."""
    sets, boot = tables["sets"], tables["sets_boot"]
    g = sets[(sets.setting_id == sid) & (sets.metric == metric)] if len(sets) else sets
    if not len(g):
        raise LookupError
    reps = boot[(boot.setting_id == sid) & (boot.metric == metric)].sort_values("b").value.to_numpy()
    return g.value.iloc[0], reps, int(g.n.iloc[0])


def assess_claims(tables: dict, claims: Sequence[Claim] = CLAIMS, n_boot: int = 1000, level: float = 0.95,
                  seed: int = 0):
    """Each claim's estimate, interval and verdict — ``holds`` (the interval lies on the paper's side),
    ``does not hold`` (on the other side), ``inconclusive`` (it straddles the null, or fewer pairs than the
    engine's ``MIN_N`` give no interval) or ``not measured`` (:func:`~diffstyle_lab.stats.verdicts.claim_verdict`)
    — with a sentence generated from the numbers."""
    import pandas as pd
    check_level(level)
    plan = tables["plan"]
    n_pairs = int(tables["pairs"]["pair"].max()) + 1 if len(tables["pairs"]) else 0
    out = []
    for c in claims:
        row = {"claim": c.id, "paper": c.paper, "source": c.source, "metric": c.metric, "kind": c.kind,
               "estimate": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "verdict": NOT_MEASURED}
        mw = METRIC_WORDS.get(c.metric, c.metric)
        null = c.threshold if c.kind == "above" else 0.0
        try:
            if c.kind == "trend":
                d = match_x(plan, c.a[0], None)
                if len(d) < 3:
                    raise LookupError
                d = d.assign(xf=d.x.astype(float)).sort_values("xf")
                mat = np.stack([_pair_values(tables, sid, c.metric, n_pairs) for sid in d.setting_id])
                if not np.isfinite(mat).any():
                    raise LookupError
                est, lo, hi = trend_interval(mat, d.xf.to_numpy(), n_boot, level, seed)
                means = np.nanmean(mat, 1)
                xs = d.xf.to_numpy()
                measured = (f"{mw} goes from {means[0]:.3g} at {fmt_x(c.a[0], xs[0])} to {means[-1]:.3g} at "
                            f"{fmt_x(c.a[0], xs[-1])} (levels: " + ", ".join(f"{m:.3g}" for m in means) +
                            f"); Spearman ρ(x, mean) = {est:+.2f}, {ci_text(lo, hi, level, '+.2f')}")
            elif c.kind in ("diff", "above"):
                sb = _sid(plan, c.b) if c.b is not None else None
                va = _pair_values(tables, _sid(plan, c.a), c.metric, n_pairs)
                if not np.isfinite(va).any():
                    raise LookupError
                if c.kind == "above":
                    est, lo, hi = mean_interval(va, n_boot, level, seed)
                    measured = (f"{mw} at {fmt_x(*c.a)} = {est:.3g}, {ci_text(lo, hi, level)} "
                                f"(threshold {c.threshold:g}; n = {int(np.isfinite(va).sum())} pairs)")
                else:
                    vb = _pair_values(tables, sb, c.metric, n_pairs)
                    est, lo, hi = difference_interval(va, vb, n_boot, level, seed)
                    measured = (f"{mw}: {np.nanmean(va):.3g} at {fmt_x(*c.a)} vs {np.nanmean(vb):.3g} at "
                                f"{fmt_x(*c.b)}; paired difference {est:+.3g}, {ci_text(lo, hi, level, '+.3g')} "
                                f"(n = {int((np.isfinite(va) & np.isfinite(vb)).sum())} pairs)")
            elif c.kind == "set_diff":
                (fa, ra, na), (fb, rb, nb) = (_set_values(tables, _sid(plan, w), c.metric) for w in (c.a, c.b))
                est, lo, hi = replicate_interval(fa - fb, ra - rb, min(na, nb), level)
                measured = (f"{mw}: {fa:.3g} at {fmt_x(*c.a)} vs {fb:.3g} at {fmt_x(*c.b)}; difference "
                            f"{est:+.3g}, {ci_text(lo, hi, level, '+.3g')} (paired bootstrap over the same resampled "
                            "pairs)")
            else:
                raise ValueError(f"claim {c.id}: unknown kind {c.kind!r}")
        except LookupError:
            row["measured"] = f"not measured: the run has no {mw} for the settings this claim compares"
        else:
            row.update(estimate=est, ci_low=lo, ci_high=hi, measured=measured)
            row["verdict"] = claim_verdict(lo, hi, null, c.direction)
        out.append(row)
    return pd.DataFrame(out)

