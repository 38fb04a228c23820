"""What an evaluation measures: per-pair metric families and the set-level Fréchet distance with its
bootstrap interval. A **metric family** is a function ``family(batch: PairBatch) -> {column: one value per
pair}`` (NaN where it does not apply); :data:`PAIR_METRIC_FAMILIES` are the default ones."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from . import metrics
from ..stats.bootstrap import bootstrap_indices, percentile_interval, recentre

CONTENT_HEADS = ("family", "hair", "eyes", "mouth")
STYLE_HEADS = ("background", "skin", "hair_colour")
METRICS_VERSION = 2           # bump when a metric's definition changes: old blocks are then recomputed


@dataclasses.dataclass
class PairBatch:
    """What a metric family sees: results and the pairs they were made from (float32 on the CPU, in
    [−1, 1]; results clamped as they would be saved), the factor classifier, the renderer's ground
    truth (avatar data) and the paper's networks that are loaded (``{"arcface": …, "vgg": …}``)."""

    result: torch.Tensor
    content: torch.Tensor
    style: torch.Tensor
    classifier: object = None
    content_factors: list | None = None
    style_factors: list | None = None
    paper: dict = dataclasses.field(default_factory=dict)

    def against_both(self, name: str, fn) -> dict:
        """``{name_content: fn(result, content), name_style: fn(result, style)}`` as float64 arrays."""
        return {f"{name}_content": _np(fn(self.result, self.content)),
                f"{name}_style": _np(fn(self.result, self.style))}


def _np(x) -> np.ndarray:
    return x.double().numpy() if torch.is_tensor(x) else np.asarray(x, dtype=np.float64)


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


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    cnt = (~np.isnan(a)).sum(1)
    tot = np.nansum(a, 1)
    return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def _take_border(b: PairBatch) -> np.ndarray:
    by, bc, bs = (metrics.border_colour(x).double().numpy() for x in (b.result, b.content, b.style))
    return np.array([_nearer(by[i], bs[i], bc[i]) for i in range(len(by))])


def image_columns(b: PairBatch) -> dict:
    """Generic image metrics against both images: ``pixel_rmse_*`` ([0, 1] units), ``ssim_*``,
    ``colour_stats_*`` (mean/std distance, 0–255), ``edge_corr_*`` (edge-map correlation),
    ``border_dist_*`` (RGB distance of the borders); ``take_border``: the result's border colour is
    nearer the style image's (1) or the content image's (0)."""
    cols = {}
    for name, fn in (("pixel_rmse", metrics.pixel_rmse), ("ssim", metrics.ssim),
                     ("colour_stats", metrics.colour_stats_distance), ("edge_corr", metrics.structure_similarity)):
        cols.update(b.against_both(name, fn))
    cols.update(b.against_both("border_dist", lambda y, x: metrics.colour_distance(metrics.border_colour(y),
                                                                                   metrics.border_colour(x))))
    cols["take_border"] = _take_border(b)
    return cols


def classifier_columns(b: PairBatch) -> dict:
    """With a classifier: ``gram_*`` (Gram distance on its conv activations), ``feat_cos_*`` (cosine of
    its penultimate features)."""
    if b.classifier is None:
        return {}
    net = b.classifier
    act_y = metrics.classifier_activations(net, b.result)
    fy = net.features(b.result)
    return {**b.against_both("gram", lambda y, x: metrics.gram_distance(act_y, metrics.classifier_activations(net, x))),
            **b.against_both("feat_cos", lambda y, x: metrics.cosine_similarity(fy, net.features(x)))}


def factor_columns(b: PairBatch) -> dict:
    """With a classifier and ground-truth factors: ``content_kept`` — share of the content heads whose
    prediction on the result equals the content image's factor, over the heads where content and style differ
    (``content_all``: all of them; ``keep_<head>``, ``as_style_<head>`` per head); ``style_taken`` — share of
    {predicted background, skin, hair colour; border colour} nearer (RGB) to the style image's than to the
    content image's (``take_<head>`` per head)."""
    if b.classifier is None or b.content_factors is None or b.style_factors is None:
        return {}
    cols: dict[str, np.ndarray] = {}
    pred = b.classifier.predict(b.result)
    for h in CONTENT_HEADS:
        cl = [_label(f, h) for f in b.content_factors]
        sl = [_label(f, h) for f in b.style_factors]
        differ = np.array([a != s for a, s in zip(cl, sl)])
        k = np.array([p == a for p, a in zip(pred[h], cl)], dtype=np.float64)
        st = np.array([p == s for p, s in zip(pred[h], sl)], dtype=np.float64)
        cols[f"keep_{h}"] = np.where(differ, k, np.nan)
        cols[f"as_style_{h}"] = np.where(differ, st, np.nan)
    keep = np.stack([cols[f"keep_{h}"] for h in CONTENT_HEADS], 1)
    with np.errstate(invalid="ignore"):
        cols["content_kept"] = _nanmean_rows(keep)
        cols["content_all"] = np.where(np.isnan(keep).all(1), np.nan, np.nanmin(np.where(np.isnan(keep), 1, keep), 1))
    for h in STYLE_HEADS:
        cols[f"take_{h}"] = np.array([_nearer(_hex_rgb(p), _hex_rgb(getattr(sf, h)), _hex_rgb(getattr(cf, h)))
                                      for p, sf, cf in zip(pred[h], b.style_factors, b.content_factors)])
    cols["style_taken"] = _nanmean_rows(np.stack([cols[f"take_{h}"] for h in STYLE_HEADS] + [_take_border(b)], 1))
    return cols


def paper_columns(b: PairBatch) -> dict:
    """The paper's networks where loaded: ``arcface_id_*`` (ArcFace identity cosine), ``vgg_gram_*``."""
    cols = {}
    if "arcface" in b.paper:
        ey = b.paper["arcface"].embed(b.result)
        cols.update(b.against_both("arcface_id",
                                   lambda y, x: metrics.cosine_similarity(ey, b.paper["arcface"].embed(x))))
    if "vgg" in b.paper:
        fy = b.paper["vgg"].features(b.result)
        cols.update(b.against_both("vgg_gram", lambda y, x: metrics.gram_distance(fy, b.paper["vgg"].features(x))))
    return cols


PAIR_METRIC_FAMILIES = (image_columns, classifier_columns, factor_columns, paper_columns)


def family_names(families) -> list[str]:
    """Stable names of metric families (for a run's identity)."""
    return [f"{f.__module__}.{f.__qualname__}" for f in families]


@torch.no_grad()
def pair_metrics(result: torch.Tensor, content: torch.Tensor, style: torch.Tensor, classifier=None,
                 content_factors=None, style_factors=None, paper: dict | None = None,
                 families=PAIR_METRIC_FAMILIES):
    """One row per pair (``pair_pos`` 0…N−1): the columns of every metric family (``*_content`` /
    ``*_style``: the result against the content / style image)."""
    import pandas as pd
    b = PairBatch(result.float().cpu(), content.float().cpu(), style.float().cpu(), classifier, content_factors,
                  style_factors, dict(paper or {}))
    cols: dict[str, np.ndarray] = {"pair_pos": np.arange(len(b.result))}
    for family in families:
        for name, v in family(b).items():
            if name in cols:
                raise ValueError(f"metric family {family.__name__} returns column {name!r}, which another family "
                                 "already gave; rename it")
            cols[name] = np.asarray(v, dtype=np.float64)
    return pd.DataFrame(cols)


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
    """Fréchet distance of ``feats`` to ``ref`` (features or a :class:`FrechetReference`), a bootstrap interval
    from resampling ``feats`` (indices common to all settings of the same size) and the replicates.
    Repeated samples shrink the fitted covariance and bias the replicates upwards, so they are recentred on
    the estimate before the interval is read off (differences between settings are hardly affected)."""
    ref = ref if isinstance(ref, FrechetReference) else FrechetReference(ref)
    f = np.asarray(feats, np.float64)
    est = ref.distance(f)
    if len(f) < 2:
        return est, float("nan"), float("nan"), np.full(n_boot, np.nan)
    reps = np.array([ref.distance(f[i]) for i in bootstrap_indices(len(f), n_boot, seed)])
    if math.isfinite(est):
        reps = recentre(reps, est)
    lo, hi = percentile_interval(reps, level, axis=None)
    return est, lo, hi, reps
