"""Image input and output: any Pillow-readable file to a tensor in [−1, 1], and back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class ImageError(ValueError):
    """An input file that cannot be read as an image; the message names the file and the fix."""


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


def open_image(path):
    """Any Pillow-readable file as a loaded PIL image, EXIF orientation applied: the one way images and
    masks are read. A missing, broken or decompression-bomb file, or a folder, is an :class:`ImageError`."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    p = Path(path)
    if p.is_dir():
        raise ImageError(f"{p}: is a folder, not an image file; pass an image file")
    if not p.is_file():
        raise ImageError(f"{p}: no such file")
    try:
        with Image.open(p) as im:
            im.load()
            return ImageOps.exif_transpose(im)
    except Image.DecompressionBombError as e:
        raise ImageError(f"{p}: image too large to read safely ({e}); shrink it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{p}: not a readable image ({type(e).__name__}); pass a PNG/JPEG/WebP… file") from None


def _to_8bit(im, p):
    """16-bit, 32-bit integer and 32-bit float single-channel images → 8-bit greyscale.

    Pillow's own ``convert`` clips these at 255 (a float image in [0, 1] would turn black)."""
    from PIL import Image
    if not (im.mode.startswith("I;16") or im.mode in ("I", "F")):
        return im
    a = np.asarray(im).astype(np.float64)
    if not np.isfinite(a).all():
        raise ImageError(f"{p}: {im.mode}-mode image holds NaN or inf pixels; save it as an 8- or 16-bit image")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if im.mode == "F":
        if lo >= 0 and hi <= 1:
            a = a * 255.0                         # floating-point images in [0, 1]
        elif lo < 0 or hi > 255:
            raise ImageError(f"{p}: 32-bit float pixels range over [{lo:.3g}, {hi:.3g}], neither [0, 1] nor "
                             "[0, 255]; rescale it or save it as an 8- or 16-bit image")
    elif im.mode != "I" or hi > 255:
        a = a / 257.0                             # 16 bits (also 16-bit data stored as mode I)
    return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8))


def load_image(path, size: int, fit: str = "crop") -> torch.Tensor:
    """Read any Pillow-readable image as a 1×3×size×size tensor in [−1, 1].

    EXIF orientation is applied; RGBA/LA/P are composited on white; greyscale (8, 16 or 32 bits,
    floating-point in [0, 1] or [0, 255]) and CMYK are converted to RGB. Non-square images are
    centre-cropped (``fit='crop'``) or padded with white (``fit='pad'``), then resized with Lanczos.
    """
    from PIL import Image
    if fit not in ("crop", "pad"):
        raise ValueError(f"fit={fit!r}: choose 'crop' or 'pad'")
    im = _to_8bit(open_image(path), Path(path))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA"))
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


def load_mask(path) -> torch.Tensor:
    """A mask image as an H×W float tensor in [0, 1] (white = 1), read like every image
    (:func:`open_image`); it keeps its resolution (it is resized to h's grid when used)."""
    im = _to_8bit(open_image(path), Path(path))
    return torch.from_numpy(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)


def check_range(x: torch.Tensor, name: str = "images", tol: float = 1e-3) -> None:
    """Refuse images outside [−1, 1] (the range the models are trained on), naming the range found."""
    lo, hi = float(x.min()), float(x.max())
    if lo < -1 - tol or hi > 1 + tol:
        raise ValueError(f"{name} range over [{lo:.4g}, {hi:.4g}] but must lie in [-1, 1]: map [0, 1] data with "
                         "x*2-1, [0, 255] data with x/127.5-1, or read files with diffstyle_lab.images.load_image")


def list_images(path) -> list[Path]:
    """A file, or the image files of a folder (sorted)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        folders = [f.name for f in files if f.is_dir()]
        if folders:
            raise ImageError(f"{p}: {', '.join(folders)} is a folder with an image name; rename it or move it "
                             f"out of {p}")
        if not files:
            raise ImageError(f"{p}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if not p.exists():
        raise ImageError(f"{p}: no such file or folder")
    return [p]


def one_line(text) -> str:
    """``str(text)`` with every non-printable character (newline, tab, control) written as its escape: file
    names hold anything but a slash, and a label or an error message must stay one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


GRID_MIN_CELL = 128     # px: a grid cell smaller than this is upscaled (nearest neighbour) to at least this


def grid(images: torch.Tensor, nrow: int = 8, pad: int = 1, scale: int | None = 1, row_labels=None,
         col_labels=None, font_size: int = 13):
    """B×C×H×W in [−1, 1] → one PIL image with ``nrow`` images per row.

    ``scale``: an integer factor applied with nearest-neighbour upscaling (pixels stay sharp squares);
    ``None`` picks the smallest factor that makes a cell at least :data:`GRID_MIN_CELL` px wide (1 for
    images that already are). ``row_labels`` / ``col_labels`` (e.g. file names) are written left of each
    row and above each column, cut with "…" to fit."""
    b, c, h, w = images.shape
    rows = (b + nrow - 1) // nrow
    out = torch.ones(c, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(b):
        r, k = divmod(i, nrow)
        out[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = images[i]
    img = to_pil(out)
    k = max(1, -(-GRID_MIN_CELL // max(h, w))) if scale is None else int(scale)
    if k < 1:
        raise ValueError(f"grid: scale={scale}: use a whole number ≥ 1, or None to pick one")
    if k > 1:
        from PIL import Image
        img = img.resize((img.width * k, img.height * k), Image.NEAREST)
    if not row_labels and not col_labels:
        return img
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default(size=font_size)
    cell_w, cell_h = (w + pad) * k, (h + pad) * k
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def width(t):
        return measure.textlength(t, font=font)

    def fit(t, room):
        t = str(t)
        while t and width(t) > room:
            t = t[:-2] + "…" if len(t) > 1 else ""
        return t
    row_labels = [one_line(t) for t in (row_labels or [])]
    col_labels = [one_line(t) for t in (col_labels or [])]
    left = 0 if not row_labels else int(min(max(width(t) for t in row_labels) + 10, 220))
    top = 0 if not col_labels else font_size + 10
    canvas = Image.new(img.mode if img.mode == "RGB" else "RGB", (img.width + left, img.height + top), "white")
    canvas.paste(img.convert("RGB"), (left, top))
    d = ImageDraw.Draw(canvas)
    for j, t in enumerate(col_labels or []):
        t = fit(t, cell_w - 4)
        d.text((left + pad * k + j * cell_w + (cell_w - pad * k - width(t)) / 2, 4), t, fill="black", font=font)
    for i, t in enumerate(row_labels):
        t = fit(t, left - 8)
        d.text((left - 5 - width(t), top + pad * k + i * cell_h + (cell_h - pad * k - font_size) / 2), t,
               fill="black", font=font)
    return canvas
