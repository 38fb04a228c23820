"""Procedural images made by this package, free to redistribute: the out-of-domain "paintings" and
textures of ``data/ood/`` (notebook 07), from fractal value noise, colour ramps and simple geometry.
No third-party pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["value_noise", "palette", "ood_images", "write_ood_images"]


def value_noise(size: int, rng: np.random.Generator, octaves: int = 5, base: int = 4) -> np.ndarray:
    """Fractal value noise in [0, 1] (a Perlin-like texture): random lattices at doubling
    frequencies, bicubically smoothed (smoothstep) and summed with halving amplitudes."""
    out = np.zeros((size, size))
    amp, total = 1.0, 0.0
    for o in range(octaves):
        n = base * 2 ** o
        lat = rng.random((n + 1, n + 1))
        u = np.linspace(0, n, size, endpoint=False)
        i = np.floor(u).astype(int)
        f = u - i
        f = f * f * (3 - 2 * f)
        a, b = lat[i][:, i], lat[i][:, i + 1]
        c, d = lat[i + 1][:, i], lat[i + 1][:, i + 1]
        fx, fy = f[None, :], f[:, None]
        out += amp * ((a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy)
        total += amp
        amp /= 2
    out /= total
    return (out - out.min()) / max(out.max() - out.min(), 1e-12)


def palette(t: np.ndarray, colours: Sequence[Sequence[int]]) -> np.ndarray:
    """Map t in [0, 1] through a piecewise-linear colour ramp (RGB 0–255)."""
    cs = np.asarray(colours, dtype=np.float64)
    pos = np.clip(t, 0, 1) * (len(cs) - 1)
    i = np.minimum(np.floor(pos).astype(int), len(cs) - 2)
    f = (pos - i)[..., None]
    return cs[i] * (1 - f) + cs[i + 1] * f


def ood_images(size: int = 128, seed: int = 0) -> dict[str, np.ndarray]:
    """Six procedural "paintings" and textures (uint8 size×size×3), deterministic in ``seed``:
    stripes, a sunset gradient, clouds (fractal value noise), a checkerboard, a swirl and a
    stained-glass mosaic (Voronoi cells)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    imgs = {}
    # 1. diagonal stripes in a warm ramp, with a little wobble like brush strokes
    wob = 0.03 * np.sin(2 * np.pi * 3 * y)
    t = 0.5 + 0.5 * np.sin(2 * np.pi * 6 * (x + y + wob))
    imgs["stripes"] = palette(t, [(32, 45, 110), (230, 90, 50), (250, 210, 80)])
    # 2. a sunset: vertical gradient, a sun disc, dark hills
    sky = palette(y, [(60, 40, 120), (220, 80, 90), (255, 190, 90)])
    sun = ((x - 0.65) ** 2 + (y - 0.62) ** 2) < 0.012
    sky[sun] = (255, 240, 200)
    hills = y > 0.78 + 0.06 * np.sin(2 * np.pi * 1.5 * x + 1.0)
    sky[hills] = (30, 25, 50)
    imgs["sunset"] = sky
    # 3. clouds: fractal value noise through a sky-blue ramp
    imgs["clouds"] = palette(value_noise(size, rng), [(20, 60, 150), (110, 170, 230), (245, 248, 255)])
    # 4. a rotated checkerboard in two colours
    u, v = (x - 0.5) * np.cos(0.4) - (y - 0.5) * np.sin(0.4), (x - 0.5) * np.sin(0.4) + (y - 0.5) * np.cos(0.4)
    chk = (np.floor(u * 6) + np.floor(v * 6)) % 2
    imgs["checker"] = np.where(chk[..., None] > 0, np.array([20, 110, 90.0]), np.array([240, 225, 190.0]))
    # 5. a swirl: colour by angle + radius, like a night-sky painting
    r = np.hypot(x - 0.5, y - 0.5)
    a = np.arctan2(y - 0.5, x - 0.5)
    t = 0.5 + 0.5 * np.sin(3 * a + 18 * r + 2 * value_noise(size, rng, octaves=3))
    imgs["swirl"] = palette(t, [(10, 20, 70), (40, 90, 180), (240, 220, 90)])
    # 6. stained glass: Voronoi cells with random colours and dark leading
    pts = rng.random((24, 2))
    cols = rng.integers(40, 255, size=(24, 3))
    d = (x[..., None] - pts[:, 0]) ** 2 + (y[..., None] - pts[:, 1]) ** 2
    order = np.sort(d, axis=-1)
    glass = cols[np.argmin(d, axis=-1)].astype(np.float64)
    edge = (np.sqrt(order[..., 1]) - np.sqrt(order[..., 0])) < 0.012
    glass[edge] = (25, 25, 25)
    imgs["mosaic"] = glass
    return {k: np.clip(np.round(v), 0, 255).astype(np.uint8) for k, v in imgs.items()}


def write_ood_images(folder, size: int = 128, seed: int = 0) -> list[Path]:
    """Write :func:`ood_images` as PNGs into ``folder`` (how ``data/ood/`` was made)."""
    from PIL import Image
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = ood_images(size, seed)
    for name, a in images.items():
        Image.fromarray(a).save(folder / f"{name}.png", optimize=True)
    return [folder / f"{name}.png" for name in images]
