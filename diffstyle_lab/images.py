"""Image input and output: any Pillow-readable file to a tensor in [−1, 1], and back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class ImageError(ValueError):
    pass


def to_tensor(img) -> torch.Tensor:
    """PIL image or H×W×3 uint8 array → 1×3×H×W float tensor in [−1, 1]."""
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.dtype != np.uint8:
        raise ImageError(f"expected uint8 pixels, got {a.dtype}")
    return torch.from_numpy(a[..., :3].copy()).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)


def to_pil(x: torch.Tensor):
    """C×H×W (or 1×C×H×W) tensor in [−1, 1] → PIL image."""
    from PIL import Image
    if x.dim() == 4:
        x = x[0]
    a = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)


def load_image(path, size: int, fit: str = "crop") -> torch.Tensor:
    """Read any Pillow-readable image as a 1×3×size×size tensor in [−1, 1].

    EXIF orientation is applied; RGBA/LA/P are composited on white; greyscale and CMYK are
    converted to RGB. Non-square images are centre-cropped (``fit='crop'``) or padded with white
    (``fit='pad'``), then resized with Lanczos.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError
    if fit not in ("crop", "pad"):
        raise ValueError(f"fit={fit!r}: choose 'crop' or 'pad'")
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"{p}: no such file")
    try:
        with Image.open(p) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
    except Image.DecompressionBombError as e:
        raise ImageError(f"{p}: image too large to read safely ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageError(f"{p}: not a readable image ({type(e).__name__}); pass a PNG/JPEG/WebP… file") from None
    if im.mode.startswith("I;16") or im.mode == "I":
        # 16-bit greyscale (e.g. 16-bit PNG): Pillow's convert() would clip at 255, not rescale
        a = np.asarray(im).astype(np.float64)
        if im.mode != "I" or a.max() > 255:
            a = a / 257.0
        im = Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    im = im.convert("RGB")
    w, h = im.size
    if fit == "crop":
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    else:
        s = max(w, h)
        canvas = Image.new("RGB", (s, s), (255, 255, 255))
        canvas.paste(im, ((s - w) // 2, (s - h) // 2))
        im = canvas
    if im.size != (size, size):
        im = im.resize((size, size), Image.LANCZOS)
    return to_tensor(im)


def list_images(path) -> list[Path]:
    """A file, or the image files of a folder (sorted)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ImageError(f"{p}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if not p.exists():
        raise ImageError(f"{p}: no such file or folder")
    return [p]


def grid(images: torch.Tensor, nrow: int = 8, pad: int = 1):
    """B×C×H×W in [−1, 1] → one PIL image with ``nrow`` images per row."""
    b, c, h, w = images.shape
    rows = (b + nrow - 1) // nrow
    out = torch.ones(c, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(b):
        r, k = divmod(i, nrow)
        out[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = images[i]
    return to_pil(out)
