"""Image metrics that run anywhere (no downloaded networks).

Images are tensors in [−1, 1], B×3×H×W. Each function returns one value per image (a tensor of B).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, images mapped to [0, 1]."""
    mse = ((a.clamp(-1, 1) - b.clamp(-1, 1)) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def border_colour(x: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Median RGB (in [0, 255]) of the outer ``width``-pixel ring: the background colour of a face."""
    b, c, h, w = x.shape
    m = torch.zeros(h, w, dtype=torch.bool)
    m[:width], m[-width:], m[:, :width], m[:, -width:] = True, True, True, True
    ring = x[:, :, m]                                   # B×C×N
    return ((ring.median(dim=2).values + 1) * 127.5)


def colour_distance(rgb_a: torch.Tensor, rgb_b: torch.Tensor) -> torch.Tensor:
    """Euclidean distance between RGB triples in [0, 255]."""
    return (rgb_a.float() - rgb_b.float()).norm(dim=-1)


def _grey(x):
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]


def edge_map(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the grey image (B×1×H×W)."""
    k = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
    g = _grey(x)
    gx = F.conv2d(g, k.view(1, 1, 3, 3).to(x), padding=1)
    gy = F.conv2d(g, k.t().reshape(1, 1, 3, 3).to(x), padding=1)
    return (gx ** 2 + gy ** 2).sqrt()


def structure_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the edge maps of a and b: shape/layout likeness, blind to colours."""
    ea, eb = edge_map(a).flatten(1), edge_map(b).flatten(1)
    ea, eb = ea - ea.mean(1, keepdim=True), eb - eb.mean(1, keepdim=True)
    return (ea * eb).sum(1) / (ea.norm(dim=1) * eb.norm(dim=1)).clamp_min(1e-12)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Structural similarity (mean over channels and pixels; uniform window), images in [−1, 1]."""
    a, b = (a + 1) / 2, (b + 1) / 2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    pool = lambda x: F.avg_pool2d(x, window, 1, window // 2, count_include_pad=False)  # noqa: E731
    mu_a, mu_b = pool(a), pool(b)
    saa, sbb, sab = pool(a * a) - mu_a ** 2, pool(b * b) - mu_b ** 2, pool(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return s.flatten(1).mean(1)


def colour_stats_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance between per-channel mean and standard deviation (the colour statistics), [0, 255] units."""
    fa, fb = (torch.cat([x.flatten(2).mean(2), x.flatten(2).std(2)], 1) for x in (a, b))
    return (fa - fb).norm(dim=1) * 127.5


def pixel_rmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Root-mean-square pixel difference with images mapped to [0, 1] (0 = identical, 1 = black vs white)."""
    return ((a.float() - b.float()) / 2).pow(2).flatten(1).mean(1).sqrt()


def ssim_distance(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """1 − SSIM (0 for identical images)."""
    return 1 - ssim(a, b, window)


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """B×C×H×W feature maps → B×C×C Gram matrices F·Fᵀ/(H·W)."""
    b, c = f.shape[:2]
    f = f.reshape(b, c, -1).float()
    return f @ f.transpose(1, 2) / f.shape[-1]


def gram_distance(feats_a, feats_b) -> torch.Tensor:
    """Style distance between two lists of feature maps: the mean over layers of the mean squared
    difference of their Gram matrices (Gatys et al.'s style loss up to constant factors)."""
    if len(feats_a) != len(feats_b) or not feats_a:
        raise ValueError("gram_distance needs two equally long, non-empty lists of feature maps")
    per_layer = [(gram_matrix(x) - gram_matrix(y)).pow(2).flatten(1).mean(1) for x, y in zip(feats_a, feats_b)]
    return torch.stack(per_layer, 1).mean(1)


#: indices into ``FactorNet.body`` whose outputs (the activations after each conv) the Gram metric uses
CLASSIFIER_GRAM_LAYERS = (1, 3, 6, 8, 11)


def layer_outputs(seq, x: torch.Tensor, layers) -> list[torch.Tensor]:
    """The outputs of the modules of ``seq`` (an ``nn.Sequential``) whose index is in ``layers``."""
    want, out, last = set(layers), [], max(layers)
    for k, mod in seq.named_children():
        x = mod(x)
        if int(k) in want:
            out.append(x)
        if int(k) >= last:
            break
    if len(out) != len(want):
        raise ValueError(f"layers={layers}: the network has {len(seq)} modules")
    return out


@torch.no_grad()
def classifier_activations(net, x: torch.Tensor, layers=CLASSIFIER_GRAM_LAYERS) -> list[torch.Tensor]:
    """Intermediate activations of the factor classifier's conv stack (``net.body``) at ``layers``."""
    if x.shape[-1] != 32:
        x = F.interpolate(x, size=(32, 32), mode="area")
    return layer_outputs(net.body, x, layers)


def classifier_gram_distance(net, a: torch.Tensor, b: torch.Tensor, layers=CLASSIFIER_GRAM_LAYERS) -> torch.Tensor:
    """Gram-matrix style distance between ``a`` and ``b`` on the factor classifier's conv activations."""
    return gram_distance(classifier_activations(net, a, layers), classifier_activations(net, b, layers))


def cosine_similarity(fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """Per-row cosine similarity of two B×D feature batches."""
    fa, fb = fa.flatten(1).float(), fb.flatten(1).float()
    return (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(1e-12)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels, in [0, 255] units (clamped images)."""
    x = x.clamp(-1, 1)
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    return (dx + dy) / 2 * 127.5


def measures(result: torch.Tensor, content: torch.Tensor | None = None, style: torch.Tensor | None = None):
    """Per-image measures (a pandas DataFrame, one row per image) of ``result`` against its content and style
    images (``*`` = ``content`` / ``style``): ``struct_*`` edge-map correlation (blind to colour), ``bg_dist_*``
    border (background) colour distance (0–441), ``colour_dist_*`` distance of per-channel mean and s.d.,
    ``psnr_*`` PSNR in dB; ``out_of_range`` share of raw values outside [−1, 1] (before clamping); ``tv`` total
    variation (mean neighbour difference, 0–255: noise and blotches raise it)."""
    import numpy as np
    import pandas as pd
    r = result.detach().float().cpu()
    out = {"out_of_range": (r.abs() > 1.0).float().flatten(1).mean(1), "tv": total_variation(r)}
    rc = r.clamp(-1, 1)
    for name, ref in (("content", content), ("style", style)):
        if ref is None:
            continue
        ref = ref.detach().float().cpu().expand_as(rc)
        out[f"struct_{name}"] = structure_similarity(rc, ref)
        out[f"bg_dist_{name}"] = colour_distance(border_colour(rc), border_colour(ref))
        out[f"colour_dist_{name}"] = colour_stats_distance(rc, ref)
        out[f"psnr_{name}"] = psnr(rc, ref)
    return pd.DataFrame({k: v.numpy().astype(np.float64) for k, v in out.items()})
