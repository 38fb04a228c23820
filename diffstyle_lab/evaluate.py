"""Evaluation of content injection (issue 6): metrics, resumable sweeps, bootstrap intervals, the
paper's claims checked one by one, and scale-out on Dask.

The paper (method.md §9) measures content with ArcFace identity similarity, style with a VGG Gram
loss and quality with FID, against γ, t_edit and over an ablation table. Those networks are not
reachable on machines without a model hub, so this module measures with what runs here — and runs
the paper's networks too where their weights are on disk (:mod:`diffstyle_lab.metrics`,
``PAPER_WEIGHTS``):

* **content kept** — the factor classifier's content heads (family, hair, eyes, mouth) on the result
  agree with the *content* image's ground truth (only heads where content and style differ count);
* **style taken** — the predicted background/skin/hair colours and the measured border colour of the
  result are nearer (RGB) to the *style* image's than to the content image's;
* generic image metrics for any data: pixel RMSE, SSIM, colour statistics, a Gram-matrix distance on the
  classifier's conv activations, feature cosine, edge correlation — each against content and style;
* **quality** — Fréchet distance of the classifier's features between results and real faces.

Typical use::

    import diffstyle_lab as dl
    from diffstyle_lab import evaluate as ev
    model = dl.load_default_model()
    pairs = ev.PairSet.from_avatars(100, seed=70_000)
    run = ev.evaluate(model, ev.default_plan(), pairs, "runs/evaluation/faces32", steps=50)
    run.tables["pairs"], run.tables["sets"], run.tables["timing"]
    ev.export(run, "docs/results"); ev.build_page("docs/results", "docs/results.md")

Every setting's per-pair results are one CSV block in ``<out_dir>/blocks/`` (plus a JSON with its
set-level numbers and timings, written last); a rerun skips the settings whose blocks exist. Each image
is inverted once (``ddim_invert``), and the ``Inversion`` objects are reused by every setting.
``scheduler="local"`` (a Dask ``LocalCluster``) or a scheduler address runs the settings on Dask
workers with the same code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import metrics
from .sampling import InjectionConfig, ddim_invert, reverse

__all__ = ["Setting", "PlanEntry", "gamma_sweep", "t_edit_sweep", "omega_sweep", "ablation", "default_plan",
           "quick_plan", "PairSet", "pair_metrics", "bootstrap_ci", "bootstrap_indices", "paired_difference",
           "trend", "evaluate", "Evaluation", "load_tables", "summarise", "assess_claims", "CLAIMS", "export",
           "build_page", "plot_sweeps", "scaling_demo", "CONTENT_HEADS", "STYLE_HEADS", "SUMMARY_METRICS",
           "METRICS_VERSION", "setting_ids", "FrechetReference", "frechet_with_ci", "load_exported", "Claim",
           "model_payload", "classifier_payload"]

CONTENT_HEADS = ("family", "hair", "eyes", "mouth")
STYLE_HEADS = ("background", "skin", "hair_colour")
METRICS_VERSION = 2           # bump when a metric's definition changes: old blocks are then recomputed

GAMMAS = tuple(round(0.1 * k, 1) for k in range(11))
T_EDITS = (200, 300, 400, 500, 600, 700, 800, 900)
OMEGAS = (0.0, 0.3, 0.6, 1.0)
METHOD_SHORT = {"normalised_slerp": "nslerp", "slerp": "slerp", "lerp": "lerp", "replace": "replace", "add": "add"}


# ---------------------------------------------------------------------------------------------
# Settings and plans

@dataclasses.dataclass(frozen=True)
class Setting:
    """The injection parameters a sweep varies (paper notation; see :class:`~diffstyle_lab.InjectionConfig`).
    ``omega`` only matters with ``calibrate=True``."""

    gamma: float = 0.3
    t_edit: int = 400
    t_boost: int = 200
    omega: float = 0.3
    calibrate: bool = False
    method: str = "normalised_slerp"

    def config(self, steps: int = 50, spacing: str = "authors", seed: int = 0) -> InjectionConfig:
        return InjectionConfig(gamma=float(self.gamma), t_edit=int(self.t_edit), t_boost=int(self.t_boost),
                               omega=float(self.omega), calibrate=bool(self.calibrate), method=self.method,
                               steps=steps, spacing=spacing, seed=int(seed)).validate()

    def key(self) -> dict:
        """Canonical parameters (ω dropped when calibration is off; γ dropped for 'replace')."""
        return {"gamma": None if self.method == "replace" else round(float(self.gamma), 6),
                "t_edit": int(self.t_edit), "t_boost": int(self.t_boost),
                "omega": round(float(self.omega), 6) if self.calibrate else None,
                "calibrate": bool(self.calibrate), "method": self.method}

    @property
    def label(self) -> str:
        k = self.key()
        s = METHOD_SHORT[self.method] + ("" if k["gamma"] is None else f"_g{k['gamma']:g}")
        s += f"_te{self.t_edit}_tb{self.t_boost}"
        return s + (f"_cal_w{k['omega']:g}" if self.calibrate else "")


@dataclasses.dataclass(frozen=True)
class PlanEntry:
    """One point of a sweep: ``sweep`` name, its x value (number or ablation name) and the setting."""

    sweep: str
    x: object
    setting: Setting


def gamma_sweep(base: Setting = Setting(), gammas: Sequence[float] = GAMMAS) -> list[PlanEntry]:
    """γ ∈ {0, 0.1, …, 1} at the base t_edit/t_boost (normalised Slerp, no calibration)."""
    return [PlanEntry("gamma", float(g), dataclasses.replace(base, gamma=float(g), calibrate=False,
                                                             method="normalised_slerp")) for g in gammas]


def t_edit_sweep(base: Setting = Setting(), t_edits: Sequence[int] = T_EDITS) -> list[PlanEntry]:
    """t_edit over the trajectory (t_boost capped at t_edit)."""
    return [PlanEntry("t_edit", int(t), dataclasses.replace(base, t_edit=int(t), t_boost=min(base.t_boost, int(t)),
                                                            calibrate=False, method="normalised_slerp"))
            for t in t_edits]


def omega_sweep(base: Setting = Setting(), omegas: Sequence[float] = OMEGAS) -> list[PlanEntry]:
    """ω with style calibration switched on."""
    return [PlanEntry("omega", float(w), dataclasses.replace(base, omega=float(w), calibrate=True,
                                                             method="normalised_slerp")) for w in omegas]


ABLATION_NAMES = ("replace", "add", "lerp", "slerp", "normalised slerp", "normalised slerp + calibration")


def ablation(base: Setting = Setting()) -> list[PlanEntry]:
    """The paper's ablation: replace / add (h + h^content, γ = 1) / lerp / Slerp / normalised Slerp /
    normalised Slerp + calibration (ω = base ω); γ and t_edit from ``base``."""
    b = dataclasses.replace(base, calibrate=False)
    rows = [("replace", dataclasses.replace(b, method="replace")),
            ("add", dataclasses.replace(b, method="add", gamma=1.0)),
            ("lerp", dataclasses.replace(b, method="lerp")),
            ("slerp", dataclasses.replace(b, method="slerp")),
            ("normalised slerp", dataclasses.replace(b, method="normalised_slerp")),
            ("normalised slerp + calibration", dataclasses.replace(b, method="normalised_slerp", calibrate=True))]
    return [PlanEntry("ablation", name, s) for name, s in rows]


def default_plan(base: Setting = Setting(), gammas=GAMMAS, t_edits=T_EDITS, omegas=OMEGAS) -> list[PlanEntry]:
    """The issue's four sweeps around ``base`` (the paper's defaults γ = 0.3, t_edit = 400, t_boost = 200,
    ω = 0.3). Settings shared by several sweeps are computed once."""
    return gamma_sweep(base, gammas) + t_edit_sweep(base, t_edits) + omega_sweep(base, omegas) + ablation(base)


def quick_plan(base: Setting = Setting()) -> list[PlanEntry]:
    """A smaller grid for development (every sweep present, fewer points)."""
    return default_plan(base, gammas=(0.0, 0.3, 0.7, 1.0), t_edits=(200, 400, 600, 800), omegas=(0.0, 0.6, 1.0))


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Data

@dataclasses.dataclass
class PairSet:
    """Content/style image pairs (N×3×H×W in [−1, 1]) and, for avatar data, their ground-truth factors."""

    content: torch.Tensor
    style: torch.Tensor
    content_factors: list | None = None
    style_factors: list | None = None
    name: str = "pairs"

    def __post_init__(self):
        if self.content.shape != self.style.shape:
            raise ValueError(f"content {tuple(self.content.shape)} and style {tuple(self.style.shape)} differ in shape")
        for f in (self.content_factors, self.style_factors):
            if f is not None and len(f) != len(self.content):
                raise ValueError("one factor record per pair is needed")

    @classmethod
    def from_avatars(cls, n: int, seed: int = 70_000, size: int = 32) -> "PairSet":
        """``n`` DiceBear content/style pairs (different content and colours) with ground truth."""
        from . import avatars
        from .factors import to_tensor
        c, s, cf, sf = avatars.content_style_pairs(n, seed, size)
        return cls(to_tensor(c), to_tensor(s), cf, sf, name=f"avatars(n={n}, seed={seed}, size={size})")

    def __len__(self):
        return len(self.content)

    @property
    def has_factors(self) -> bool:
        return self.content_factors is not None and self.style_factors is not None

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for x in (self.content, self.style):
            h.update(x.detach().float().cpu().contiguous().numpy().tobytes())
        if self.has_factors:
            h.update(json.dumps([dataclasses.asdict(f) for f in self.content_factors + self.style_factors]).encode())
        return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Per-pair metrics

def _hex_rgb(h: str) -> np.ndarray:
    h = h.split(":")[-1]
    return np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)], dtype=np.float64)


def _nearer(x: np.ndarray, to_style: np.ndarray, to_content: np.ndarray) -> float:
    """1 if colour x is nearer the style colour, 0 if nearer the content colour, NaN on a tie."""
    ds, dc = np.linalg.norm(x - to_style), np.linalg.norm(x - to_content)
    return 1.0 if ds < dc else 0.0 if dc < ds else float("nan")


def _label(f, head) -> str:
    v = getattr(f, head)
    return v if head in ("family", "background") else f"{f.family}:{v}"


@torch.no_grad()
def pair_metrics(result: torch.Tensor, content: torch.Tensor, style: torch.Tensor, classifier=None,
                 content_factors=None, style_factors=None, paper: dict | None = None):
    """One row per pair: how much of the content image the result keeps and how much of the style image's
    look it takes. Works on any images; the factor columns need a classifier and ground-truth factors.

    Columns (``*_content`` / ``*_style``: the result against the content / style image):

    * ``content_kept`` — share of the classifier's content heads (family, hair, eyes, mouth) whose
      prediction on the result equals the content image's factor, over the heads where content and style
      differ; ``content_all`` — all of them; ``keep_<head>``, ``as_style_<head>`` per head;
    * ``style_taken`` — share of {predicted background, skin, hair colour; measured border colour} nearer
      (RGB) to the style image's colour than to the content image's; ``take_<head>``, ``take_border``;
    * ``pixel_rmse_*`` ([0, 1] units), ``ssim_*``, ``colour_stats_*`` (mean/std distance, 0–255),
      ``gram_*`` (Gram distance on the classifier's conv activations), ``feat_cos_*`` (classifier
      features), ``edge_corr_*`` (edge-map correlation), ``border_dist_*`` (RGB distance of the borders);
    * with ``paper`` = {"arcface": ArcFaceIdentity, "vgg": VGGGram}: ``arcface_id_*``, ``vgg_gram_*``.
    """
    import pandas as pd
    y, c, s = result.float().cpu(), content.float().cpu(), style.float().cpu()
    n = len(y)
    cols: dict[str, np.ndarray] = {"pair_pos": np.arange(n)}

    def both(name, fn):
        cols[f"{name}_content"] = fn(y, c).double().numpy()
        cols[f"{name}_style"] = fn(y, s).double().numpy()

    both("pixel_rmse", metrics.pixel_rmse)
    both("ssim", metrics.ssim)
    both("colour_stats", metrics.colour_stats_distance)
    both("edge_corr", metrics.structure_similarity)
    by, bc, bs = metrics.border_colour(y), metrics.border_colour(c), metrics.border_colour(s)
    cols["border_dist_content"] = metrics.colour_distance(by, bc).double().numpy()
    cols["border_dist_style"] = metrics.colour_distance(by, bs).double().numpy()
    take_border = np.array([_nearer(by[i].double().numpy(), bs[i].double().numpy(), bc[i].double().numpy())
                            for i in range(n)])
    if classifier is not None:
        act_y = metrics.classifier_activations(classifier, y)
        cols["gram_content"] = metrics.gram_distance(act_y, metrics.classifier_activations(classifier, c)).double().numpy()
        cols["gram_style"] = metrics.gram_distance(act_y, metrics.classifier_activations(classifier, s)).double().numpy()
        fy = classifier.features(y)
        cols["feat_cos_content"] = metrics.cosine_similarity(fy, classifier.features(c)).double().numpy()
        cols["feat_cos_style"] = metrics.cosine_similarity(fy, classifier.features(s)).double().numpy()
    if classifier is not None and content_factors is not None and style_factors is not None:
        pred = classifier.predict(y)
        keep = []
        for h in CONTENT_HEADS:
            cl = [_label(f, h) for f in content_factors]
            sl = [_label(f, h) for f in style_factors]
            differ = np.array([a != b for a, b in zip(cl, sl)])
            k = np.array([p == a for p, a in zip(pred[h], cl)], dtype=np.float64)
            st = np.array([p == b for p, b in zip(pred[h], sl)], dtype=np.float64)
            cols[f"keep_{h}"] = np.where(differ, k, np.nan)
            cols[f"as_style_{h}"] = np.where(differ, st, np.nan)
            keep.append(cols[f"keep_{h}"])
        keep = np.stack(keep, 1)
        with np.errstate(invalid="ignore"):
            cols["content_kept"] = _nanmean_rows(keep)
            cols["content_all"] = np.where(np.isnan(keep).all(1), np.nan, np.nanmin(np.where(np.isnan(keep), 1, keep), 1))
        take = []
        for h in STYLE_HEADS:
            v = np.array([_nearer(_hex_rgb(p), _hex_rgb(getattr(sf, h)), _hex_rgb(getattr(cf, h)))
                          for p, sf, cf in zip(pred[h], style_factors, content_factors)])
            cols[f"take_{h}"] = v
            take.append(v)
        cols["take_border"] = take_border
        take.append(take_border)
        cols["style_taken"] = _nanmean_rows(np.stack(take, 1))
    else:
        cols["take_border"] = take_border
    for name, net in (paper or {}).items():
        if name == "arcface":
            ey = net.embed(y)
            cols["arcface_id_content"] = metrics.cosine_similarity(ey, net.embed(c)).double().numpy()
            cols["arcface_id_style"] = metrics.cosine_similarity(ey, net.embed(s)).double().numpy()
        elif name == "vgg":
            fy = net.features(y)
            cols["vgg_gram_content"] = metrics.gram_distance(fy, net.features(c)).double().numpy()
            cols["vgg_gram_style"] = metrics.gram_distance(fy, net.features(s)).double().numpy()
    return pd.DataFrame(cols)


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    cnt = (~np.isnan(a)).sum(1)
    tot = np.nansum(a, 1)
    return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


# ---------------------------------------------------------------------------------------------
# Bootstrap

def bootstrap_indices(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``n_boot``×``n`` resampling indices, a pure function of (n, n_boot, seed): every setting of a
    sweep resamples the *same* pairs, so differences between settings are paired."""
    if n < 1:
        raise ValueError("bootstrap needs at least one sample")
    if n_boot < 10:
        raise ValueError(f"n_boot={n_boot}: use at least 10 resamples (1000 is usual)")
    return np.random.default_rng(np.random.SeedSequence([int(seed), n, 6])).integers(0, n, size=(n_boot, n))


def _pct(reps, level):
    a = (1 - level) / 2
    reps = np.asarray(reps, dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if not len(reps):
        return float("nan"), float("nan")
    return float(np.quantile(reps, a)), float(np.quantile(reps, 1 - a))


def _check_level(level):
    if not 0 < level < 1:
        raise ValueError(f"level={level}: the confidence level must be in (0, 1), e.g. 0.95")


def bootstrap_ci(values, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the NaN-ignoring mean and its percentile bootstrap interval."""
    _check_level(level)
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan"), float("nan")
    reps = v[bootstrap_indices(len(v), n_boot, seed)].mean(1)
    lo, hi = _pct(reps, level)
    return float(v.mean()), lo, hi


def paired_difference(a, b, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean(a) − mean(b), low, high) with a and b measured on the same pairs (resampled together)."""
    _check_level(level)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("paired_difference needs a and b on the same pairs")
    idx = bootstrap_indices(len(a), n_boot, seed)
    with np.errstate(invalid="ignore"), _quiet():
        est = np.nanmean(a) - np.nanmean(b)
        reps = np.nanmean(a[idx], 1) - np.nanmean(b[idx], 1)
    lo, hi = _pct(reps, level)
    return float(est), lo, hi


def _rank(v):
    order = np.argsort(v, kind="mergesort")
    r = np.empty(len(v))
    r[order] = np.arange(len(v), dtype=np.float64)
    for u in np.unique(v):                               # average ranks for ties
        m = v == u
        if m.sum() > 1:
            r[m] = r[m].mean()
    return r


def _spearman(x, y) -> float:
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
    """Spearman correlation between a swept parameter ``x`` (L levels) and the mean of a per-pair metric
    at each level (``matrix``: L×N, the same N pairs at every level), with a paired bootstrap interval."""
    _check_level(level)
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != len(x):
        raise ValueError("trend needs an L×N matrix for L values of x")
    idx = bootstrap_indices(m.shape[1], n_boot, seed)
    with _quiet():
        est = _spearman(x, np.nanmean(m, 1))
        reps = [_spearman(x, np.nanmean(m[:, i], 1)) for i in idx]
    lo, hi = _pct(reps, level)
    return est, lo, hi


class _quiet:
    def __enter__(self):
        import warnings
        self._c = warnings.catch_warnings()
        self._c.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *a):
        return self._c.__exit__(*a)


class FrechetReference:
    """Gaussian statistics of a reference feature set (N×D), fixed once, so that the Fréchet distance of
    many small sets (n ≪ D possible) to it is cheap and exact:
    ‖μ−μ_r‖² + tr C_r + tr C − 2·Σ√λ, λ the eigenvalues of C_r^½ C C_r^½ = those of the n×n matrix
    (X C_r^½)(X C_r^½)ᵀ/(n−1), X the centred set. Equals :func:`factors.frechet_distance`."""

    def __init__(self, ref):
        r = np.asarray(ref, dtype=np.float64)
        self.mu = r.mean(0)
        cov = np.cov(r, rowvar=False)
        self.trace = float(np.trace(cov))
        w, v = np.linalg.eigh(cov)
        self.sqrt = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        self.n = len(r)

    def distance(self, feats) -> float:
        f = np.asarray(feats, dtype=np.float64)
        if len(f) < 2:
            return float("nan")
        mu = f.mean(0)
        x = f - mu
        y = x @ self.sqrt
        small = y @ y.T / (len(f) - 1)
        lam = np.clip(np.linalg.eigvalsh(small), 0, None)
        tr = float((x ** 2).sum() / (len(f) - 1))
        return float(((mu - self.mu) ** 2).sum() + self.trace + tr - 2 * np.sqrt(lam).sum())


def frechet_with_ci(feats: np.ndarray, ref, n_boot: int = 200, level: float = 0.95,
                    seed: int = 0) -> tuple[float, float, float, np.ndarray]:
    """Fréchet distance of ``feats`` to ``ref`` (features or a :class:`FrechetReference`) and a bootstrap
    interval from resampling ``feats`` (indices common to all settings of the same size); also returns
    the replicates.

    Resampling with replacement repeats samples, which shrinks the fitted covariance and biases the
    replicates upwards (by more than their spread at n ≈ 100); the replicates are therefore recentred
    on the estimate (bias-shifted percentile interval) before the interval is read off. Differences
    between settings (same indices) are hardly affected: the shifts nearly cancel."""
    ref = ref if isinstance(ref, FrechetReference) else FrechetReference(ref)
    f = np.asarray(feats, np.float64)
    est = ref.distance(f)
    reps = np.array([ref.distance(f[i]) for i in bootstrap_indices(len(f), n_boot, seed)])
    if np.isfinite(reps).any() and math.isfinite(est):
        reps = reps - (np.nanmean(reps) - est)
    lo, hi = _pct(reps, level)
    return est, lo, hi, reps


# ---------------------------------------------------------------------------------------------
# Shipping the model and the classifier to workers

def _state_bytes(module) -> bytes:
    from safetensors.torch import save
    return save({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()})


def model_payload(model) -> dict:
    """A picklable description of a :class:`~diffstyle_lab.DiffusionModel` (config + safetensors bytes)."""
    unet = model.unet
    return {"kind": "diffusion", "class": type(unet).__name__, "config": dict(unet.config),
            "weights": _state_bytes(unet), "scheduler": dict(model.scheduler_config), "source": model.source,
            "revision": model.revision, "hash": model.weights_hash}


def classifier_payload(net) -> dict:
    return {"kind": "classifier", "space": net.space, "width": int(net.body[0].weight.shape[0]),
            "weights": _state_bytes(net),
            "hash": hashlib.sha256(_state_bytes(net)).hexdigest()}


_LOADED: dict = {}


def _resolve(obj):
    """A payload becomes the object it describes (once per worker process); objects pass through."""
    if not isinstance(obj, dict) or "kind" not in obj:
        return obj
    key = (obj["kind"], obj["hash"])
    if key in _LOADED:
        return _LOADED[key]
    from safetensors.torch import load
    if obj["kind"] == "diffusion":
        import diffusers
        from .models import DiffusionModel, alphas_cumprod_from_config
        unet = getattr(diffusers, obj["class"]).from_config(obj["config"])
        unet.load_state_dict(load(obj["weights"]), strict=True)
        unet = unet.eval().requires_grad_(False)
        out = DiffusionModel(unet, alphas_cumprod_from_config(obj["scheduler"]), obj["scheduler"], obj["source"],
                             obj["revision"])
        if out.weights_hash != obj["hash"]:
            raise RuntimeError("the model rebuilt on a worker does not hash like the one shipped")
    else:
        from .factors import FactorNet
        out = FactorNet(obj["space"], width=obj["width"])
        out.load_state_dict(load(obj["weights"]), strict=True)
        out = out.eval().requires_grad_(False)
    _LOADED.clear() if len(_LOADED) > 8 else None
    _LOADED[key] = out
    return out


def _paper_nets(paths: dict) -> dict:
    key = ("paper", json.dumps(paths, sort_keys=True))
    if key not in _LOADED:
        nets = {}
        if "arcface" in paths:
            nets["arcface"] = metrics.ArcFaceIdentity(paths["arcface"])
        if "vgg" in paths:
            nets["vgg"] = metrics.VGGGram(paths["vgg"])
        if "inception" in paths:
            nets["inception"] = metrics.InceptionFID(paths["inception"])
        _LOADED[key] = nets
    return _LOADED[key]


# ---------------------------------------------------------------------------------------------
# One unit of work: a setting on a chunk of pairs (runs in-process or on a Dask worker)

def _run_chunk(ctx: dict, setting: Setting, idx: list[int], threads: int | None = None) -> dict:
    if threads:
        torch.set_num_threads(int(threads))
    model, clf = _resolve(ctx["model"]), _resolve(ctx["classifier"])
    nets = _paper_nets(ctx["paper"]) if ctx["paper"] else {}
    cfg = setting.config(ctx["steps"], ctx["spacing"], seed=ctx["seed"])
    ii = torch.as_tensor(idx)
    t0 = time.perf_counter()
    # per-pair boosting noise (seed + pair index): a pair's result does not depend on its chunk
    y = reverse(model, ctx["style_x_T"][ii], ctx["content_inv"].select(ii), cfg, progress=False,
                sample_seeds=[ctx["seed"] + i for i in idx]).float().cpu()
    y = y.clamp(-1, 1)                  # metrics see the image as it would be saved
    t1 = time.perf_counter()
    cf = [ctx["content_factors"][i] for i in idx] if ctx["content_factors"] is not None else None
    sf = [ctx["style_factors"][i] for i in idx] if ctx["style_factors"] is not None else None
    rows = pair_metrics(y, ctx["content"][ii], ctx["style"][ii], clf, cf, sf,
                        {k: v for k, v in nets.items() if k != "inception"})
    rows["pair"] = idx
    out = {"idx": list(idx), "rows": rows, "features": clf.features(y).double().numpy() if clf is not None else None,
           "images": ((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()}
    if "inception" in nets:
        out["inception"] = nets["inception"].features(y).double().numpy()
    out["seconds"] = {"injection": t1 - t0, "metrics": time.perf_counter() - t1}
    return out


# ---------------------------------------------------------------------------------------------
# The sweep runner

@dataclasses.dataclass
class Evaluation:
    """What :func:`evaluate` returns: the tidy tables and where the blocks are."""

    out_dir: Path
    tables: dict
    computed: list            # setting ids computed by this call
    skipped: list             # setting ids found finished on disk
    wall_seconds: float
    phases: dict = dataclasses.field(default_factory=dict)   # seconds of this call: inversion, sweep


def _atomic_write(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _block_done(blocks: Path, sid: str) -> bool:
    j, c = blocks / f"{sid}.json", blocks / f"{sid}.csv"
    if not (j.is_file() and c.is_file()):
        return False
    try:
        return json.loads(j.read_text()).get("setting_id") == sid
    except (OSError, ValueError):
        return False


def _chunks(n: int, size: int | None) -> list[list[int]]:
    size = n if not size else max(1, int(size))
    return [list(range(a, min(a + size, n))) for a in range(0, n, size)]


def _dask_client(scheduler, n_workers: int, threads_per_worker: int):
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise ImportError("running on Dask needs the scale extra: pip install 'diffstyle_lab[scale]' "
                          "(dask[distributed])") from e
    if isinstance(scheduler, Client):
        return scheduler, None
    if scheduler in ("local", True):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                               dashboard_address=None)
        return Client(cluster), cluster
    return Client(scheduler), None


def setting_ids(plan: Sequence[PlanEntry], ctx_hash: str) -> dict:
    """``{entry: setting id}``; entries whose settings are the same injection (canonical key) share an id."""
    return {e: f"{e.setting.label}-{_digest([e.setting.key(), ctx_hash])[:10]}" for e in plan}


def evaluate(model, plan: Sequence[PlanEntry], pairs: PairSet, out_dir, *, steps: int = 50,
             inversion_steps: int | None = None, spacing: str = "authors", record_last: bool = True, seed: int = 0,
             classifier="default", reference=1000, reference_seed: int = 90_000, n_boot: int = 1000,
             n_boot_frechet: int = 200, level: float = 0.95, chunk_size: int | None = None, scheduler=None,
             n_workers: int = 2, threads_per_worker: int = 1, paper_weights: dict | None = None,
             paper_metrics="auto", keep_images: bool = True, progress: bool = True) -> Evaluation:
    """Run ``plan`` on ``pairs`` and write one block per setting under ``out_dir/blocks`` (resumable).

    * Each content and style image is inverted once (``ddim_invert``, ``inversion_steps``, cached in
      ``out_dir/inversions``) and the ``Inversion`` objects are reused by every setting.
    * ``classifier`` — a FactorNet, ``"default"`` (``factors.load()``) or None (generic metrics only).
    * ``reference`` — real images for the Fréchet distance (a tensor), or a number of fresh avatar renders.
    * ``scheduler`` — None: in this process; ``"local"``: a Dask LocalCluster of ``n_workers`` processes ×
      ``threads_per_worker`` threads; an address (``"tcp://host:8786"``) or a ``distributed.Client``: that
      cluster. Work units are (setting, chunk of ``chunk_size`` pairs); the client writes the blocks. Pair i's
      boosting noise is seeded with ``seed + i``, so results depend neither on the scheduler nor on the chunking.
    * ``paper_metrics`` — ``"auto"``: the paper's networks whose weights are present
      (:func:`metrics.paper_metric_status`); a list of names: those, or :class:`metrics.MissingWeightsError`;
      ``()``: none. ``paper_weights`` maps names to files.
    """
    t_start = time.perf_counter()
    phases = {"inversion": 0.0, "sweep": 0.0}
    out_dir = Path(out_dir)
    blocks = out_dir / "blocks"
    blocks.mkdir(parents=True, exist_ok=True)
    inversion_steps = inversion_steps or steps
    if classifier == "default":
        from . import factors
        classifier = factors.load()
    paper = _paper_selection(paper_metrics, paper_weights)

    clf_hash = classifier_payload(classifier)["hash"] if classifier is not None else None
    context = {"metrics_version": METRICS_VERSION, "model": model.weights_hash, "pairs": pairs.fingerprint(),
               "steps": steps, "inversion_steps": inversion_steps, "spacing": spacing, "record_last": record_last,
               "seed": seed, "classifier": clf_hash, "paper": sorted(paper)}
    ctx_hash = _digest(context)[:10]
    entries = list(plan)
    ids = setting_ids(entries, ctx_hash)
    unique = {}
    for e in entries:
        unique.setdefault(ids[e], e.setting)
    todo = [sid for sid in unique if not _block_done(blocks, sid)]
    skipped = [sid for sid in unique if sid not in todo]

    # real images for the Fréchet distance (needed only when a block is still to be made)
    ref_sids = {name: f"reference_{name.split()[0]}-{ctx_hash}" for name in ("content image", "style image")}
    need_ref = bool(todo) or not all(_block_done(blocks, sid) for sid in ref_sids.values())
    ref_feats, ref_incep, ref_n = None, None, 0
    t_ref = time.perf_counter()
    if classifier is not None and reference is not None and need_ref:
        ref_imgs = _reference_images(reference, reference_seed, pairs.content.shape[-1])
        ref_n = len(ref_imgs)
        ref_feats = FrechetReference(classifier.features(ref_imgs).double().numpy())
        if "inception" in paper:
            ref_incep = FrechetReference(_paper_nets(paper)["inception"].features(ref_imgs).double().numpy())
    t_ref = time.perf_counter() - t_ref

    prev = out_dir / "pairs_preview.npz"
    if not prev.is_file():
        u8 = lambda x: ((x[:16].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # noqa: E731
        b = io.BytesIO()
        np.savez(b, content=u8(pairs.content), style=u8(pairs.style))
        _atomic_write(prev, b.getvalue())
    timing_path = out_dir / f"timing-{ctx_hash}.json"
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    fd_args = dict(n_boot=n_boot_frechet, level=level, seed=seed)

    # reference rows: the content image and the style image scored as if they were results
    for name, imgs in (("content image", pairs.content), ("style image", pairs.style)):
        sid = ref_sids[name]
        if not _block_done(blocks, sid):
            t0 = time.perf_counter()
            rows = pair_metrics(imgs, pairs.content, pairs.style, classifier, pairs.content_factors,
                                pairs.style_factors, {k: v for k, v in _paper_nets(paper).items() if k != "inception"}
                                if paper else None)
            rows["pair"] = np.arange(len(pairs))
            part = {"rows": rows, "features": classifier.features(imgs).double().numpy() if classifier else None}
            if ref_incep is not None:
                part["inception"] = _paper_nets(paper)["inception"].features(imgs).double().numpy()
            _finish_block(blocks, sid, None, name, [part], ref_feats, ref_incep, fd_args,
                          {"injection": 0.0, "metrics": time.perf_counter() - t0}, keep_images=False,
                          extra={"reference_n": ref_n})

    if todo:
        t0 = time.perf_counter()
        from .cache import InversionCache
        cache = InversionCache(out_dir / "inversions")
        content_inv = ddim_invert(model, pairs.content, inversion_steps, spacing, record_last=record_last,
                                  progress=progress, cache=cache)
        style_inv = ddim_invert(model, pairs.style, inversion_steps, spacing, record_last=record_last,
                                progress=progress, cache=cache)
        t_inv = time.perf_counter() - t0
        if cache.misses:                      # the time of actually inverting (not of reading the cache)
            timing["inversion"] = t_inv
            timing["inverted_images"] = cache.misses
        timing.setdefault("inversion", t_inv)
        timing["reference_features"] = t_ref
        _atomic_write(timing_path, json.dumps(timing).encode())
        ctx = {"model": model, "classifier": classifier, "content_inv": content_inv, "style_x_T": style_inv.x_T,
               "content": pairs.content, "style": pairs.style, "content_factors": pairs.content_factors,
               "style_factors": pairs.style_factors, "steps": steps, "spacing": spacing, "seed": seed, "paper": paper}
        chunks = _chunks(len(pairs), chunk_size)
        units = [(sid, idx) for sid in todo for idx in chunks]
        done_parts: dict = {sid: [] for sid in todo}

        def accept(sid, part):
            done_parts[sid].append(part)
            if len(done_parts[sid]) == len(chunks):
                parts = sorted(done_parts.pop(sid), key=lambda p: p["idx"][0])
                secs = {k: sum(p["seconds"][k] for p in parts) for k in ("injection", "metrics")}
                _finish_block(blocks, sid, unique[sid], unique[sid].label, parts, ref_feats, ref_incep, fd_args,
                              secs, keep_images=keep_images, extra={"reference_n": ref_n, "chunks": len(chunks)})

        from tqdm.auto import tqdm
        bar = tqdm(total=len(units), desc="settings×chunks", disable=not progress)
        t_sweep = time.perf_counter()
        if scheduler is None:
            for sid, idx in units:
                accept(sid, _run_chunk(ctx, unique[sid], idx))
                bar.update(1)
        else:
            from distributed import as_completed
            client, cluster = _dask_client(scheduler, n_workers, threads_per_worker)
            try:
                wctx = dict(ctx, model=model_payload(model),
                            classifier=classifier_payload(classifier) if classifier is not None else None)
                fut_ctx = client.scatter(wctx, broadcast=True)
                futs = {client.submit(_run_chunk, fut_ctx, unique[sid], idx, threads_per_worker, pure=False): sid
                        for sid, idx in units}
                for fut, part in as_completed(futs, with_results=True):
                    accept(futs[fut], part)
                    bar.update(1)
            finally:
                if cluster is not None:
                    client.close()
                    cluster.close()
        bar.close()
        phases["inversion"] = t_inv
        phases["sweep"] = time.perf_counter() - t_sweep

    wall = time.perf_counter() - t_start
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with open(out_dir / "runs.jsonl", "a") as fh:
        fh.write(json.dumps({"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "context": ctx_hash,
                             "wall_seconds": wall, "computed": len(todo), "skipped": len(skipped),
                             "scheduler": None if scheduler is None else str(scheduler),
                             "n_workers": n_workers if scheduler is not None else 1, "load_average": load}) + "\n")
    calls = [json.loads(line) for line in (out_dir / "runs.jsonl").read_text().splitlines() if line.strip()]
    calls = [c for c in calls if c.get("context") == ctx_hash]
    info = {"model_source": model.source, "model_sha256": model.weights_hash, "pairs": pairs.name,
            "n_pairs": len(pairs), "steps": steps, "inversion_steps": inversion_steps, "spacing": spacing,
            "record_last": record_last, "seed": seed, "classifier_sha256": clf_hash, "reference_n": ref_n,
            "n_boot": n_boot, "n_boot_frechet": n_boot_frechet, "level": level, "context": ctx_hash,
            "wall_seconds_this_call": wall, "computed_this_call": len(todo), "skipped_this_call": len(skipped),
            "wall_seconds_all_calls": sum(c["wall_seconds"] for c in calls), "calls": len(calls),
            "load_average_end": load,
            "scheduler": "in-process" if scheduler is None else str(scheduler),
            "workers": 1 if scheduler is None else n_workers, "torch_threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "paper_metrics": {k: v["message"].splitlines()[0] if v["available"] else v["message"]
                              for k, v in metrics.paper_metric_status(paper_weights).items()},
            "paper_metrics_used": sorted(paper)}
    tables = load_tables(out_dir, entries, ids, ctx_hash, info)
    return Evaluation(out_dir, tables, todo, skipped, wall, phases)


def _paper_selection(paper_metrics, paper_weights) -> dict:
    paths = {}
    status = metrics.paper_metric_status(paper_weights)
    if paper_metrics == "auto":
        return {k: v["path"] for k, v in status.items() if v["available"]}
    for name in paper_metrics or ():
        paths[name] = str(metrics.weights_path(name, (paper_weights or {}).get(name)))
    return paths


def _reference_images(reference, seed, size):
    if torch.is_tensor(reference):
        return reference.float()
    from . import avatars
    from .factors import to_tensor
    x, _ = avatars.make_faces(int(reference), seed=seed, size=size)
    return to_tensor(x)


def _finish_block(blocks: Path, sid: str, setting: Setting | None, label: str, parts, ref_feats, ref_incep,
                  fd_args, seconds, keep_images: bool, extra: dict):
    import pandas as pd
    rows = pd.concat([p["rows"] for p in parts], ignore_index=True).drop(columns=["pair_pos"])
    rows.insert(0, "setting_id", sid)
    n = len(rows)
    sets = []
    for name, ref, key in (("frechet_classifier", ref_feats, "features"), ("frechet_inception", ref_incep, "inception")):
        if ref is None or parts[0].get(key) is None:
            continue
        feats = np.concatenate([p[key] for p in parts])
        est, lo, hi, reps = frechet_with_ci(feats, ref, **fd_args)
        sets.append({"metric": name, "value": est, "ci_low": lo, "ci_high": hi, "n": n, "n_ref": ref.n,
                     "replicates": [float(r) for r in reps]})
    buf = io.StringIO()
    rows.to_csv(buf, index=False)
    _atomic_write(blocks / f"{sid}.csv", buf.getvalue().encode())
    if keep_images and parts[0].get("images") is not None:
        b = io.BytesIO()
        np.save(b, np.concatenate([p["images"] for p in parts]))
        _atomic_write(blocks / f"{sid}.npy", b.getvalue())
    meta = {"setting_id": sid, "label": label, "setting": None if setting is None else dataclasses.asdict(setting),
            "n_pairs": n, "seconds": seconds, "sets": sets, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
    _atomic_write(blocks / f"{sid}.json", json.dumps(meta).encode())     # last: marks the block finished


# ---------------------------------------------------------------------------------------------
# Tables

SUMMARY_METRICS = ("content_kept", "content_all", "style_taken", "keep_family", "keep_hair", "keep_eyes",
                   "keep_mouth", "take_background", "take_skin", "take_hair_colour", "take_border",
                   "pixel_rmse_content", "pixel_rmse_style", "ssim_content", "ssim_style", "colour_stats_content",
                   "colour_stats_style", "gram_content", "gram_style", "feat_cos_content", "feat_cos_style",
                   "edge_corr_content", "edge_corr_style", "border_dist_content", "border_dist_style",
                   "arcface_id_content", "arcface_id_style", "vgg_gram_content", "vgg_gram_style")


def load_tables(out_dir, plan: Sequence[PlanEntry], ids: dict, ctx_hash: str, info: dict) -> dict:
    """Assemble the tidy tables of a run from its blocks: ``pairs`` (one row per pair × setting),
    ``plan`` (sweep, x, setting), ``settings``, ``sets`` (set-level metrics with intervals),
    ``sets_boot`` (their bootstrap replicates), ``timing`` and ``run`` (key/value)."""
    import pandas as pd
    blocks = Path(out_dir) / "blocks"
    plan_rows, settings, pair_frames, sets, boot = [], [], [], [], []
    refs = [("reference", "content image", f"reference_content-{ctx_hash}"),
            ("reference", "style image", f"reference_style-{ctx_hash}")]
    seen = set()
    for e in plan:
        sid = ids[e]
        plan_rows.append({"sweep": e.sweep, "x": e.x, "setting_id": sid, **_setting_cols(e.setting)})
    for sweep, x, sid in refs:
        plan_rows.append({"sweep": sweep, "x": x, "setting_id": sid})
    for row in plan_rows:
        sid = row["setting_id"]
        if sid in seen:
            continue
        seen.add(sid)
        if not _block_done(blocks, sid):
            continue
        meta = json.loads((blocks / f"{sid}.json").read_text())
        pair_frames.append(pd.read_csv(blocks / f"{sid}.csv"))
        settings.append({"setting_id": sid, "label": meta["label"], "n_pairs": meta["n_pairs"],
                         "injection_seconds": meta["seconds"]["injection"],
                         "metrics_seconds": meta["seconds"]["metrics"], "finished": meta["finished"],
                         **(_setting_cols(Setting(**meta["setting"])) if meta["setting"] else {})})
        for s in meta["sets"]:
            sets.append({"setting_id": sid, **{k: s[k] for k in ("metric", "value", "ci_low", "ci_high", "n", "n_ref")}})
            boot += [{"setting_id": sid, "metric": s["metric"], "b": b, "value": v} for b, v in enumerate(s["replicates"])]
    timing_path = Path(out_dir) / f"timing-{ctx_hash}.json"
    tim = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    st = pd.DataFrame(settings)
    inj = float(st.loc[~st.setting_id.str.startswith("reference_"), "injection_seconds"].sum()) if len(st) else 0.0
    met = float(st["metrics_seconds"].sum()) if len(st) else 0.0
    stages = [("inversion", tim.get("inversion", float("nan")), f"{tim.get('inverted_images', 2 * info['n_pairs'])} "
               f"images × {info['inversion_steps']} steps, once"),
              ("injection", inj, f"{int((~st.setting_id.str.startswith('reference_')).sum()) if len(st) else 0} "
               f"settings × {info['n_pairs']} pairs × {info['steps']} steps"),
              ("metrics", met + tim.get("reference_features", 0.0), "per-pair metrics, Fréchet distances + "
               "bootstrap, reference features")]
    total = sum(s for _, s, _ in stages if math.isfinite(s))
    timing = pd.DataFrame([{"stage": a, "seconds": s, "share": s / total if total else float("nan"), "detail": d}
                           for a, s, d in stages])
    info = dict(info, compute_seconds=total)
    return {"pairs": pd.concat(pair_frames, ignore_index=True) if pair_frames else pd.DataFrame(),
            "plan": pd.DataFrame(plan_rows), "settings": st, "sets": pd.DataFrame(sets),
            "sets_boot": pd.DataFrame(boot), "timing": timing,
            "run": pd.DataFrame([{"key": k, "value": json.dumps(v) if isinstance(v, (dict, list)) else v}
                                 for k, v in info.items()])}


def _setting_cols(s: Setting) -> dict:
    return {"gamma": s.gamma, "t_edit": s.t_edit, "t_boost": s.t_boost, "omega": s.omega if s.calibrate else np.nan,
            "calibrate": s.calibrate, "method": s.method}


def summarise(tables: dict, metrics_: Sequence[str] = SUMMARY_METRICS, n_boot: int = 1000, level: float = 0.95,
              seed: int = 0):
    """Long table: sweep, x, setting_id, metric, mean, ci_low, ci_high, n — per-pair metrics with
    bootstrap intervals, plus the set-level Fréchet distances."""
    import pandas as pd
    pairs, plan, sets = tables["pairs"], tables["plan"], tables["sets"]
    out = []
    for _, p in plan.iterrows():
        d = pairs[pairs.setting_id == p.setting_id]
        if not len(d):
            continue
        for m in metrics_:
            if m not in d or not np.isfinite(d[m].to_numpy(np.float64)).any():
                continue
            mean, lo, hi = bootstrap_ci(d[m].to_numpy(np.float64), n_boot, level, seed)
            out.append({"sweep": p.sweep, "x": p.x, "setting_id": p.setting_id, "metric": m, "mean": mean,
                        "ci_low": lo, "ci_high": hi, "n": int(np.isfinite(d[m].to_numpy(np.float64)).sum())})
        if len(sets):
            for _, s in sets[sets.setting_id == p.setting_id].iterrows():
                out.append({"sweep": p.sweep, "x": p.x, "setting_id": p.setting_id, "metric": s.metric,
                            "mean": s.value, "ci_low": s.ci_low, "ci_high": s.ci_high, "n": int(s.n)})
    return pd.DataFrame(out, columns=["sweep", "x", "setting_id", "metric", "mean", "ci_low", "ci_high", "n"])


# ---------------------------------------------------------------------------------------------
# The paper's claims, checked on the measured numbers

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


BASE_X = {"gamma": 0.3, "t_edit": 400, "omega": 0.3}

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

METRIC_WORDS = {"content_kept": "content kept", "style_taken": "style taken", "gram_style": "Gram distance to the style image",
                "frechet_classifier": "Fréchet distance to real faces (classifier features)",
                "frechet_inception": "FID (Inception)", "arcface_id_content": "ArcFace identity similarity to the content image",
                "vgg_gram_style": "VGG Gram distance to the style image"}


def _fmt_x(sweep, x):
    if sweep == "gamma":
        return f"γ = {float(x):g}"
    if sweep == "t_edit":
        return f"t_edit = {int(float(x))}"
    if sweep == "omega":
        return f"ω = {float(x):g}"
    return str(x)


def _match_x(plan, sweep, x):
    d = plan[plan.sweep == sweep]
    if x is None:
        return d
    try:
        return d[np.isclose(d.x.astype(float), float(x))]
    except (TypeError, ValueError):
        return d[d.x.astype(str) == str(x)]


def _pair_values(tables, sid, metric, n_pairs):
    d = tables["pairs"]
    d = d[d.setting_id == sid].set_index("pair").reindex(range(n_pairs))
    return d[metric].to_numpy(np.float64) if metric in d else np.full(n_pairs, np.nan)


def assess_claims(tables: dict, claims: Sequence[Claim] = CLAIMS, n_boot: int = 1000, level: float = 0.95,
                  seed: int = 0):
    """Each claim's estimate, interval and verdict — ``holds`` (the interval lies on the paper's side),
    ``does not hold`` (on the other side), ``inconclusive`` (it straddles the null) or ``not measured`` —
    with a sentence generated from the numbers."""
    import pandas as pd
    plan = tables["plan"]
    n_pairs = int(tables["pairs"]["pair"].max()) + 1 if len(tables["pairs"]) else 0
    pct = f"{level:.0%}"
    out = []
    for c in claims:
        row = {"claim": c.id, "paper": c.paper, "source": c.source, "metric": c.metric, "kind": c.kind,
               "estimate": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "verdict": "not measured",
               "measured": ""}
        mw = METRIC_WORDS.get(c.metric, c.metric)
        try:
            if c.kind == "trend":
                d = _match_x(plan, c.a[0], None)
                if len(d) < 3:
                    raise LookupError
                d = d.assign(xf=d.x.astype(float)).sort_values("xf")
                mat = np.stack([_pair_values(tables, sid, c.metric, n_pairs) for sid in d.setting_id])
                if not np.isfinite(mat).any():
                    raise LookupError
                est, lo, hi = trend(mat, d.xf.to_numpy(), n_boot, level, seed)
                means = np.nanmean(mat, 1)
                xs = d.xf.to_numpy()
                row.update(estimate=est, ci_low=lo, ci_high=hi)
                row["measured"] = (f"{mw} goes from {means[0]:.3g} at {_fmt_x(c.a[0], xs[0])} to {means[-1]:.3g} at "
                                   f"{_fmt_x(c.a[0], xs[-1])} (levels: " + ", ".join(f"{m:.3g}" for m in means) +
                                   f"); Spearman ρ(x, mean) = {est:+.2f}, {pct} CI [{lo:+.2f}, {hi:+.2f}]")
                null = 0.0
            elif c.kind in ("diff", "above"):
                sa = _match_x(plan, *c.a).setting_id
                sb = _match_x(plan, *c.b).setting_id if c.b is not None else sa
                if not len(sa) or not len(sb):
                    raise LookupError
                va = _pair_values(tables, sa.iloc[0], c.metric, n_pairs)
                if not np.isfinite(va).any():
                    raise LookupError
                if c.kind == "above":
                    est, lo, hi = bootstrap_ci(va, n_boot, level, seed)
                    null = c.threshold
                    row["measured"] = (f"{mw} at {_fmt_x(*c.a)} = {est:.3g}, {pct} CI [{lo:.3g}, {hi:.3g}] "
                                       f"(threshold {c.threshold:g}; n = {int(np.isfinite(va).sum())} pairs)")
                else:
                    vb = _pair_values(tables, sb.iloc[0], c.metric, n_pairs)
                    est, lo, hi = paired_difference(va, vb, n_boot, level, seed)
                    null = 0.0
                    row["measured"] = (f"{mw}: {np.nanmean(va):.3g} at {_fmt_x(*c.a)} vs {np.nanmean(vb):.3g} at "
                                       f"{_fmt_x(*c.b)}; paired difference {est:+.3g}, {pct} CI [{lo:+.3g}, {hi:+.3g}] "
                                       f"(n = {int((np.isfinite(va) & np.isfinite(vb)).sum())} pairs)")
                row.update(estimate=est, ci_low=lo, ci_high=hi)
            elif c.kind == "set_diff":
                sets, boot = tables["sets"], tables["sets_boot"]
                sa, sb = _match_x(plan, *c.a).setting_id, _match_x(plan, *c.b).setting_id
                if not len(sa) or not len(sb) or not len(sets):
                    raise LookupError
                ga = sets[(sets.setting_id == sa.iloc[0]) & (sets.metric == c.metric)]
                gb = sets[(sets.setting_id == sb.iloc[0]) & (sets.metric == c.metric)]
                if not len(ga) or not len(gb):
                    raise LookupError
                ra = boot[(boot.setting_id == sa.iloc[0]) & (boot.metric == c.metric)].sort_values("b").value.to_numpy()
                rb = boot[(boot.setting_id == sb.iloc[0]) & (boot.metric == c.metric)].sort_values("b").value.to_numpy()
                est = float(ga.value.iloc[0] - gb.value.iloc[0])
                lo, hi = _pct(ra - rb, level)
                null = 0.0
                row.update(estimate=est, ci_low=lo, ci_high=hi)
                row["measured"] = (f"{mw}: {ga.value.iloc[0]:.3g} at {_fmt_x(*c.a)} vs {gb.value.iloc[0]:.3g} at "
                                   f"{_fmt_x(*c.b)}; difference {est:+.3g}, {pct} CI [{lo:+.3g}, {hi:+.3g}] "
                                   f"(paired bootstrap over the same resampled pairs)")
            else:
                raise ValueError(f"claim {c.id}: unknown kind {c.kind!r}")
        except LookupError:
            row["measured"] = f"not measured: the run has no {mw} for the settings this claim compares"
            out.append(row)
            continue
        lo, hi = row["ci_low"], row["ci_high"]
        if not (math.isfinite(lo) and math.isfinite(hi)):
            row["verdict"] = "inconclusive"
        elif (c.direction > 0 and lo > null) or (c.direction < 0 and hi < null):
            row["verdict"] = "holds"
        elif (c.direction > 0 and hi < null) or (c.direction < 0 and lo > null):
            row["verdict"] = "does not hold"
        else:
            row["verdict"] = "inconclusive"
        out.append(row)
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------
# Export: tables, figures, the results page

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
    plan, blocks = run.tables["plan"], run.out_dir / "blocks"
    for sweep, xs in (("gamma", (0.0, 0.3, 0.7, 1.0)), ("ablation", ABLATION_NAMES), ("t_edit", (200, 400, 600, 800)),
                      ("omega", OMEGAS)):
        cols = []
        for x in xs:
            m = _match_x(plan, sweep, x)
            if len(m) and (blocks / f"{m.setting_id.iloc[0]}.npy").is_file():
                cols.append((_fmt_x(sweep, x), np.load(blocks / f"{m.setting_id.iloc[0]}.npy")[:k]))
        if not cols:
            continue
        srcs = _source_images(run, k)
        if srcs is None:
            continue
        cols = [("content", srcs[0]), ("style", srcs[1])] + cols
        s, pad, head = 32, 4, 14
        scale = 3
        W = len(cols) * (s * scale + pad) + pad
        H = head * 2 + min(k, len(cols[0][1])) * (s * scale + pad) + pad
        canvas = Image.new("RGB", (max(W, 10), H), "white")
        draw = ImageDraw.Draw(canvas)
        font = _font()
        for j, (name, imgs) in enumerate(cols):
            x0 = pad + j * (s * scale + pad)
            draw.text((x0, 2), name[:18], fill="black", font=font)
            for i, im in enumerate(imgs[:k]):
                tile = Image.fromarray(im).resize((s * scale, s * scale), Image.NEAREST)
                canvas.paste(tile, (x0, head * 2 + i * (s * scale + pad)))
        canvas.save(d / f"examples_{sweep}.png")


def _font():
    from PIL import ImageFont
    try:
        from matplotlib import font_manager
        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), 11)
    except Exception:          # any font problem: PIL's default (no Greek letters)
        return ImageFont.load_default()


def _source_images(run: Evaluation, k: int):
    p = run.out_dir / "pairs_preview.npz"
    if not p.is_file():
        return None
    z = np.load(p)
    return z["content"][:k], z["style"][:k]


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
                order = [n for n in ABLATION_NAMES if n in set(e.x.astype(str))]
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
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


def _md_table(df, floatfmt="{:.3g}") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            cells.append(floatfmt.format(v) if isinstance(v, (float, np.floating)) and math.isfinite(v) else
                         ("–" if isinstance(v, (float, np.floating)) else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ci(mean, lo, hi, fmt="{:.3g}"):
    return f"{fmt.format(mean)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def build_page(tables_dir, md_path, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
               figures: bool = True) -> Path:
    """Rebuild the results page (Markdown + figures) from the exported tables alone
    (``figures=False``: keep the figure files that are there)."""
    tables_dir, md_path = Path(tables_dir), Path(md_path)
    t = load_exported(tables_dir)
    if not len(t["pairs"]):
        raise FileNotFoundError(f"{tables_dir} holds no evaluation tables: run scripts/run_evaluation.py first")
    run = dict(zip(t["run"].key, t["run"].value))
    summary = summarise(t, n_boot=n_boot, level=level, seed=seed)
    summary.to_csv(tables_dir / "summary.csv", index=False)
    claims = assess_claims(t, n_boot=n_boot, level=level, seed=seed)
    claims.to_csv(tables_dir / "claims.csv", index=False)
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
    L.append("### What is measured\n")
    L.append("- **content kept** — the factor classifier's content heads (family, hair, eyes, mouth) on the result "
             "equal the content image's factors (only heads where content and style differ count); 1 = all content "
             "from the content image, 0 = none (the paper measures this with ArcFace identity similarity).")
    L.append("- **style taken** — of the predicted background, skin and hair colours and the measured border colour, "
             "the share nearer (RGB) to the style image's than to the content image's (the paper: VGG Gram loss).")
    L.append("- **Gram distance to style** — Gram matrices of the classifier's conv activations (lower = closer "
             "to the style image's texture/colour statistics); **SSIM**, **pixel RMSE**, **colour statistics** — "
             "generic image metrics, against both images (see `pairs.csv.gz`).")
    L.append("- **Fréchet distance to real** — quality: the Fréchet distance of the classifier's penultimate "
             "features (a small, domain-specific stand-in for FID).")
    L.append("- reference rows: the content image and the style image scored as if they were results — the ends "
             "of each scale. The content image's own *content kept* is the classifier's accuracy on these heads: "
             "the ceiling any result can reach; its *style taken* is the floor (0 with a perfect classifier).\n")
    # paper metrics
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
    # claims
    L.append("## The paper's findings on this model, claim by claim\n")
    verdict_word = {"holds": "✅ holds", "does not hold": "❌ does not hold", "inconclusive": "➖ inconclusive",
                    "not measured": "– not measured"}
    counts = claims.verdict.value_counts().to_dict()
    L.append("Verdicts: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in ("holds", "does not hold", "inconclusive",
                                                                           "not measured")) +
             f". A claim **holds** when the {level:.0%} interval of its statistic lies entirely on the paper's side "
             "of the null, **does not hold** when it lies entirely on the other side, and is **inconclusive** "
             "when it straddles it.\n")
    for i, c in claims.iterrows():
        L.append(f"{i + 1}. **{c.paper}** ({c.source}) — **{verdict_word[c.verdict]}** on this model. "
                 f"Measured: {c.measured}.")
    L.append("")
    # figures
    L.append("## Sweeps\n")
    for p in figs:
        L.append(f"![{p.stem}]({rel}/{p.name})\n")
    for sweep in ("gamma", "ablation", "t_edit", "omega"):
        p = tables_dir / f"examples_{sweep}.png"
        if p.is_file():
            L.append(f"Examples, {sweep} (columns: content, style, results):\n\n![examples {sweep}]({rel}/{p.name})\n")
    # compact tables
    L.append("## Tables\n")
    key = ["content_kept", "style_taken", "gram_style", "ssim_content", "ssim_style", "frechet_classifier"]
    key += [m for m in ("arcface_id_content", "vgg_gram_style", "frechet_inception") if m in set(summary.metric)]
    for sweep in ("gamma", "t_edit", "omega", "ablation", "reference"):
        d = summary[(summary.sweep == sweep) & summary.metric.isin(key)]
        if not len(d):
            continue
        wide = d.assign(v=[_ci(a, b, c) for a, b, c in zip(d["mean"], d.ci_low, d.ci_high)]).pivot_table(
            index="x", columns="metric", values="v", aggfunc="first", sort=False)
        wide = wide[[k for k in key if k in wide.columns]].reset_index()
        L.append(f"**{sweep}** (mean [{level:.0%} CI])\n")
        L.append(_md_table(wide) + "\n")
    # timing
    tim = t["timing"]
    wall = run.get("wall_seconds_this_call")
    L.append("## Cost\n")
    L.append(f"Compute time of the evaluation on {run.get('cpu_count')} CPU cores ({run.get('scheduler')}, "
             f"{run.get('workers')} worker(s), {run.get('torch_threads')} torch threads), as recorded when each part "
             "was computed:\n")
    tim2 = tim.assign(seconds=tim.seconds.round(1), share=(100 * tim.share).round(1).astype(str) + " %")
    L.append(_md_table(tim2) + "\n")
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
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text("\n".join(L))
    return md_path


# ---------------------------------------------------------------------------------------------
# Scale-out demonstration

def _burn(start_at: float, reps: int = 200) -> float:
    """Fixed single-thread work (512² matmuls), started at a common wall-clock time; returns its seconds."""
    torch.set_num_threads(1)
    x = torch.randn(512, 512)
    while time.time() < start_at:
        time.sleep(0.005)
    t = time.perf_counter()
    for _ in range(reps):
        x @ x
    return time.perf_counter() - t


def parallel_capacity(n: int = 2) -> float:
    """How many cores' worth of work ``n`` single-thread processes get done at once right now (n on idle
    cores, ~1 when other jobs leave one core free): n·t_alone / t_together."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp
    with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as ex:
        list(ex.map(_burn, [0.0] * n, [5] * n))                       # start the processes
        alone = ex.submit(_burn, 0.0).result()
        start = time.time() + 0.5
        together = max(ex.map(_burn, [start] * n))
    return n * alone / together


def _warm_worker():
    import diffusers  # noqa: F401
    from . import factors, sampling  # noqa: F401
    return True


def scaling_demo(model, plan: Sequence[PlanEntry], pairs: PairSet, workers: Sequence[int] = (1, 2), *,
                 steps: int = 10, classifier="default", chunk_size: int | None = None, note: str = "",
                 progress: bool = False, **kw) -> dict:
    """Run the same sweep on Dask LocalClusters of ``workers[0]`` and ``workers[-1]`` worker processes (one
    thread each), each in a fresh folder (nothing resumed). Returns the times of the distributed phase
    (settings on the workers), of the whole call (with the client-side inversion) and with cluster
    start-up, and their ratios."""
    from distributed import Client, LocalCluster
    if classifier == "default":
        from . import factors
        classifier = factors.load()
    ref = _reference_images(200, 90_000, pairs.content.shape[-1])
    res = {}
    for nw in workers:
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=nw, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        client.wait_for_workers(nw)
        client.run(_warm_worker)          # imports (torch, diffusers) belong to start-up, not to the sweep
        try:
            with tempfile.TemporaryDirectory() as tmp:
                r = evaluate(model, plan, pairs, tmp, steps=steps, classifier=classifier, scheduler=client,
                             n_workers=nw, chunk_size=chunk_size, progress=progress, reference=ref,
                             n_boot_frechet=50, **kw)
            t2 = time.perf_counter()
        finally:
            client.close()
            cluster.close()
        res[nw] = {"sweep": r.phases["sweep"], "call": r.wall_seconds, "total": t2 - t0}
    a, b = workers[0], workers[-1]
    n_set = len({e.setting.label for e in plan})
    return {"settings": n_set, "pairs": len(pairs), "steps": steps,
            "work_units": n_set * len(_chunks(len(pairs), chunk_size)), "workers_1": a, "workers_n": b,
            "seconds_1": res[a]["sweep"], "seconds_n": res[b]["sweep"], "speedup": res[a]["sweep"] / res[b]["sweep"],
            "call_1": res[a]["call"], "call_n": res[b]["call"], "speedup_call": res[a]["call"] / res[b]["call"],
            "total_1": res[a]["total"], "total_n": res[b]["total"], "cpu_count": os.cpu_count(),
            "parallel_capacity": parallel_capacity(b), "note": note}
