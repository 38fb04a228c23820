"""Ground truth for content injection on the procedural faces: the *ideal* result of every pair.

The ideal of a (content, style) pair is the content image's content factors (identity and pose)
rendered in the style image's colours (:func:`diffstyle_lab.faces.avatars.ideal`). Each factor is judged
by a *counterfactual* render, the ideal with that one factor taken from the other image: a result
"has the content's pose" when, on the pixels where the two renders differ, it is nearer the ideal
than the ideal with the style image's pose.

Scores (pixel units 0…255): RMSE to the ideal, SSIM, background-region colour error, and the
*gap closed* (RMSE(style, ideal) − RMSE(result, ideal)) / (RMSE(style, ideal) − floor), where the
floor is the RMSE of the ideal itself after DDIM inversion and reconstruction. Baselines:
:func:`pixel_blend` and :func:`reinhard`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from . import avatars as A
from ..evaluate.metrics import ssim
from ..sampling import InjectionConfig, ddim_invert, reverse

# Content factors judged by counterfactuals: the pose factors one by one, and the identity
# (family + hair/eyes/mouth/clothes) as one; colours judged the same way from the other side.
LAYOUT_FACTORS = A.POSE_KEYS
IDENTITY = "identity"
HAIR = "hair"
COLOUR_FACTORS = ("background", "skin", "hair_colour")


@dataclasses.dataclass
class GroundTruthPairs:
    """Content/style pairs with their ideal and counterfactual renders (tensors in [−1, 1])."""

    content: torch.Tensor
    style: torch.Tensor
    ideal: torch.Tensor
    content_factors: list
    style_factors: list
    counterfactuals: dict          # name -> (tensor B×3×H×W, bool mask of pairs where it differs)

    def __len__(self):
        return self.content.shape[0]

    @classmethod
    def make(cls, n: int, seed: int = 90_000, size: int = 32, pose: bool = True) -> "GroundTruthPairs":
        """``n`` pairs differing in content and in background colour, deterministic in ``seed``;
        ``pose=False``: upright faces, so the content differs in identity only (hair, eyes, mouth, clothes)."""
        c, s, cf, sf = A.content_style_pairs(n, seed, size, pose=pose)
        ideals = [A.ideal(a, b) for a, b in zip(cf, sf)]
        cfs: dict[str, tuple] = {}

        def add(name, fn, differs):
            imgs = np.stack([A.render(fn(i, ideal), size) for i, ideal in enumerate(ideals)])
            cfs[name] = (A.to_tensor(imgs), np.array([differs(i) for i in range(n)]))
        for k in LAYOUT_FACTORS:
            add(k, lambda i, f, k=k: dataclasses.replace(f, **{k: getattr(sf[i], k)}),
                lambda i, k=k: getattr(cf[i], k) != getattr(sf[i], k))
        # identity: the style face's own identity (family, features) in the content's pose and the style's colours
        add(IDENTITY, lambda i, f: dataclasses.replace(sf[i], **{k: getattr(cf[i], k) for k in LAYOUT_FACTORS}),
            lambda i: any(getattr(cf[i], k) != getattr(sf[i], k) for k in ("family", "hair", "eyes", "mouth")))
        # hair shape, within a family (variants differ between families)
        add(HAIR, lambda i, f: dataclasses.replace(f, hair=sf[i].hair) if cf[i].family == sf[i].family else f,
            lambda i: cf[i].family == sf[i].family and cf[i].hair != sf[i].hair)
        for k in COLOUR_FACTORS:
            add(k, lambda i, f, k=k: A.recolour(f, k, cf[i]),
                lambda i, k=k: getattr(A.recolour(ideals[i], k, cf[i]), k) != getattr(ideals[i], k))
        return cls(A.to_tensor(c), A.to_tensor(s), A.to_tensor(np.stack([A.render(f, size) for f in ideals])),
                   cf, sf, cfs)

    def subset(self, idx) -> "GroundTruthPairs":
        idx = list(idx)
        return GroundTruthPairs(self.content[idx], self.style[idx], self.ideal[idx],
                                [self.content_factors[i] for i in idx], [self.style_factors[i] for i in idx],
                                {k: (v[idx], m[idx]) for k, (v, m) in self.counterfactuals.items()})


def rmse255(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image RMSE in 0…255 units (over ``mask``'s pixels when given; NaN where it is empty)."""
    d = ((a.float() - b.float()) * 127.5).pow(2).mean(1)  # B×H×W
    if mask is None:
        return d.flatten(1).mean(1).sqrt()
    m = mask.float()
    return ((d * m).flatten(1).sum(1) / m.flatten(1).sum(1)).sqrt()


def pixel_blend(content: torch.Tensor, style: torch.Tensor, w_style: float = 0.7) -> torch.Tensor:
    """The cheapest trick: w·style + (1 − w)·content."""
    return w_style * style + (1 - w_style) * content


def reinhard(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Reinhard-style colour transfer in RGB: the content image with each channel's mean and
    standard deviation matched to the style image's."""
    mc, sc = content.mean((2, 3), keepdim=True), content.std((2, 3), keepdim=True)
    ms, ss = style.mean((2, 3), keepdim=True), style.std((2, 3), keepdim=True)
    return ((content - mc) / sc.clamp_min(1e-6) * ss + ms).clamp(-1, 1)


def score(result: torch.Tensor, gt: GroundTruthPairs) -> dict[str, np.ndarray]:
    """Per-pair scores of ``result`` against the ground truth.

    ``rmse``/``ssim``: to the ideal; ``rmse_bg``/``rmse_fg``: background and face regions;
    ``<factor>``: 1.0 if most pixels of the factor's footprint (where the ideal and its counterfactual
    differ) are nearer the ideal than the counterfactual, 0.0 if not, NaN where content and style
    agree on that factor (no evidence). A pixel vote, so a face that moved over part of the
    footprint does not decide a colour."""
    result = result.float().clamp(-1, 1)
    # each factor's footprint: where the ideal and its counterfactual differ (background: the background)
    regions = {name: (gt.ideal - alt).abs().amax(1) > 1e-3 for name, (alt, _) in gt.counterfactuals.items()}
    bg = regions["background"]
    out = {"rmse": rmse255(result, gt.ideal).numpy(), "ssim": ssim(result, gt.ideal).numpy(),
           "rmse_bg": rmse255(result, gt.ideal, bg).numpy(), "rmse_fg": rmse255(result, gt.ideal, ~bg).numpy()}
    for name, (alt, differs) in gt.counterfactuals.items():
        region = regions[name]
        nearer = (result - gt.ideal).pow(2).sum(1) < (result - alt).pow(2).sum(1)
        votes = (nearer & region).flatten(1).sum(1).float() / region.flatten(1).sum(1).clamp_min(1)
        v = (votes > 0.5).float().numpy()
        v[~(differs & region.flatten(1).any(1).numpy())] = np.nan
        out[name] = v
    return out


def gap_closed(rmse_result: np.ndarray, rmse_style: np.ndarray, rmse_floor: np.ndarray) -> float:
    """Share of the gap between doing nothing (the style image) and the reconstruction floor that
    the result closes, on the means over pairs."""
    return float((rmse_style.mean() - rmse_result.mean()) / (rmse_style.mean() - rmse_floor.mean()))


@torch.no_grad()
def transfer_scores(model, gt: GroundTruthPairs, configs: dict, steps: int = 50) -> dict[str, dict]:
    """Per-pair scores of content injection for each :class:`InjectionConfig` in ``configs`` (any keys),
    with the references every score needs: ``"style"`` (doing nothing), ``"floor"`` (the ideal
    inverted and reconstructed), ``"blend"`` and ``"reinhard"``. ``steps`` inversion steps."""
    inv = {k: ddim_invert(model, getattr(gt, k), steps, progress=False) for k in ("content", "style", "ideal")}
    recon = reverse(model, inv["ideal"].x_T, None, InjectionConfig(t_boost=0, steps=steps), progress=False)
    out = {"style": score(gt.style, gt), "floor": score(recon, gt),
           "blend": score(pixel_blend(gt.content, gt.style), gt), "reinhard": score(reinhard(gt.content, gt.style), gt)}
    for name, cfg in configs.items():
        out[name] = score(reverse(model, inv["style"].x_T, inv["content"], cfg, progress=False), gt)
    return out
