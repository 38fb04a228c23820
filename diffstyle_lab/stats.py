"""Statistics of h and g along the sampling trajectory (docs/method.md, statistics).

From the per-sample scalars a :class:`~diffstyle_lab.trajectory_norms.NormCollector` records (‖h^(i)‖,
‖g^(i)‖, ‖h̃^(i)‖, …; re-exported here with :func:`collect`) the estimators give, per t and with
seeded bootstrap confidence intervals over samples (:mod:`diffstyle_lab.bootstrap`):

* r_homo(t)   — Pearson correlation across samples of |h^(i)| and *its own* |g^(i)|;
* r_hetero(t) — the same with |h^(j)| of another sample j ≠ i paired with |g^(i)|, j = π(i): the mean
  over ``n_perm`` random derangements π (seeded). Its interval is the interval *of that mean*: each
  bootstrap resample of the samples recomputes all ``n_perm`` pairings (:func:`r_hetero_replicates`);
* r_alt(t)    — the correlation of |h̃^(i)| and |g^(i)| where h̃ = mix_h(h^(i), h^(j), γ, method) mixes
  in another sample's h (one derangement within each batch) by replace / add / lerp / slerp /
  normalised Slerp. Replacement pairs |h^(j)| with |g^(i)| like r_hetero (the distortion);
  normalised Slerp keeps ‖h̃‖ = ‖h‖ and so r_alt = r_homo exactly;
* r_inject(t) — the correlation of |h̃| and |g| measured *during* real injection runs (the g of the
  injected trajectory), for the method the run used;
* the per-t mean and spread of |h| and |g|, the mean cosine between two samples' h, and how much of
  h's energy an injection changes, ‖h̃−h‖²/‖h‖².

**What the intervals resample.** Every interval resamples *samples* i (rows of the table) with the
shared indices of :func:`~diffstyle_lab.bootstrap.bootstrap_indices`. For r_homo and the spreads a
row is one image, so this is the ordinary bootstrap. For r_alt and r_inject a row is the *pair*
(i, π(i)) with the fixed partner π(i) the collector drew; the table keeps only scalars, so pairs
cannot be re-formed, and each image enters two rows (as i and as the partner of π⁻¹(i)): the rows
are resampled as if independent. On simulated data with a known answer this pair bootstrap gives
intervals of the right width (tests/test_stats.py checks it against the spread over fresh images
and pairings); it is an approximation, not an image-level bootstrap.

Typical use::

    from diffstyle_lab import stats, load_default_model
    m = load_default_model()
    table = stats.collect(m, n=128, steps=50, out_dir="runs/stats/faces32")   # resumable
    df = stats.summarise(table)            # tidy: t, statistic, setting, value, ci_low, ci_high, n, model
    stats.save_frame(df, "correlations.csv"); stats.plot_correlations(df, "correlations.png")

A collector is an ordinary sampler callback, usable on its own::

    col = stats.NormCollector()
    generate(m, x_T, callbacks=[col]); ddim_invert(m, x0, callbacks=[stats.NormCollector(phase="invert")])
    table = col.table()
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .bootstrap import bootstrap_indices, check_level, percentile_interval, recentre, replicates, stream
from .sampling import Inversion
from .trajectory_norms import (SOURCES, MixSetting, NormCollector, NormTable, _short, _TINY, alt_settings,  # noqa: F401
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
    """Pearson's r across the first axis (samples): Σ(x−x̄)(y−ȳ) / √(Σ(x−x̄)²·Σ(y−ȳ)²).

    Works on n-vectors (returns a 0-d array) or n×T arrays (one r per column, i.e. per t), and on
    stacks ``...×n×T`` when called through :func:`_pearson_axis`. NaN where a column is constant.
    """
    x, y = _check_pair(x, y)
    return _pearson_axis(x, y, axis=0)


def _pearson_axis(x, y, axis):
    xc = x - x.mean(axis=axis, keepdims=True)
    yc = y - y.mean(axis=axis, keepdims=True)
    num = (xc * yc).sum(axis=axis)
    den = np.sqrt((xc * xc).sum(axis=axis) * (yc * yc).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def r_homo(h_norm, g_norm) -> np.ndarray:
    """r_homo: Pearson across samples of |h^(i)| and its own |g^(i)|, per column t."""
    return pearson(h_norm, g_norm)


def r_hetero(h_norm, g_norm, *, n_perm: int = 100, seed: int = 0) -> np.ndarray:
    """r_hetero: Pearson of |h^(π(i))| and |g^(i)|, π a random derangement (j ≠ i), averaged over
    ``n_perm`` derangements drawn from ``numpy.random.default_rng(seed)`` (so it does not hinge on one
    pairing).

    Averaged over *all* derangements the cross-covariance is exactly −cov_homo/(n−1) (a permutation keeps
    the spread of |h|), so this mean estimates −r_homo/(n−1): near 0 by construction. One random pairing
    (the paper's r_hetero, and what replacement does) scatters around it with s.d. ≈ 1/√n; the mean of
    ``n_perm`` scatters ≈ √n_perm times less. Its interval in :func:`correlation_frame` is that of the
    mean, as reported (:func:`r_hetero_replicates`).
    """
    h, g = _check_pair(h_norm, g_norm, "h_norm and g_norm")
    if n_perm < 1:
        raise ValueError(f"n_perm={n_perm}: need at least one derangement")
    rng = np.random.default_rng(seed)
    return np.mean([_pearson_axis(h[derangement(len(h), rng)], g, 0) for _ in range(n_perm)], axis=0)


def r_hetero_replicates(h_norm, g_norm, idx: np.ndarray, *, n_perm: int = 100, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of :func:`r_hetero` (B×T for ``idx``: B×n resampling indices): resample b is the
    samples ``idx[b]``, and r_hetero is recomputed on it as reported — the mean over ``n_perm`` fresh
    derangements of its n positions (drawn from :func:`bootstrap.stream` (seed, n, 1)).

    Since a permutation keeps each column's spread, the mean over pairings π_p of Pearson(h[π_p], g) is
    Σ_i (h̄_i − mean h)(g_i − mean g) / √(Σ(h−mean h)²·Σ(g−mean g)²)
    with h̄_i = (1/n_perm) Σ_p h[π_p(i)]: one correlation per resample instead of n_perm.
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
        num = (hbar * gc).sum(0)
        den = np.sqrt((hc * hc).sum(0) * (gc * gc).sum(0))
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan))
    return np.array(out)


def r_alt(h_tilde_norm, g_norm) -> np.ndarray:
    """r_alt: Pearson of |h̃^(i)| and |g^(i)|, h̃ = mix_h(h^(i), h^(j), γ, method)."""
    return pearson(h_tilde_norm, g_norm)


def _interval(stat, n_boot: int, level: float):
    """Percentile interval of ``stat(rows)`` (chunk×T) over all resamples (see :func:`bootstrap.replicates`)."""
    return percentile_interval(replicates(stat, n_boot), level, axis=0)


def _rows(ts, statistic, setting, value, lo, hi, n, model):
    import pandas as pd
    return pd.DataFrame({"t": np.asarray(ts, dtype=np.int64), "statistic": statistic, "setting": setting,
                         "value": np.asarray(value, dtype=np.float64), "ci_low": lo, "ci_high": hi,
                         "n": int(n), "model": model})


def _frame(parts):
    import pandas as pd
    if not parts:
        return pd.DataFrame(columns=FRAME_COLUMNS)
    df = pd.concat(parts, ignore_index=True)
    df = df[np.isfinite(df["value"].to_numpy(dtype=np.float64))]
    return df[FRAME_COLUMNS].reset_index(drop=True)


def correlation_frame(table: NormTable, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                      n_perm: int = 100, model: str | None = None):
    """r_homo, r_hetero, r_alt (one per mixing setting) and, for injection runs, r_inject per t.

    Tidy DataFrame with :data:`FRAME_COLUMNS`. Confidence intervals are bootstrap percentile
    intervals at ``level`` over samples (seeded; the same resamples for every statistic, so
    normalised Slerp's interval equals r_homo's). r_hetero's value is the mean over ``n_perm``
    derangements (:func:`r_hetero`), and so is each of its replicates (:func:`r_hetero_replicates`):
    its interval is that of the reported mean. Those replicates centre on the mean over *all* pairings
    (−r_homo/(n−1)) while the value carries its own pairing noise, so they are recentred on the value
    (:func:`~diffstyle_lab.bootstrap.recentre`) before the percentile interval is read. r_alt and
    r_inject resample the rows (i, π(i)) with their fixed partners (see the module's note on what the
    intervals resample).
    """
    check_level(level)
    h, g = _check_pair(table["h"], table["g"], "the table's h and g")
    n = table.n
    idx = bootstrap_indices(n, n_boot, seed)
    model = table.model if model is None else model
    parts = []
    lo, hi = _interval(lambda r: _pearson_axis(h[idx[r]], g[idx[r]], 1), n_boot, level)
    parts.append(_rows(table.ts, "r_homo", "none", r_homo(h, g), lo, hi, n, model))
    het = r_hetero(h, g, n_perm=n_perm, seed=seed)
    lo, hi = percentile_interval(recentre(r_hetero_replicates(h, g, idx, n_perm=n_perm, seed=seed), het), level)
    parts.append(_rows(table.ts, "r_hetero", "none", het, lo, hi, n, model))
    for s in table.settings:
        ht = table[f"h_tilde[{s.name}]"]
        lo, hi = _interval(lambda r, ht=ht: _pearson_axis(ht[idx[r]], g[idx[r]], 1), n_boot, level)
        parts.append(_rows(table.ts, "r_alt", s.name, r_alt(ht, g), lo, hi, n, model))
    if "h_tilde" in table.values:
        rows = _nan_aware_corr(table, "h_tilde", "r_inject", table.inject_method or "inject", idx, level, model)
        if rows is not None:
            parts.append(rows)
    return _frame(parts)


def _nan_aware_corr(table, q, statistic, setting, idx, level, model):
    """Correlation of |q| with |g| over the t where q was recorded (NaN elsewhere: not editing)."""
    x, g = table[q], table["g"]
    keep = np.all(np.isfinite(x), axis=0)
    if not keep.any():
        return None
    x, g2, ts = x[:, keep], g[:, keep], table.ts[keep]
    lo, hi = _interval(lambda r: _pearson_axis(x[idx[r]], g2[idx[r]], 1), len(idx), level)
    return _rows(ts, statistic, setting, pearson(x, g2), lo, hi, table.n, model)


def spread_frame(table: NormTable, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                 model: str | None = None):
    """Per-t mean and standard deviation of |h| and |g| (``mean_h``, ``sd_h``, ``mean_g``, ``sd_g``),
    the mean cosine between two samples' h (``cos_pair``), the mean share of h's energy each mixing
    setting changes, ‖h̃−h‖²/‖h‖² (``energy``, per setting), and for injection runs the measured
    ``energy`` (setting ``inject:<method>``) and the mean cos(h, h^content) (``cos_content``).
    Bootstrap percentile intervals as in :func:`correlation_frame`.
    """
    check_level(level)
    n = table.n
    idx = bootstrap_indices(n, n_boot, seed)
    model = table.model if model is None else model
    parts = []

    def add(q, statistic, setting, fn):
        x = table[q]
        keep = np.all(np.isfinite(x), axis=0)
        if not keep.any():
            return
        x, ts = x[:, keep], table.ts[keep]
        lo, hi = _interval(lambda r: fn(x[idx[r]], 1), n_boot, level)
        parts.append(_rows(ts, statistic, setting, fn(x, 0), lo, hi, n, model))

    mean = lambda x, ax: x.mean(axis=ax)               # noqa: E731
    sd = lambda x, ax: x.std(axis=ax, ddof=1)           # noqa: E731
    add("h", "mean_h", "none", mean)
    add("h", "sd_h", "none", sd)
    add("g", "mean_g", "none", mean)
    add("g", "sd_g", "none", sd)
    add("cos_pair", "cos_pair", "none", mean)
    for s in table.settings:
        add(f"energy[{s.name}]", "energy", s.name, mean)
    if "energy" in table.values:
        add("energy", "energy", f"inject:{table.inject_method or 'inject'}", mean)
        add("cos_content", "cos_content", table.inject_method or "inject", mean)
    return _frame(parts)


def summarise(table: NormTable | Sequence[NormTable], **kw):
    """:func:`correlation_frame` and :func:`spread_frame` of one or more tables, in one tidy frame."""
    import pandas as pd
    tables = [table] if isinstance(table, NormTable) else list(table)
    kw_corr = dict(kw)
    kw_spread = {k: v for k, v in kw.items() if k != "n_perm"}
    return pd.concat([f for t in tables for f in (correlation_frame(t, **kw_corr), spread_frame(t, **kw_spread))],
                     ignore_index=True)


def trajectory_cosine(a, b) -> np.ndarray:
    """Cosine similarity between two images' h trajectories, per sample and per recorded t.

    ``a`` and ``b`` are :class:`~diffstyle_lab.sampling.Inversion` objects (their ``h`` is B×n×C×H×W)
    or such tensors; returns a B×n float64 array: cos(h_a(t), h_b(t)) over C·H·W.
    """
    ha = a.h if isinstance(a, Inversion) else a
    hb = b.h if isinstance(b, Inversion) else b
    if isinstance(a, Inversion) and isinstance(b, Inversion) and list(a.ts) != list(b.ts):
        raise ValueError(f"the inversions recorded h at different timesteps ({_short(a.ts)} vs {_short(b.ts)}); "
                         "invert both on the same grid")
    if not (torch.is_tensor(ha) and torch.is_tensor(hb)) or ha.dim() < 3:
        raise ValueError("trajectory_cosine: pass two Inversion objects or two B×n×C×H×W tensors")
    if ha.shape != hb.shape:
        raise ValueError(f"trajectory_cosine: h trajectories have different shapes {tuple(ha.shape)} and "
                         f"{tuple(hb.shape)}")
    fa, fb = ha.flatten(2).double(), hb.flatten(2).double()
    return ((fa * fb).sum(-1) / (fa.norm(dim=-1) * fb.norm(dim=-1)).clamp_min(_TINY)).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Export and plots

def save_frame(df, path) -> Path:
    """Write a frame as ``.csv`` or ``.parquet`` (needs pyarrow or fastparquet) by the file suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        df.to_csv(path, index=False, float_format="%.6g")
    elif path.suffix in (".parquet", ".pq"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            try:
                import fastparquet  # noqa: F401
            except ImportError:
                raise ImportError(f"writing {path.name} needs a Parquet engine, and neither pyarrow nor "
                                  "fastparquet is installed: `pip install pyarrow`, or save as .csv") from None
        df.to_parquet(path, index=False)
    else:
        raise ValueError(f"{path}: unknown format {path.suffix!r}; use .csv or .parquet")
    return path


_STYLE = {"r_homo": ("r_homo", "C0", "-"), "r_hetero": ("r_hetero", "C3", "-"),
          "replace": ("r_alt replace", "C1", "--"), "add": ("r_alt add", "C2", "--"),
          "lerp": ("r_alt lerp", "C4", ":"), "slerp": ("r_alt slerp", "C5", "-."),
          "normalised_slerp": ("r_alt normalised Slerp", "k", (0, (1, 2)))}


def plot_correlations(df, path=None, *, title: str | None = None, norms: bool = True):
    """r(t) in the style of the paper's figure: t on the x-axis with T on the left (as in diffusion
    papers), one line per statistic/setting, shaded bootstrap intervals. With ``norms`` a second
    panel shows mean ± s.d. of |h| and |g| (each divided by its mean over t). Returns the figure;
    saves it when ``path`` is given. The figure is a bare :class:`matplotlib.figure.Figure` (no
    pyplot), so it can be drawn without a display.
    """
    from matplotlib.figure import Figure    # no pyplot: works under any backend, keeps no global state

    need = set(FRAME_COLUMNS) - set(df.columns)
    if need:
        raise ValueError(f"plot_correlations: the frame lacks columns {sorted(need)}")
    corr = df[df["statistic"].isin(["r_homo", "r_hetero", "r_alt", "r_inject"])]
    if corr.empty:
        raise ValueError("plot_correlations: the frame has no r_homo / r_hetero / r_alt rows")
    ncols = 2 if norms and df["statistic"].isin(["mean_h", "mean_g"]).any() else 1
    fig = Figure(figsize=(6.2 * ncols, 4.2))
    axes = fig.subplots(1, ncols, squeeze=False)
    ax = axes[0, 0]
    for (stat, setting), grp in corr.groupby(["statistic", "setting"], sort=False):
        grp = grp.sort_values("t")
        key = stat if stat in ("r_homo", "r_hetero") else setting
        label, colour, ls = _STYLE.get(key, (f"{stat} {setting}", None, "-"))
        if stat == "r_inject":
            label, ls = f"r measured in injection ({setting})", "-"
            colour = "C7" if key not in _STYLE else _STYLE[key][1]
        lw = 2.2 if stat in ("r_homo", "r_hetero") else 1.4
        line, = ax.plot(grp["t"], grp["value"], ls=ls, color=colour, lw=lw, label=label,
                        marker="o" if stat == "r_inject" else None, ms=2.5)
        ax.fill_between(grp["t"], grp["ci_low"], grp["ci_high"], color=line.get_color(),
                        alpha=0.18 if stat in ("r_homo", "r_hetero") else 0.08, lw=0)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlim(corr["t"].max(), corr["t"].min())
    ax.set_xlabel("t  (T on the left)")
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
        ax2.set_xlim(corr["t"].max(), corr["t"].min())
        ax2.set_xlabel("t  (T on the left)")
        ax2.set_ylabel("norm, relative to its mean over t")
        ax2.set_title("per-t mean ± s.d. across samples", fontsize=9)
        ax2.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=130)
    return fig


