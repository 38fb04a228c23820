"""Estimators of r_homo, r_hetero, r_alt and r_inject per t (docs/method.md §8), with seeded bootstrap intervals.

Input: the per-sample scalars of :class:`~diffstyle_lab.stats.trajectory_norms.NormCollector` (re-exported, with
:func:`collect`); output: tidy frames with :data:`FRAME_COLUMNS`. Pairings: r_hetero is the mean over ``n_perm``
seeded derangements j = π(i); r_alt and r_inject pair i with one derangement π(i) drawn within each batch.
Typical use: ``summarise(collect(model, n=128, out_dir=...))`` (resumable); see notebooks/03_correlations.py.

What the intervals resample: samples i (rows), with the shared indices of :func:`bootstrap.bootstrap_indices`.
For r_homo and the spreads a row is one image (the ordinary bootstrap). For r_hetero each resample recomputes all
``n_perm`` pairings (:func:`r_hetero_replicates`): the interval is that of the reported mean. For r_alt and r_inject
a row is the pair (i, π(i)) with its fixed partner; only scalars are kept, so pairs cannot be re-formed and each
image enters two rows, resampled as if independent: an approximation (its width is checked on simulated data in
tests/test_stats.py), not an image-level bootstrap.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .bootstrap import bootstrap_indices, check_level, percentile_interval, recentre, replicates, stream
from .. import maths
from ..sampling import Inversion
from .trajectory_norms import (MixSetting, NormCollector, NormTable, short_grid, TINY, alt_settings,  # noqa: F401
                               batch_bounds, collect, derangement, derangements, noise)

__all__ = ["MixSetting", "alt_settings", "NormCollector", "NormTable", "derangement", "derangements", "pearson",
           "r_homo", "r_hetero", "r_hetero_replicates", "r_alt", "bootstrap_indices", "correlation_frame",
           "spread_frame", "summarise", "trajectory_cosine", "save_frame", "plot_correlations", "collect",
           "batch_bounds", "noise", "FRAME_COLUMNS"]

FRAME_COLUMNS = ["t", "statistic", "setting", "value", "ci_low", "ci_high", "n", "model"]


# ---------------------------------------------------------------------------------------------
# Estimators

def _check_pair(x, y, what="x and y"):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"{what} have different shapes {x.shape} and {y.shape}; pass one value per sample "
                         "(and per t) for both")
    if x.ndim not in (1, 2):
        raise ValueError(f"{what}: expected n values or an n×T array, got shape {x.shape}")
    if x.shape[0] < 3:
        raise ValueError(f"{what}: a correlation across samples needs n ≥ 3 samples, got n = {x.shape[0]}")
    return x, y


def pearson(x, y) -> np.ndarray:
    """Pearson's r across the first axis (samples): one r per column t of n×T arrays (0-d for n-vectors);
    NaN where a column is constant."""
    x, y = _check_pair(x, y)
    return _pearson_axis(x, y, axis=0)


def _ratio(num, den):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _pearson_axis(x, y, axis):
    xc = x - x.mean(axis=axis, keepdims=True)
    yc = y - y.mean(axis=axis, keepdims=True)
    return _ratio((xc * yc).sum(axis=axis), np.sqrt((xc * xc).sum(axis=axis) * (yc * yc).sum(axis=axis)))


def r_homo(h_norm, g_norm) -> np.ndarray:
    """r_homo: Pearson across samples of |h^(i)| and its own |g^(i)|, per column t."""
    return pearson(h_norm, g_norm)


def r_hetero(h_norm, g_norm, *, n_perm: int = 100, seed: int = 0) -> np.ndarray:
    """r_hetero: Pearson of |h^(π(i))| and |g^(i)|, averaged over ``n_perm`` random derangements π drawn from
    ``numpy.random.default_rng(seed)``.

    Over *all* derangements the cross-covariance is exactly −cov_homo/(n−1) (a permutation keeps the spread
    of |h|), so this mean estimates −r_homo/(n−1), near 0 by construction; one pairing (the paper's r_hetero)
    scatters around it with s.d. ≈ 1/√n, the mean of ``n_perm`` ≈ √n_perm times less.
    """
    h, g = _check_pair(h_norm, g_norm, "h_norm and g_norm")
    if n_perm < 1:
        raise ValueError(f"n_perm={n_perm}: need at least one derangement")
    rng = np.random.default_rng(seed)
    return np.mean([_pearson_axis(h[derangement(len(h), rng)], g, 0) for _ in range(n_perm)], axis=0)


def r_hetero_replicates(h_norm, g_norm, idx: np.ndarray, *, n_perm: int = 100, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of :func:`r_hetero` (B×T for B×n indices ``idx``): on each resample, the mean over
    ``n_perm`` fresh derangements (drawn from :func:`bootstrap.stream` (seed, n, 1)).

    A permutation keeps each column's spread, so that mean is one correlation with h̄_i = mean_p h[π_p(i)]:
    Σ_i (h̄_i − mean h)(g_i − mean g) / √(Σ(h − mean h)²·Σ(g − mean g)²).
    """
    h, g = _check_pair(h_norm, g_norm, "h_norm and g_norm")
    n = h.shape[0]
    rng = stream(seed, n, 1)
    step = max(1, 2_000_000 // h.size)                                # pairings gathered at once
    out = []
    for sel in idx:
        hb, gb = h[sel], g[sel]
        hc, gc = hb - hb.mean(0), gb - gb.mean(0)
        partners = derangements(n, n_perm, rng)                       # n_perm × n
        hbar = sum(hc[partners[k:k + step]].sum(0) for k in range(0, n_perm, step)) / n_perm
        out.append(_ratio((hbar * gc).sum(0), np.sqrt((hc * hc).sum(0) * (gc * gc).sum(0))))
    return np.array(out)


def r_alt(h_tilde_norm, g_norm) -> np.ndarray:
    """r_alt: Pearson of |h̃^(i)| and |g^(i)|, h̃ = mix_h(h^(i), h^(j), γ, method)."""
    return pearson(h_tilde_norm, g_norm)


def _rows(ts, statistic, setting, value, lo, hi, n, model):
    import pandas as pd
    return pd.DataFrame({"t": np.asarray(ts, dtype=np.int64), "statistic": statistic, "setting": setting,
                         "value": np.asarray(value, dtype=np.float64), "ci_low": lo, "ci_high": hi,
                         "n": int(n), "model": model})


def _stat_rows(table, idx, level, model, statistic, setting, fn, x, *others, recorded_only=True):
    """Rows of ``fn(x, *others, axis)`` per t with its percentile interval over the resamples ``idx``; with
    ``recorded_only``, kept to the t where ``x`` was recorded (NaN elsewhere: e.g. not editing), None if none."""
    arrays, ts = [x, *others], table.ts
    if recorded_only:
        keep = np.all(np.isfinite(x), axis=0)
        if not keep.any():
            return None
        arrays, ts = [a[:, keep] for a in arrays], ts[keep]
    reps = replicates(lambda r: fn(*(a[idx[r]] for a in arrays), 1), len(idx))
    lo, hi = percentile_interval(reps, level, axis=0)
    return _rows(ts, statistic, setting, fn(*arrays, 0), lo, hi, table.n, model)


def _frame(parts):
    import pandas as pd
    parts = [p for p in parts if p is not None]
    if not parts:
        return pd.DataFrame(columns=FRAME_COLUMNS)
    df = pd.concat(parts, ignore_index=True)
    df = df[np.isfinite(df["value"].to_numpy(dtype=np.float64))]
    return df[FRAME_COLUMNS].reset_index(drop=True)


def correlation_frame(table: NormTable, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                      n_perm: int = 100, model: str | None = None):
    """r_homo, r_hetero, r_alt (one per mixing setting) and, for injection runs, r_inject per t.

    Percentile intervals at ``level`` over the same seeded resamples for every statistic (so normalised
    Slerp's interval equals r_homo's). r_hetero's replicates centre on the mean over *all* pairings
    (−r_homo/(n−1)) while its value carries its own pairing noise, so they are recentred on the value
    (:func:`~diffstyle_lab.stats.bootstrap.recentre`) first.
    """
    check_level(level)
    h, g = _check_pair(table["h"], table["g"], "the table's h and g")
    idx = bootstrap_indices(table.n, n_boot, seed)
    model = table.model if model is None else model
    parts = [_stat_rows(table, idx, level, model, "r_homo", "none", _pearson_axis, h, g, recorded_only=False)]
    het = r_hetero(h, g, n_perm=n_perm, seed=seed)
    lo, hi = percentile_interval(recentre(r_hetero_replicates(h, g, idx, n_perm=n_perm, seed=seed), het), level)
    parts.append(_rows(table.ts, "r_hetero", "none", het, lo, hi, table.n, model))
    for s in table.settings:
        parts.append(_stat_rows(table, idx, level, model, "r_alt", s.name, _pearson_axis,
                                table[f"h_tilde[{s.name}]"], g, recorded_only=False))
    if "h_tilde" in table.values:
        parts.append(_stat_rows(table, idx, level, model, "r_inject", table.inject_method or "inject",
                                _pearson_axis, table["h_tilde"], g))
    return _frame(parts)


def spread_frame(table: NormTable, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                 model: str | None = None):
    """Per-t mean and s.d. of |h| and |g| (``mean_h``, ``sd_h``, ``mean_g``, ``sd_g``), mean cos(h^(i), h^(π(i)))
    (``cos_pair``), mean ‖h̃−h‖²/‖h‖² per mixing setting (``energy``) and, for injection runs, measured (setting
    ``inject:<method>``), with mean cos(h, h^content) (``cos_content``); intervals as in :func:`correlation_frame`.
    """
    check_level(level)
    idx = bootstrap_indices(table.n, n_boot, seed)
    model = table.model if model is None else model
    mean = lambda x, ax: x.mean(axis=ax)               # noqa: E731
    sd = lambda x, ax: x.std(axis=ax, ddof=1)           # noqa: E731
    todo = [("h", "mean_h", "none", mean), ("h", "sd_h", "none", sd), ("g", "mean_g", "none", mean),
            ("g", "sd_g", "none", sd), ("cos_pair", "cos_pair", "none", mean)]
    todo += [(f"energy[{s.name}]", "energy", s.name, mean) for s in table.settings]
    if "energy" in table.values:
        method = table.inject_method or "inject"
        todo += [("energy", "energy", f"inject:{method}", mean), ("cos_content", "cos_content", method, mean)]
    return _frame([_stat_rows(table, idx, level, model, stat, setting, fn, table[q])
                   for q, stat, setting, fn in todo])


def summarise(table: NormTable | Sequence[NormTable], **kw):
    """:func:`correlation_frame` and :func:`spread_frame` of one or more tables, in one tidy frame."""
    import pandas as pd
    tables = [table] if isinstance(table, NormTable) else list(table)
    kw_spread = {k: v for k, v in kw.items() if k != "n_perm"}
    return pd.concat([f for t in tables for f in (correlation_frame(t, **kw), spread_frame(t, **kw_spread))],
                     ignore_index=True)


def trajectory_cosine(a, b) -> np.ndarray:
    """cos(h_a(t), h_b(t)) over C·H·W between two images' h trajectories: a B×n float64 array (per sample, per
    recorded t). ``a``, ``b``: :class:`~diffstyle_lab.sampling.Inversion` objects or their B×n×C×H×W ``h``."""
    ha = a.h if isinstance(a, Inversion) else a
    hb = b.h if isinstance(b, Inversion) else b
    if isinstance(a, Inversion) and isinstance(b, Inversion) and list(a.ts) != list(b.ts):
        raise ValueError(f"the inversions recorded h at different timesteps ({short_grid(a.ts)} vs {short_grid(b.ts)}); "
                         "invert both on the same grid")
    if not (torch.is_tensor(ha) and torch.is_tensor(hb)) or ha.dim() < 3:
        raise ValueError("trajectory_cosine: pass two Inversion objects or two B×n×C×H×W tensors")
    if ha.shape != hb.shape:
        raise ValueError(f"trajectory_cosine: h trajectories have different shapes {tuple(ha.shape)} and "
                         f"{tuple(hb.shape)}")
    fa, fb = ha.flatten(2).double(), hb.flatten(2).double()
    return ((fa * fb).sum(-1) / (fa.norm(dim=-1) * fb.norm(dim=-1)).clamp_min(TINY)).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Export and plots

def save_frame(df, path) -> Path:
    """Write a frame as ``.csv`` or ``.parquet`` (needs pyarrow or fastparquet) by the file suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        df.to_csv(path, index=False, float_format="%.6g")
    elif path.suffix in (".parquet", ".pq"):
        if not any(importlib.util.find_spec(engine) for engine in ("pyarrow", "fastparquet")):
            raise ImportError(f"writing {path.name} needs a Parquet engine, and neither pyarrow nor "
                              "fastparquet is installed: `pip install pyarrow`, or save as .csv")
        df.to_parquet(path, index=False)
    else:
        raise ValueError(f"{path}: unknown format {path.suffix!r}; use .csv or .parquet")
    return path


def line_styles() -> dict:
    """(legend label, colour, line style) per statistic and per mixing rule (from :data:`maths.MIX_RULES`)."""
    return {"r_homo": ("r_homo", "C0", "-"), "r_hetero": ("r_hetero", "C3", "-"),
            **{r.name: (f"r_alt {r.title or r.label}", *r.line) for r in maths.MIX_RULES.values()}}


def plot_correlations(df, path=None, *, title: str | None = None, norms: bool = True):
    """r(t) in the style of the paper's figure (T on the left), one line per statistic/setting with shaded
    bootstrap intervals; with ``norms`` a second panel of mean ± s.d. of |h| and |g| (each over its mean over
    t). Returns a bare :class:`matplotlib.figure.Figure` (no pyplot: no display needed), saved if ``path``."""
    from matplotlib.figure import Figure    # no pyplot: works under any backend, keeps no global state

    if need := set(FRAME_COLUMNS) - set(df.columns):
        raise ValueError(f"plot_correlations: the frame lacks columns {sorted(need)}")
    corr = df[df["statistic"].isin(["r_homo", "r_hetero", "r_alt", "r_inject"])]
    if corr.empty:
        raise ValueError("plot_correlations: the frame has no r_homo / r_hetero / r_alt rows")
    ncols = 2 if norms and df["statistic"].isin(["mean_h", "mean_g"]).any() else 1
    fig = Figure(figsize=(6.2 * ncols, 4.2))
    axes = fig.subplots(1, ncols, squeeze=False)
    ax = axes[0, 0]
    styles = line_styles()
    for (stat, setting), grp in corr.groupby(["statistic", "setting"], sort=False):
        grp = grp.sort_values("t")
        main = stat in ("r_homo", "r_hetero")
        label, colour, ls = styles.get(stat if main else setting, (f"{stat} {setting}", None, "-"))
        if stat == "r_inject":
            label, ls, colour = f"r measured in injection ({setting})", "-", colour or "C7"
        line, = ax.plot(grp["t"], grp["value"], ls=ls, color=colour, lw=2.2 if main else 1.4, label=label,
                        marker="o" if stat == "r_inject" else None, ms=2.5)
        ax.fill_between(grp["t"], grp["ci_low"], grp["ci_high"], color=line.get_color(),
                        alpha=0.18 if main else 0.08, lw=0)
    for a in axes[0]:
        a.set_xlim(corr["t"].max(), corr["t"].min())
        a.set_xlabel("t  (T on the left)")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_ylabel("Pearson r across samples")
    ax.set_ylim(-1.05, 1.05)
    n = int(corr["n"].max())
    ax.set_title(title or f"|h| vs |g|: {corr['model'].iloc[0]}, n = {n} (shaded: bootstrap CI)", fontsize=9)
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    if ncols == 2:
        ax2 = axes[0, 1]
        for q, colour in (("h", "C0"), ("g", "C2")):
            m = df[df["statistic"] == f"mean_{q}"].sort_values("t")
            s = df[df["statistic"] == f"sd_{q}"].sort_values("t")
            if m.empty:
                continue
            scale = m["value"].mean()
            mv, sv = m["value"].to_numpy() / scale, s.set_index("t").loc[m["t"], "value"].to_numpy() / scale
            ax2.plot(m["t"], mv, color=colour, label=f"mean |{q}| / {scale:.3g}")
            ax2.fill_between(m["t"], mv - sv, mv + sv, color=colour, alpha=0.15, lw=0, label=f"± s.d. |{q}|")
        ax2.set_ylabel("norm, relative to its mean over t")
        ax2.set_title("per-t mean ± s.d. across samples", fontsize=9)
        ax2.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=130)
    return fig


