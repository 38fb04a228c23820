"""The one verdict engine: measured numbers → bootstrap interval → verdict word → sentence.

Every place that turns numbers into a verdict goes through here: the evaluation page's claims
(:mod:`diffstyle_lab.evaluate.claims`), the ground-truth summary a model folder ships
(:mod:`diffstyle_lab.faces.groundtruth_summary`) and the notebooks' sentences and boxes
(:mod:`diffstyle_lab.lab.claims`, :mod:`diffstyle_lab.lab.boxes`).

* **Intervals** (:func:`mean_interval`, :func:`paired_interval`, :func:`difference_interval`,
  :func:`trend_interval`, :func:`replicate_interval`) are the seeded percentile bootstrap of
  :mod:`diffstyle_lab.stats.bootstrap`, given only from :data:`MIN_N` units on; below it the estimate
  comes with a NaN interval, which every verdict reads as "no interval".
* **Verdicts** read one thing, which side of a null value the interval lies on (:func:`side`): an
  effect word for a difference (:func:`effect`), a claim's ``holds`` / ``does not hold`` /
  ``inconclusive`` (:func:`claim_verdict`), two intervals that do not overlap (:func:`overlap_effect`).
* **Sentences** write an interval one way (:func:`interval_text`, :func:`ci_text`) and say when n
  is too small for one (:func:`too_few`, :func:`rough`).
"""

from __future__ import annotations

import math

import numpy as np

from .bootstrap import (bootstrap_ci, check_level, paired_difference, paired_statistic, percentile_interval, quiet,
                        spearman, trend)

__all__ = ["MIN_N", "HIGHER", "LOWER", "NO_EFFECT", "NO_INTERVAL", "OVERLAP", "CLAIM_VERDICTS", "NOT_MEASURED",
           "enough", "mean_interval", "paired_interval", "difference_interval", "trend_interval", "replicate_interval",
           "side", "effect", "overlap_effect", "judged", "claim_verdict", "claim_rule", "as_triple", "compare",
           "interval_text", "ci_text", "too_few", "rough", "gap_sentence"]

# The one minimum sample size for a verdict. With n units a bootstrap has only C(2n−1, n) distinct
# resamples — 3 at n = 2, 10 at n = 3, 35 at n = 4 — so below 4 a 95 % percentile interval is a few
# sample values (its ends sit at the sample's extremes) and no verdict should rest on it. Resampling
# itself runs from 2 units (stats.bootstrap); below MIN_N the engine gives the estimate and no interval.
MIN_N = 4

HIGHER, LOWER, NO_EFFECT, NO_INTERVAL = "higher", "lower", "no effect detected", "no interval (n too small)"
OVERLAP = "no difference detected (intervals overlap)"
HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED = "holds", "does not hold", "inconclusive", "not measured"
CLAIM_VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED)
NAN = float("nan")


# -- intervals -------------------------------------------------------------------------------------------------------
def enough(n: int, min_n: int = MIN_N) -> bool:
    """Whether ``n`` units carry an interval: n ≥ ``min_n`` (and never below the 2 that resampling needs)."""
    return int(n) >= max(int(min_n), 2)


def mean_interval(values, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                  min_n: int = MIN_N) -> tuple[float, float, float]:
    """(mean, low, high): the mean of the finite values and its percentile bootstrap interval
    (:func:`~diffstyle_lab.stats.bootstrap.bootstrap_ci`); a NaN interval below ``min_n`` finite values."""
    check_level(level)
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if not enough(len(v), min_n):
        return (float(v.mean()) if len(v) else NAN), NAN, NAN
    return bootstrap_ci(v, n_boot, level, seed)


def paired_interval(stat, *arrays, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                    min_n: int = MIN_N) -> tuple[float, float, float]:
    """(estimate, low, high) of ``stat(*arrays)`` over per-unit arrays measured on the same units, resampled
    together (:func:`~diffstyle_lab.stats.bootstrap.paired_statistic`; e.g. the gap closed, a ratio of
    means); a NaN interval below ``min_n`` units finite in every array."""
    check_level(level)
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    if len({a.shape for a in arrays}) == 1 and arrays[0].ndim == 1:     # else paired_statistic says what is wrong
        n = int(np.logical_and.reduce([np.isfinite(a) for a in arrays]).sum())
        if not enough(n, min_n):
            with quiet():
                return float(stat(*arrays)), NAN, NAN
    return paired_statistic(stat, *arrays, n_boot=n_boot, level=level, seed=seed)


def difference_interval(a, b, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                        min_n: int = MIN_N) -> tuple[float, float, float]:
    """(mean(a) − mean(b), low, high) with a and b measured on the same units (a paired bootstrap,
    :func:`~diffstyle_lab.stats.bootstrap.paired_difference`); below ``min_n`` pairs finite in both: the
    mean of the per-pair differences and no interval."""
    check_level(level)
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"a, b: per-unit values must be on the same units (one value per unit in each), got "
                         f"{a.size} and {b.size}")
    n = int(np.isfinite(a - b).sum())
    if not enough(n, min_n):
        with quiet():
            return (float(np.nanmean(a - b)) if n else NAN), NAN, NAN
    return paired_difference(a, b, n_boot=n_boot, level=level, seed=seed)


def trend_interval(matrix, x, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                   min_n: int = MIN_N) -> tuple[float, float, float]:
    """(ρ, low, high): Spearman's ρ between ``x`` and the mean of a per-unit metric at each of its levels
    (``matrix``: L×N, the same N units at every level) with a paired bootstrap interval
    (:func:`~diffstyle_lab.stats.bootstrap.trend`); no interval below ``min_n`` units."""
    check_level(level)
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim == 2 and m.shape[0] == len(x) and not enough(m.shape[1], min_n):
        with quiet():
            return spearman(x, np.nanmean(m, 1)), NAN, NAN
    return trend(m, x, n_boot, level, seed)


def replicate_interval(estimate: float, replicates, n: int, level: float = 0.95,
                       min_n: int = MIN_N) -> tuple[float, float, float]:
    """(estimate, low, high) from bootstrap replicates computed elsewhere (a set-level Fréchet distance,
    or a difference of two of them on the same resamples), over ``n`` units; no interval below ``min_n``."""
    check_level(level)
    if not enough(n, min_n):
        return float(estimate), NAN, NAN
    lo, hi = percentile_interval(replicates, level, axis=None)
    return float(estimate), lo, hi


# -- verdicts --------------------------------------------------------------------------------------------------------
def side(lo: float, hi: float, null: float = 0.0) -> int | None:
    """Which side of ``null`` the interval [lo, hi] lies on: +1 above, −1 below, 0 when it includes ``null``,
    None without an interval. The one rule every verdict below reads."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return 1 if lo > null else -1 if hi < null else 0


def effect(lo: float, hi: float) -> str:
    """``"higher"`` / ``"lower"`` when the interval of a difference excludes 0, ``"no effect detected"``
    when it includes 0, ``"no interval (n too small)"`` without one."""
    return {1: HIGHER, -1: LOWER, 0: NO_EFFECT, None: NO_INTERVAL}[side(lo, hi)]


def overlap_effect(a: tuple, b: tuple) -> str:
    """Two ``(value, low, high)`` triples without per-unit values (so no paired test): ``"higher"`` /
    ``"lower"`` only where the intervals do not overlap."""
    if not all(math.isfinite(v) for v in tuple(a) + tuple(b)):
        return NO_INTERVAL
    return HIGHER if a[1] > b[2] else LOWER if a[2] < b[1] else OVERLAP


def judged(word: str, better: str | None) -> str:
    """An effect word marked ``(better)`` / ``(worse)`` when ``better`` (``"higher"`` or ``"lower"``) says
    which direction is the good one."""
    if better and word in (HIGHER, LOWER):
        return word + (" (better)" if word == better else " (worse)")
    return word


def claim_verdict(lo: float, hi: float, null: float, direction: int) -> str:
    """A claim expecting its statistic on the ``direction`` side of ``null`` (+1 above, −1 below):
    ``holds`` when the interval lies there, ``does not hold`` when it lies on the other side,
    ``inconclusive`` when it includes ``null`` or there is no interval."""
    s = side(lo, hi, null)
    if not s or not direction:
        return INCONCLUSIVE
    return HOLDS if s == (1 if direction > 0 else -1) else FAILS


def claim_rule(level: float) -> str:
    """The sentence that says how :func:`claim_verdict` decides, for a page."""
    return (f"A claim **{HOLDS}** when the {level:.0%} interval of its statistic lies entirely on the paper's side "
            f"of the null, **{FAILS}** when it lies entirely on the other side, and is **{INCONCLUSIVE}** "
            "when it straddles it.")


# -- the comparison the notebooks and the model comparison use -------------------------------------------------------
def as_triple(x) -> tuple[float, float, float] | None:
    """(value, low, high) from a (v, lo, hi) *tuple* (a list or array is per-unit values), or None."""
    if isinstance(x, tuple) and len(x) == 3 and all(isinstance(v, (int, float)) or v is None for v in x):
        return tuple(NAN if v is None else float(v) for v in x)
    return None


def compare(result, reference, n_boot: int = 1000, seed: int = 0, level: float = 0.95, min_n: int = MIN_N) -> dict:
    """``result`` against ``reference``: each per-unit values (the same units, in the same order: a
    paired bootstrap of the difference of means, :func:`difference_interval`), a ``(value, low, high)``
    triple, or (reference only) a number. Returns ``{"value", "ref", "diff": (d, lo, hi), "effect", "n",
    "paired"}``; two triples are compared by their intervals (:func:`overlap_effect`), a triple against a
    constant by the shifted interval."""
    tr, tf = as_triple(result), as_triple(reference)
    if tr is None and tf is None:
        a, b = np.asarray(result, dtype=float).ravel(), np.asarray(reference, dtype=float).ravel()
        d = difference_interval(a, b, n_boot, level, seed, min_n)
        n = int(np.isfinite(a - b).sum())
        if enough(n, min_n):
            va, vb = (mean_interval(v, n_boot, level, seed, min_n) for v in (a, b))
        else:
            with quiet():
                va, vb = (float(np.nanmean(a)), NAN, NAN), (float(np.nanmean(b)), NAN, NAN)
        return {"value": va, "ref": vb, "diff": d, "effect": effect(d[1], d[2]), "n": n, "paired": True}
    if tr is None:
        tr = mean_interval(result, n_boot, level, seed, min_n)
    if tf is None:
        arr = np.asarray(reference, dtype=float).ravel()
        tf = (float(arr[0]),) * 3 if arr.size == 1 else mean_interval(arr, n_boot, level, seed, min_n)
    if tf[1] == tf[2] == tf[0]:            # a constant reference (e.g. 0 for "doing nothing")
        d = (tr[0] - tf[0], tr[1] - tf[0], tr[2] - tf[0])
        eff = effect(d[1], d[2])
    else:
        d, eff = (tr[0] - tf[0], NAN, NAN), overlap_effect(tr, tf)
    return {"value": tr, "ref": tf, "diff": d, "effect": eff, "n": None, "paired": False}


# -- sentences -------------------------------------------------------------------------------------------------------
def _fmt(v: float, share: bool, digits: int, sign: bool = False) -> str:
    if not np.isfinite(v):
        return "n/a"
    if share:
        return f"{100 * v:+.{max(digits - 2, 0)}f} %" if sign else f"{100 * v:.{max(digits - 2, 0)}f} %"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def interval_text(v: float, lo: float, hi: float, share: bool = False, digits: int = 3, sign: bool = False) -> str:
    """``"0.15 [0.12, 0.18]"`` (or ``"15 % [12 %, 18 %]"`` with ``share``); no brackets without an interval."""
    s = _fmt(v, share, digits, sign)
    if np.isfinite(lo) and np.isfinite(hi):
        s += f" [{_fmt(lo, share, digits, sign)}, {_fmt(hi, share, digits, sign)}]"
    return s


def ci_text(lo: float, hi: float, level: float, spec: str = ".3g") -> str:
    """``"95% CI [0.12, 0.18]"``: an interval with its level, each end formatted with ``spec``
    (e.g. ``"+.2f"``), as the evaluation page writes it."""
    return f"{level:.0%} CI [{lo:{spec}}, {hi:{spec}}]"


def too_few(n: int, min_n: int = MIN_N) -> str | None:
    """None when ``n`` units carry an interval (:func:`enough`), else what a verdict without one says:
    ``"n = 3 pairs: too few for an interval (at least 4)"``."""
    if enough(n, min_n):
        return None
    return f"n = {n} pair{'s' if n != 1 else ''}: too few for an interval (at least {min_n})"


def rough(n: int) -> str:
    """A caveat for an interval on few units (2 ≤ n ≤ 8: a bootstrap of n units has only C(2n−1, n) distinct
    resamples), else ``""``."""
    return f" (with n = {n} a bootstrap has only {math.comb(2 * n - 1, n)} distinct resamples: a rough interval)" \
        if 2 <= n <= 8 else ""


def gap_sentence(triple, label: str = "content injection") -> str:
    """``"content injection closes 15 % [12 %, 18 %] of the gap to the ideal"`` from a gap-closed share
    ``(value, low, high)``, with "— no effect detected" when the interval includes 0 (γ = 0, doing
    nothing, closes 0 by definition) and "(no interval)" without one."""
    v, lo, hi = as_triple(tuple(triple)) or (NAN,) * 3
    word = effect(lo, hi)
    tail = f" — {NO_EFFECT}" if word == NO_EFFECT else (" (no interval)" if word == NO_INTERVAL else "")
    return f"{label} closes {interval_text(v, lo, hi, share=True, digits=2)} of the gap to the ideal{tail}"
