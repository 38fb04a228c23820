"""Statistics of h and g along the sampling trajectory (method.md §8).

For n samples i at each timestep t the collectors keep only per-sample scalars — ‖h^(i)‖, ‖g^(i)‖,
‖h̃^(i)‖, ‖h̃−h‖²/‖h‖², cosines — never a feature map, so memory grows with n·T·k numbers. From those
the estimators give, per t and with seeded bootstrap confidence intervals:

* r_homo(t)   — Pearson correlation across samples of |h^(i)| and *its own* |g^(i)| (§8);
* r_hetero(t) — the same with |h^(j)| of another sample j ≠ i paired with |g^(i)| (§8), j = π(i) for
  random derangements π (seeded);
* r_alt(t)    — the correlation of |h̃^(i)| and |g^(i)| where h̃ = mix_h(h^(i), h^(j), γ, method) mixes
  in another sample's h (a derangement within each batch) by replace / add / lerp / slerp /
  normalised Slerp (§6, §8). Replacement pairs |h^(j)| with |g^(i)| like r_hetero (the distortion);
  normalised Slerp keeps ‖h̃‖ = ‖h‖ and so r_alt = r_homo exactly;
* r_inject(t) — the correlation of |h̃| and |g| measured *during* real injection runs (the g of the
  injected trajectory), for the method the run used;
* the per-t mean and spread of |h| and |g|, the mean cosine between two samples' h, and how much of
  h's energy an injection changes, ‖h̃−h‖²/‖h‖².

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

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import maths
from .sampling import InjectionConfig, Inversion, StepInfo, ddim_invert, generate, reverse, timestep_grid

__all__ = ["MixSetting", "alt_settings", "NormCollector", "NormTable", "derangement", "pearson", "r_homo",
           "r_hetero", "r_alt", "bootstrap_indices", "correlation_frame", "spread_frame", "summarise",
           "trajectory_cosine", "save_frame", "plot_correlations", "collect", "FRAME_COLUMNS"]

FRAME_COLUMNS = ["t", "statistic", "setting", "value", "ci_low", "ci_high", "n", "model"]
PHASES = {"reverse": ("generate", "inject"), "invert": ("invert",), "generate": ("generate",),
          "inject": ("inject",)}
_TINY = 1e-300


# ---------------------------------------------------------------------------------------------
# Mixing settings for r_alt

@dataclasses.dataclass(frozen=True)
class MixSetting:
    """One way of making h̃ from h^(i) and another sample's h^(j): ``mix_h(h_i, h_j, gamma, method)``."""

    name: str
    method: str
    gamma: float

    def __post_init__(self):
        if self.method not in maths.MIX_METHODS:
            raise ValueError(f"MixSetting {self.name!r}: method={self.method!r}; choose one of {maths.MIX_METHODS}")
        if not (isinstance(self.gamma, (int, float)) and math.isfinite(self.gamma)):
            raise ValueError(f"MixSetting {self.name!r}: gamma={self.gamma!r} must be a finite number")
        if not self.name or any(c in self.name for c in "[],"):
            raise ValueError(f"MixSetting name {self.name!r}: must be non-empty without '[', ']' or ','")


def alt_settings(gamma: float = 0.3) -> tuple[MixSetting, ...]:
    """The five settings of §6/§8: replace (h̃ = h^(j)), add (h̃ = h^(i) + h^(j), the paper's "add"),
    lerp, slerp and normalised Slerp with content share γ (the paper's 0.3 by default)."""
    return (MixSetting("replace", "replace", 1.0), MixSetting("add", "add", 1.0),
            MixSetting("lerp", "lerp", gamma), MixSetting("slerp", "slerp", gamma),
            MixSetting("normalised_slerp", "normalised_slerp", gamma))


# ---------------------------------------------------------------------------------------------
# Derangements

def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation π of 0…n−1 with π(i) ≠ i for every i (rejection sampling)."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    while True:
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            return p


def _batch_rng(seed: int, start: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(start), 7]))


# ---------------------------------------------------------------------------------------------
# The collector (a sampler callback)

class NormCollector:
    """Sampler callback that records per-sample, per-timestep scalars of h and g (method.md §8).

    Per model evaluation it reduces the B×C×H×W tensors of :class:`~diffstyle_lab.sampling.StepInfo`
    to B numbers per quantity and drops them; only float64 numpy arrays are kept, n·T·k numbers in
    all (``numel()``), with k = ``len(quantities)``:

    * ``h``, ``g`` — ‖h^(i)‖ and ‖g^(i)‖, per-sample L2 over C·H·W (``g`` is NaN when the sampler
      could not read it);
    * ``cos_pair`` — cos(h^(i), h^(π(i))) with π a seeded random derangement of the batch;
    * for each :class:`MixSetting` s: ``h_tilde[s]`` = ‖mix_h(h^(i), h^(π(i)), γ, method)‖ and
      ``energy[s]`` = ‖h̃−h‖²/‖h‖² (the mixing is done in float64, so normalised Slerp gives
      ‖h̃‖ = ‖h‖ to rounding);
    * with ``injection=True``: ``h_tilde``, ``energy`` and ``cos_content`` from the sampler's own
      h̃ (‖h̃‖, ‖h̃−h‖²/‖h‖², cos(h, h^content)), NaN outside the editing interval.

    ``phase`` picks which model evaluations count: "reverse" (generation and injection, default),
    "invert", "generate" or "inject". A batch ends when :meth:`end_batch` is called, when a
    timestep repeats, or when the batch size changes; every batch must visit the same timesteps.
    Batches of one sample get NaN for the pair quantities (no derangement exists).
    """

    def __init__(self, settings: Sequence[MixSetting] | None = None, *, injection: bool = False,
                 phase: str = "reverse", seed: int = 0, start: int = 0):
        if phase not in PHASES:
            raise ValueError(f"phase={phase!r}; choose one of {tuple(PHASES)}")
        self.settings = tuple(alt_settings() if settings is None else settings)
        names = [s.name for s in self.settings]
        if len(set(names)) != len(names):
            raise ValueError(f"setting names repeat: {names}")
        self.injection = bool(injection)
        self.phase = phase
        self.seed = int(seed)
        self.quantities = tuple(["h", "g", "cos_pair"] + [f"h_tilde[{s.name}]" for s in self.settings]
                                + [f"energy[{s.name}]" for s in self.settings]
                                + (["h_tilde", "energy", "cos_content"] if self.injection else []))
        self._start = int(start)        # sample index of the current batch's first sample
        self._done: dict[str, list[np.ndarray]] = {q: [] for q in self.quantities}
        self._ts: np.ndarray | None = None
        self._cur: dict[int, dict[str, np.ndarray]] = {}
        self._cur_b = 0
        self._perm: np.ndarray | None = None

    # -- recording ------------------------------------------------------------------------------
    def __call__(self, info: StepInfo) -> None:
        if info.phase not in PHASES[self.phase] or info.h is None:
            return
        h = info.h.detach().flatten(1).to("cpu", torch.float64)
        b = h.shape[0]
        if self._cur and (info.t in self._cur or b != self._cur_b):
            self.end_batch()
        if not self._cur:
            self._cur_b = b
            self._perm = derangement(b, _batch_rng(self.seed, self._start)) if b >= 2 else None
        nan = np.full(b, np.nan)
        hn2 = (h * h).sum(1)
        v = {"h": hn2.sqrt().numpy()}
        v["g"] = nan if info.g is None else info.g.detach().flatten(1).to("cpu", torch.float64).norm(dim=1).numpy()
        if self._perm is None:
            v["cos_pair"] = nan
            for s in self.settings:
                v[f"h_tilde[{s.name}]"] = v[f"energy[{s.name}]"] = nan
        else:
            hp = h[torch.from_numpy(self._perm)]
            v["cos_pair"] = _cos(h, hp)
            for s in self.settings:
                mixed = maths.mix_h(h, hp, s.gamma, s.method)
                v[f"h_tilde[{s.name}]"] = mixed.norm(dim=1).numpy()
                v[f"energy[{s.name}]"] = (((mixed - h) ** 2).sum(1) / hn2.clamp_min(_TINY)).numpy()
        if self.injection:
            if info.h_tilde is None:
                v["h_tilde"] = v["energy"] = v["cos_content"] = nan
            else:
                ht = info.h_tilde.detach().flatten(1).to("cpu", torch.float64)
                v["h_tilde"] = ht.norm(dim=1).numpy()
                v["energy"] = (((ht - h) ** 2).sum(1) / hn2.clamp_min(_TINY)).numpy()
                v["cos_content"] = nan if info.h_content is None else _cos(
                    h, info.h_content.detach().flatten(1).to("cpu", torch.float64).expand_as(h))
        self._cur[int(info.t)] = {q: np.asarray(v[q], dtype=np.float64).copy() for q in self.quantities}

    def end_batch(self) -> None:
        """Close the current batch: its per-step values become B×T arrays (columns by ascending t)."""
        if not self._cur:
            return
        ts = np.array(sorted(self._cur))
        if self._ts is None:
            self._ts = ts
        elif not np.array_equal(ts, self._ts):
            raise ValueError(f"batch starting at sample {self._start} visited {len(ts)} timesteps "
                             f"{_short(ts)} but the first batch visited {len(self._ts)} {_short(self._ts)}; "
                             "use one grid (steps, spacing) for every batch of a collector")
        for q in self.quantities:
            self._done[q].append(np.stack([self._cur[t][q] for t in ts], axis=1))
        self._start += self._cur_b
        self._cur, self._perm = {}, None

    # -- results --------------------------------------------------------------------------------
    def numel(self) -> int:
        """How many numbers the collector holds (finished and current batches): n·T·k."""
        done = sum(a.size for arrs in self._done.values() for a in arrs)
        return done + sum(a.size for step in self._cur.values() for a in step.values())

    def table(self, model: str = "", source: str = "") -> "NormTable":
        """All finished batches (the current one is closed first) as a :class:`NormTable`."""
        self.end_batch()
        if self._ts is None:
            raise ValueError("the collector has recorded nothing: pass it to a sampler as callbacks=[collector] "
                             f"(it listens to phase {self.phase!r})")
        vals = {q: np.concatenate(a, axis=0) for q, a in self._done.items()}
        return NormTable(self._ts.copy(), vals, model=model, source=source or self.phase,
                         settings=self.settings)


def _cos(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(_TINY)).numpy()


def _short(ts) -> str:
    ts = list(map(int, ts))
    return str(ts) if len(ts) <= 6 else f"[{ts[0]}, {ts[1]}, …, {ts[-1]}]"


# ---------------------------------------------------------------------------------------------
# Tables of scalars

@dataclasses.dataclass
class NormTable:
    """Per-sample, per-timestep scalars: ``values[q]`` is n×T for the ascending timesteps ``ts``."""

    ts: np.ndarray
    values: dict[str, np.ndarray]
    model: str = ""
    source: str = ""
    settings: tuple[MixSetting, ...] = ()
    inject_method: str | None = None

    def __post_init__(self):
        self.ts = np.asarray(self.ts, dtype=np.int64)
        shapes = {q: np.shape(v) for q, v in self.values.items()}
        for q, s in shapes.items():
            if len(s) != 2 or s[1] != len(self.ts):
                raise ValueError(f"NormTable: values[{q!r}] has shape {s}, expected n×{len(self.ts)} "
                                 "(one column per t)")
        if len({s[0] for s in shapes.values()}) > 1:
            raise ValueError(f"NormTable: quantities have different sample counts: {shapes}")

    @property
    def n(self) -> int:
        return next(iter(self.values.values())).shape[0] if self.values else 0

    def __getitem__(self, q: str) -> np.ndarray:
        if q not in self.values:
            raise KeyError(f"{q!r} was not recorded; the table has {sorted(self.values)}")
        return self.values[q]

    def numel(self) -> int:
        return sum(v.size for v in self.values.values())

    @staticmethod
    def concat(parts: Sequence["NormTable"]) -> "NormTable":
        if not parts:
            raise ValueError("no tables to concatenate")
        a = parts[0]
        for p in parts[1:]:
            if not np.array_equal(p.ts, a.ts) or set(p.values) != set(a.values):
                raise ValueError("tables to concatenate must share timesteps and quantities")
        return NormTable(a.ts, {q: np.concatenate([p.values[q] for p in parts]) for q in a.values},
                         a.model, a.source, a.settings, a.inject_method)

    def save(self, path) -> None:
        """Write an ``.npz`` (atomically: a temporary file renamed into place)."""
        path = Path(path)
        meta = {"model": self.model, "source": self.source, "inject_method": self.inject_method,
                "settings": [dataclasses.asdict(s) for s in self.settings]}
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, ts=self.ts, meta=json.dumps(meta), **{"q:" + q: v for q, v in self.values.items()})
        os.replace(tmp, path)

    @staticmethod
    def load(path) -> "NormTable":
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            vals = {k[2:]: z[k] for k in z.files if k.startswith("q:")}
            return NormTable(z["ts"], vals, meta["model"], meta["source"],
                             tuple(MixSetting(**s) for s in meta["settings"]), meta.get("inject_method"))


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
    """r_homo (method.md §8): Pearson across samples of |h^(i)| and its own |g^(i)|, per column t."""
    return pearson(h_norm, g_norm)


def r_hetero(h_norm, g_norm, *, n_perm: int = 100, seed: int = 0) -> np.ndarray:
    """r_hetero (method.md §8): Pearson of |h^(π(i))| and |g^(i)|, π a random derangement (j ≠ i).

    The derangements are drawn from ``numpy.random.default_rng(seed)``; the result is the mean over
    ``n_perm`` of them (so it does not hinge on one pairing). Note that averaged over *all* pairings
    i ≠ j the cross-covariance is exactly −cov_homo/(n−1), so this mean is ≈ −r_homo/(n−1): near 0
    by construction for independent samples. One random pairing (the paper's r_hetero, and what
    replacement does) scatters around it with s.d. ≈ 1/√n; :func:`correlation_frame`'s interval
    for r_hetero is the range of such single pairings.
    """
    h, g = _check_pair(h_norm, g_norm, "h_norm and g_norm")
    if n_perm < 1:
        raise ValueError(f"n_perm={n_perm}: need at least one derangement")
    rng = np.random.default_rng(seed)
    return np.mean([_pearson_axis(h[derangement(len(h), rng)], g, 0) for _ in range(n_perm)], axis=0)


def r_alt(h_tilde_norm, g_norm) -> np.ndarray:
    """r_alt (method.md §8): Pearson of |h̃^(i)| and |g^(i)|, h̃ = mix_h(h^(i), h^(j), γ, method)."""
    return pearson(h_tilde_norm, g_norm)


def bootstrap_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """``n_boot``×n resampling indices (with replacement), seeded; shared by all statistics of a
    table so that their intervals use the same resamples (common random numbers)."""
    if n < 3:
        raise ValueError(f"bootstrap needs n ≥ 3 samples, got {n}")
    if n_boot < 10:
        raise ValueError(f"n_boot={n_boot}: use at least 10 bootstrap resamples (1000 is usual)")
    return np.random.default_rng(np.random.SeedSequence([int(seed), 11])).integers(0, n, size=(n_boot, n))


def _boot(stat: Callable[[np.ndarray], np.ndarray], n_boot: int, level: float, chunk: int = 100):
    """Percentile interval of ``stat(rows)`` over the bootstrap resamples; ``rows`` selects a chunk of
    the resamples (rows of the index matrices the caller holds), and ``stat`` returns chunk×T."""
    reps = np.concatenate([stat(np.arange(k, min(k + chunk, n_boot))) for k in range(0, n_boot, chunk)], axis=0)
    a = (1 - level) / 2
    with _warnings_off():
        return np.nanquantile(reps, a, axis=0), np.nanquantile(reps, 1 - a, axis=0)


class _warnings_off:
    def __enter__(self):
        import warnings
        self._c = warnings.catch_warnings()
        self._c.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *a):
        return self._c.__exit__(*a)


def _check_level(level):
    if not 0 < level < 1:
        raise ValueError(f"level={level}: the confidence level must be in (0, 1), e.g. 0.95")


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
    derangements (:func:`r_hetero`); each of its resamples uses a fresh seeded derangement, so its
    interval covers the r of *one* random pairing (resampling and pairing noise, ≈ ±2.8/√n at
    r = 0), the scale on which r_alt(replace) — one fixed pairing — is to be read.
    """
    _check_level(level)
    h, g = table["h"], table["g"]
    n = table.n
    idx = bootstrap_indices(n, n_boot, seed)
    model = table.model if model is None else model
    parts = []
    lo, hi = _boot(lambda r: _pearson_axis(h[idx[r]], g[idx[r]], 1), n_boot, level)
    parts.append(_rows(table.ts, "r_homo", "none", r_homo(h, g), lo, hi, n, model))
    # r_hetero: resample samples i, pair each with π_b(i) for a fresh derangement π_b per resample
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 13]))
    partner = np.take_along_axis(np.stack([derangement(n, rng) for _ in range(n_boot)]), idx, 1)
    lo, hi = _boot(lambda r: _pearson_axis(h[partner[r]], g[idx[r]], 1), n_boot, level)
    parts.append(_rows(table.ts, "r_hetero", "none", r_hetero(h, g, n_perm=n_perm, seed=seed), lo, hi, n, model))
    for s in table.settings:
        ht = table[f"h_tilde[{s.name}]"]
        lo, hi = _boot(lambda r, ht=ht: _pearson_axis(ht[idx[r]], g[idx[r]], 1), n_boot, level)
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
    lo, hi = _boot(lambda r: _pearson_axis(x[idx[r]], g2[idx[r]], 1), len(idx), level)
    return _rows(ts, statistic, setting, pearson(x, g2), lo, hi, table.n, model)


def spread_frame(table: NormTable, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                 model: str | None = None):
    """Per-t mean and standard deviation of |h| and |g| (``mean_h``, ``sd_h``, ``mean_g``, ``sd_g``),
    the mean cosine between two samples' h (``cos_pair``), the mean share of h's energy each mixing
    setting changes, ‖h̃−h‖²/‖h‖² (``energy``, per setting), and for injection runs the measured
    ``energy`` (setting ``inject:<method>``) and the mean cos(h, h^content) (``cos_content``).
    Bootstrap percentile intervals as in :func:`correlation_frame`.
    """
    _check_level(level)
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
        lo, hi = _boot(lambda r: fn(x[idx[r]], 1), n_boot, level)
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


# ---------------------------------------------------------------------------------------------
# Streaming over n samples: batches, progress, resume

SOURCES = ("generate", "invert", "inject")


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """[start, stop) of each batch; a final batch of one sample is merged into the one before it
    (a derangement needs two samples)."""
    if n < 3:
        raise ValueError(f"n={n}: the statistics need at least 3 samples")
    if batch_size < 2:
        raise ValueError(f"batch_size={batch_size}: batches need at least 2 samples (pairs are drawn within a batch)")
    b = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if b[-1][1] - b[-1][0] == 1:
        b[-2:] = [(b[-2][0], n)]
    return b


def noise(model, start: int, stop: int, seed: int = 0) -> torch.Tensor:
    """x_T for samples start…stop−1: each sample's Gaussian noise is seeded by (seed, its index), so
    a sample's x_T does not depend on the batch it falls in."""
    shape = (model.in_channels, model.sample_size, model.sample_size)
    xs = []
    for i in range(start, stop):
        s = int(np.random.SeedSequence([int(seed), int(i), 3]).generate_state(1, np.uint64)[0] % (2 ** 63))
        xs.append(torch.randn(shape, generator=torch.Generator().manual_seed(s)))
    return torch.stack(xs)


class _HTrajectory:
    """Temporary per-batch recorder of h (feature maps) to serve as h^content; discarded after the batch."""

    def __init__(self):
        self.h, self.ts = {}, []

    def __call__(self, info):
        if info.phase == "generate":
            self.h[int(info.t)] = info.h.detach().clone()

    def inversion(self, x_T, spacing):
        ts = sorted(self.h)
        return Inversion(x_T, torch.stack([self.h[t] for t in ts], 1), ts, ts, spacing)


def collect(model, n: int | None = None, *, source: str = "generate", steps: int = 50, spacing: str = "authors",
            batch_size: int = 16, seed: int = 0, settings: Sequence[MixSetting] | None = None, gamma: float = 0.3,
            images=None, config: InjectionConfig | None = None, out_dir=None, progress: bool = True,
            callbacks: Sequence[Callable] = ()) -> NormTable:
    """Run the sampler over n samples in batches with a :class:`NormCollector` and return the table.

    ``source``:

    * ``"generate"`` — plain DDIM generation (η = 0) from x_T ~ N(0, I), seeded per sample (:func:`noise`);
    * ``"invert"`` — DDIM inversion of ``images`` (an N×C×H×W tensor in [−1, 1], or a function
      ``(start, stop) -> tensor`` with ``n`` given);
    * ``"inject"`` — content injection with ``config`` (default :class:`InjectionConfig`, its
      ``steps``/``spacing`` win): style x_T of sample i, content h^content of another sample
      π(i) in the batch (the same seeded derangement the static mixings use), recorded in a plain
      generation from that sample's x_T (or, with
      ``images``, the DDIM inversions of the images); the collector also records the sampler's
      own h̃ (``r_inject``, measured ``energy``, ``cos_content``).

    ``settings`` (default :func:`alt_settings` (gamma)) are the static mixings for r_alt.

    With ``out_dir``, each finished batch is written to ``out_dir/batch_<start>_<stop>.npz`` and a
    rerun with the same arguments skips finished batches (so an interrupted run resumes); the run's
    parameters are kept in ``out_dir/meta.json`` and a rerun with others is refused. ``callbacks``
    are passed on to the sampler (after the collector).
    """
    if source not in SOURCES:
        raise ValueError(f"source={source!r}; choose one of {SOURCES}")
    settings = tuple(alt_settings(gamma) if settings is None else settings)
    if images is not None and not callable(images):
        if not torch.is_tensor(images) or images.dim() != 4:
            raise ValueError("images: pass an N×C×H×W tensor in [-1, 1] or a function (start, stop) -> tensor")
        if n is not None and n > len(images):
            raise ValueError(f"n={n} but only {len(images)} images were given")
        n = len(images) if n is None else n
    if n is None:
        raise ValueError("n: say how many samples to collect")
    if source == "invert" and images is None:
        raise ValueError("source='invert' needs images to invert")
    cfg = None
    if source == "inject":
        cfg = dataclasses.replace(config or InjectionConfig(steps=steps, spacing=spacing)).validate(model.T)
        steps, spacing = cfg.steps, cfg.spacing
    timestep_grid(steps, spacing, model.T)
    bounds = batch_bounds(n, batch_size)
    label = model.source
    out = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"model": label, "weights_sha256": model.weights_hash, "source": source, "steps": steps,
                "spacing": spacing, "seed": seed, "batch_size": batch_size,
                "settings": [dataclasses.asdict(s) for s in settings],
                "injection": None if cfg is None else cfg.to_dict(),
                "images": None if images is None else ("function" if callable(images) else _tensor_hash(images))}
        mp = out / "meta.json"
        if mp.exists():
            old = json.loads(mp.read_text())
            diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
            if diff:
                raise ValueError(f"{out} holds a run with other parameters ({', '.join(diff)} differ); "
                                 "use another out_dir or delete that folder")
        else:
            mp.write_text(json.dumps(meta, indent=1))
    parts = []
    bar = tqdm(total=n, desc=f"stats ({source})", unit="sample", disable=not progress)
    for start, stop in bounds:
        f = None if out is None else out / f"batch_{start:07d}_{stop:07d}.npz"
        if f is not None and f.exists():
            parts.append(NormTable.load(f))
            bar.update(stop - start)
            continue
        col = NormCollector(settings, injection=source == "inject",
                            phase="invert" if source == "invert" else "reverse", seed=seed, start=start)
        cbs = [col, *callbacks]
        if source == "generate":
            generate(model, noise(model, start, stop, seed), steps, spacing, t_boost=0, progress=False, callbacks=cbs)
        elif source == "invert":
            x0 = images(start, stop) if callable(images) else images[start:stop]
            ddim_invert(model, x0, steps, spacing, progress=False, callbacks=cbs)
        else:
            perm = torch.from_numpy(derangement(stop - start, _batch_rng(seed, start)))
            if images is not None:
                x0 = images(start, stop) if callable(images) else images[start:stop]
                inv = ddim_invert(model, x0, steps, spacing, progress=False)
                style_xT, content = inv.x_T, inv.select(perm)
            else:
                style_xT = noise(model, start, stop, seed)
                rec = _HTrajectory()
                generate(model, style_xT, steps, spacing, t_boost=0, progress=False, callbacks=[rec])
                content = rec.inversion(style_xT, spacing).select(perm)
                del rec
            reverse(model, style_xT, content, cfg, progress=False, callbacks=cbs)
        part = col.table(model=label, source=source)
        part.inject_method = None if cfg is None else cfg.method
        if f is not None:
            part.save(f)
        parts.append(part)
        bar.update(stop - start)
    bar.close()
    return NormTable.concat(parts)


def _tensor_hash(x: torch.Tensor) -> str:
    import hashlib
    return hashlib.sha256(x.detach().cpu().contiguous().float().numpy().tobytes()).hexdigest()[:16]
