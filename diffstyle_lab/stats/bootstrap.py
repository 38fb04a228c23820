"""The one statistics core: seeded bootstrap resampling and percentile intervals, used by
:mod:`diffstyle_lab.stats.estimators` (h/g correlations), :mod:`diffstyle_lab.evaluate.measures` (set-level
Fréchet distances) and :mod:`diffstyle_lab.stats.verdicts` (the one verdict engine: every interval a claim,
a notebook sentence or a model's ground-truth summary rests on).

* **Indices** are a pure function of (n, n_boot, seed), drawn from ``SeedSequence([seed, n, STREAM])``
  (:func:`stream`; ``STREAM`` keeps them apart from the toolkit's other seeded draws). Statistics on the same
  n units with the same seed share resamples (common random numbers): settings measured on the same pairs
  are compared pair by pair, and a difference's interval is the interval of the difference.
* **n** ≥ 2 units, the arithmetic floor of resampling (one unit resampled is itself); :func:`bootstrap_ci` of
  fewer than 2 finite values gives the value with a NaN interval rather than a zero-width one. The minimum n
  for a *verdict* is :data:`diffstyle_lab.stats.verdicts.MIN_N`, which is the only one there is.
* **Intervals** are percentile intervals at ``level`` in (0, 1), ignoring NaN/inf replicates;
  :func:`recentre` first where the replicates centre elsewhere than the estimate.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Callable

import numpy as np

__all__ = ["STREAM", "stream", "bootstrap_indices", "check_level", "quiet", "replicates", "percentile_interval",
           "recentre", "bootstrap_ci", "paired_statistic", "paired_difference", "spearman", "trend"]

STREAM = 6          # the bootstrap's entry in every SeedSequence([seed, n, STREAM])


def stream(seed: int, n: int, *key: int) -> np.random.Generator:
    """The generator of ``SeedSequence([seed, n, STREAM, *key])``: :func:`bootstrap_indices` draws from
    ``stream(seed, n)``; other draws made along with a bootstrap (e.g. the pairings r_hetero recomputes in
    each resample) from ``stream(seed, n, k)`` with their own k."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(n), STREAM, *map(int, key)]))


def bootstrap_indices(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``n_boot``×``n`` resampling indices (with replacement), a pure function of (n, n_boot, seed)."""
    if n < 2:
        raise ValueError(f"bootstrap needs n ≥ 2 samples, got n = {n}")
    if n_boot < 10:
        raise ValueError(f"n_boot={n_boot}: use at least 10 bootstrap resamples (1000 is usual)")
    return stream(seed, n).integers(0, n, size=(n_boot, n))


def check_level(level) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level={level}: the confidence level must be in (0, 1), e.g. 0.95")


@contextlib.contextmanager
def quiet():
    """Silence numpy's RuntimeWarnings (empty slices, NaN means) inside the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def replicates(stat: Callable[[np.ndarray], np.ndarray], n_boot: int, chunk: int = 100) -> np.ndarray:
    """``stat(rows)`` over all resamples, ``chunk`` at a time: ``rows`` are the resample numbers of a chunk
    (rows of the index matrix the caller holds), and ``stat`` returns one replicate per row (chunk×…)."""
    return np.concatenate([stat(np.arange(k, min(k + chunk, n_boot))) for k in range(0, n_boot, chunk)], axis=0)


def percentile_interval(reps, level: float = 0.95, axis: int | None = 0):
    """(low, high) percentile interval of bootstrap replicates along ``axis`` (None: all of them, as
    floats), ignoring NaN and inf; NaN where no replicate is finite."""
    check_level(level)
    r = np.asarray(reps, dtype=np.float64)
    r = np.where(np.isfinite(r), r, np.nan)
    a = (1 - level) / 2
    with quiet():
        lo, hi = np.nanquantile(r, a, axis=axis), np.nanquantile(r, 1 - a, axis=axis)
    return (float(lo), float(hi)) if axis is None or r.ndim == 1 else (lo, hi)


def recentre(reps, estimate, axis: int = 0) -> np.ndarray:
    """Replicates shifted so that their NaN-ignoring mean along ``axis`` is ``estimate`` (the bias-shifted percentile
    interval), for replicates centred elsewhere: a Fréchet distance of resamples with repeats; a mean over random
    pairings (replicates centre on the expectation over pairings, the estimate carries its own pairing noise)."""
    reps = np.asarray(reps, dtype=np.float64)
    with quiet():
        shift = np.nanmean(reps, axis=axis, keepdims=True) - np.expand_dims(np.asarray(estimate, np.float64), axis)
    return reps - np.where(np.isfinite(shift), shift, 0.0)


def bootstrap_ci(values, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the NaN-ignoring mean and its percentile bootstrap interval (NaN interval with
    fewer than 2 finite values)."""
    check_level(level)
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return float(v.mean()) if len(v) else float("nan"), float("nan"), float("nan")
    lo, hi = percentile_interval(v[bootstrap_indices(len(v), n_boot, seed)].mean(1), level, axis=None)
    return float(v.mean()), lo, hi


def paired_statistic(stat: Callable[..., np.ndarray], *arrays, n_boot: int = 1000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float, float]:
    """(estimate, low, high) of ``stat(*arrays)``: any statistic of per-unit arrays measured on the same n
    units, which reduces along the last axis (e.g. a ratio of means ``lambda a, b: a.mean(-1) / b.mean(-1)``);
    the arrays are resampled together."""
    check_level(level)
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise ValueError(f"paired statistics need one value per unit in every array, on the same units; got shapes "
                         f"{[a.shape for a in arrays]}")
    idx = bootstrap_indices(len(arrays[0]), n_boot, seed)
    with quiet():
        est = stat(*arrays)
        reps = stat(*(a[idx] for a in arrays))
    lo, hi = percentile_interval(reps, level, axis=None)
    return float(est), lo, hi


def paired_difference(a, b, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean(a) − mean(b), low, high) with a and b measured on the same units (resampled together; NaN ignored)."""
    return paired_statistic(lambda x, y: np.nanmean(x, -1) - np.nanmean(y, -1), a, b, n_boot=n_boot, level=level,
                            seed=seed)


def _rank(v):
    """0-based ranks, ties given their average rank."""
    _, inv, count = np.unique(v, return_inverse=True, return_counts=True)
    return (np.cumsum(count) - count + (count - 1) / 2)[inv]


def spearman(x, y) -> float:
    """Spearman's rank correlation of two vectors (pairs with a NaN dropped; NaN below 3 pairs)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3:
        return float("nan")
    rx, ry = _rank(x), _rank(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    d = math.sqrt(float((rx ** 2).sum() * (ry ** 2).sum()))
    return float((rx * ry).sum() / d) if d > 0 else float("nan")


def trend(matrix, x, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Spearman correlation between a swept parameter ``x`` (L levels) and the mean of a per-unit metric
    at each level (``matrix``: L×N, the same N units at every level), with a paired bootstrap interval."""
    check_level(level)
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != len(x):
        raise ValueError(f"trend needs an L×N matrix for L = {len(x)} values of x, got shape {m.shape}")
    idx = bootstrap_indices(m.shape[1], n_boot, seed)
    with quiet():
        est = spearman(x, np.nanmean(m, 1))
        reps = [spearman(x, np.nanmean(m[:, i], 1)) for i in idx]
    lo, hi = percentile_interval(reps, level, axis=None)
    return est, lo, hi
