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
    fa = torch.cat([a.flatten(2).mean(2), a.flatten(2).std(2)], 1)
    fb = torch.cat([b.flatten(2).mean(2), b.flatten(2).std(2)], 1)
    return (fa - fb).norm(dim=1) * 127.5
