"""Loading for the notebooks: the model, the sample images and any folder of images at the model's
size, DDIM inversions kept per image (:class:`InversionStore`), the model's own injection settings
(:func:`config`, :func:`varied`, :func:`save_settings`) and the h grid (:func:`h_shape`, masks on it).
Part of :mod:`diffstyle_lab.lab.notebook`, which re-exports everything."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..fileio import write_json
from ..models import data_path

__all__ = ["load", "injection_defaults", "data_path", "ood_folder", "load_folder", "sample_images", "sample_pairs",
           "stopwatch", "float64_copy", "InversionStore", "h_shape", "mask_from_cells", "upsample_mask", "config", "varied",
           "save_settings", "SETTINGS_FILE", "CHECKED_FIELDS", "load_images", "load_pairs"]


# ---------------------------------------------------------------------------------------------
# Model and images

def load(model=None, device: str | None = None, threads: int | None = None):
    """The model a notebook runs on: ``None`` (or ``"default"``) → the embedded default model,
    anything else → :func:`diffstyle_lab.load_model` (a local folder or a pinned hub id).

    ``threads``: torch's CPU thread count for the kernel (None: torch's default). The small default
    model gains nothing from several threads, and on a busy machine they can make a step far slower."""
    from ..devices import pick_device
    from ..models import load_default_model, load_model
    if threads:
        torch.set_num_threads(int(threads))
    dev = pick_device(device, what="device")
    if model is None or str(model) in ("", "default", "faces32"):
        return load_default_model(device=dev)
    return load_model(model, device=dev)


def injection_defaults(model, t_edit: int | None = None, t_boost: int | None = None) -> tuple[int, int]:
    """``(t_edit, t_boost)``: the values given, and for those left None the model's own defaults
    (:meth:`InjectionConfig.for_model`)."""
    from ..sampling import InjectionConfig
    cfg = InjectionConfig.for_model(model)
    return int(cfg.t_edit if t_edit is None else t_edit), int(cfg.t_boost if t_boost is None else t_boost)


def ood_folder() -> Path:
    """``data/ood`` (the shipped out-of-domain style images, made by :mod:`diffstyle_lab.faces.procedural`)."""
    return data_path("ood")


def load_folder(folder, size: int, fit: str = "crop") -> tuple[torch.Tensor, list[str]]:
    """Every image of a folder as an N×3×size×size tensor in [−1, 1], and the file stems."""
    from ..images import list_images, load_image
    files = list_images(folder)
    return torch.cat([load_image(f, size, fit=fit) for f in files]), [f.stem for f in files]


def sample_images(kind: str = "content", size: int = 32) -> tuple[torch.Tensor, list[str]]:
    """The shipped sample faces ``diffstyle_lab/data/samples/<kind>/*.png`` (kind: ``content`` | ``style``)."""
    if kind not in ("content", "style"):
        raise ValueError(f"kind={kind!r}: choose 'content' or 'style'")
    return load_folder(data_path("samples", kind), size)


def sample_pairs(size: int, n_pairs: int, content_dir=None, style_dir=None):
    """Up to ``n_pairs`` (content, style) pairs zipped in order: the shipped sample faces, or the
    images of ``content_dir`` / ``style_dir``. Returns ``(content, style, c_names, s_names)``."""
    content, c_names = load_folder(content_dir, size) if content_dir else sample_images("content", size)
    style, s_names = load_folder(style_dir, size) if style_dir else sample_images("style", size)
    n = min(n_pairs, len(content), len(style))
    return content[:n], style[:n], c_names[:n], s_names[:n]


def float64_copy(model):
    """A float64 copy of ``model`` for the notebooks' exact by-hand checks (``model`` is untouched).

    Cast with torch's own ``Module.to``: diffusers' ``ModelMixin.to(dtype=…)`` logs "There are modules
    in UNet2DModel that should be kept in float32: []" on every cast, even when that list is empty
    (its check ``fp32_modules is not None`` is always true), which printed a warning into three
    notebooks. The weights hash is recomputed for the new dtype, as ``DiffusionModel.to`` does."""
    import copy
    m64 = copy.deepcopy(model)
    torch.nn.Module.to(m64.unet, dtype=torch.float64)
    m64._weights_hash = None
    return m64


class stopwatch:
    """``with stopwatch() as sw: …`` then ``sw.seconds`` (wall clock)."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.seconds = float("nan")
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        return False


# ---------------------------------------------------------------------------------------------
# Inversions, once per image

class InversionStore:
    """DDIM inversions kept in memory per image, so a widget that re-renders never inverts again.

    ``store(images)`` returns an :class:`~diffstyle_lab.sampling.Inversion` for the batch (``hits``/
    ``misses`` count the images seen before or not). ``disk``: ``None``/``False`` — memory only;
    ``True`` — also the default :class:`~diffstyle_lab.cache.InversionCache`; a path — one there.
    """

    def __init__(self, model, steps: int = 50, spacing: str = "authors", record_last: bool = True, disk=None):
        from ..cache import InversionCache
        self.model, self.steps, self.spacing, self.record_last = model, int(steps), spacing, record_last
        self.disk = (InversionCache() if disk is True else InversionCache(disk)) if disk else None
        self._mem: dict[str, object] = {}
        self.hits, self.misses, self.seconds = 0, 0, 0.0

    def __call__(self, images: torch.Tensor):
        from ..cache import InversionCache, cached_invert
        from ..sampling import Inversion, check_images
        x = check_images(self.model, images)
        keys = [InversionCache.key(self.model, xi, self.steps, self.spacing, self.record_last) for xi in x]
        miss = [k for k in keys if k not in self._mem]
        self.hits += len(keys) - len(miss)
        self.misses += len(miss)
        todo = list(dict.fromkeys(miss))            # the same image twice in one batch is inverted once
        if todo:
            t0 = time.perf_counter()
            inv = cached_invert(self.model, x[[keys.index(k) for k in todo]], self.steps, self.spacing,
                                record_last=self.record_last, progress=False, cache=self.disk)
            self.seconds += time.perf_counter() - t0
            for j, k in enumerate(todo):
                self._mem[k] = inv.select([j])
        return Inversion.cat([self._mem[k] for k in keys])

    def __len__(self):
        return len(self._mem)


# ---------------------------------------------------------------------------------------------
# The h grid: its shape, masks on it

def h_shape(model) -> tuple[int, ...]:
    """C×H×W of h for ``model`` at its own image size."""
    from ..cache import h_shape as shape_of_h
    return shape_of_h(model, (model.in_channels, model.sample_size, model.sample_size))


def mask_from_cells(cells, shape: tuple[int, int] | None = None) -> torch.Tensor:
    """An h×w float mask of 0/1 from rows of values (``cells[i][j]``, truthy = inside), or from a
    set of ``(i, j)`` cells with ``shape`` given."""
    if isinstance(cells, (set, frozenset)):
        if shape is None:
            raise ValueError("mask_from_cells: a set of (i, j) cells needs shape=(h, w)")
        m = torch.zeros(shape)
        for i, j in cells:
            m[i, j] = 1.0
        return m
    m = torch.as_tensor(np.asarray(cells, dtype=np.float32))
    if m.dim() != 2:
        raise ValueError(f"mask_from_cells: give h rows of w values, got shape {tuple(m.shape)}")
    return (m > 0).float()


def upsample_mask(mask: torch.Tensor, size: int) -> torch.Tensor:
    """An h×w mask shown at image resolution (nearest neighbour): size×size."""
    m = torch.as_tensor(mask, dtype=torch.float32)
    return torch.nn.functional.interpolate(m[None, None], size=(size, size), mode="nearest")[0, 0]


# ---------------------------------------------------------------------------------------------
# Settings: the model's own defaults

def config(model, **overrides):
    """The :class:`~diffstyle_lab.sampling.InjectionConfig` every injection of a notebook starts from:
    the model's stored defaults (:meth:`InjectionConfig.for_model`), then ``overrides`` — the
    parameters a notebook varies *on purpose* (``None`` values are dropped, so a parameter left
    ``None`` keeps the model's default). ``t_boost`` is clipped to ``t_edit`` (boosting follows editing)."""
    from ..sampling import InjectionConfig
    kw = {k: v for k, v in overrides.items() if v is not None}
    base = InjectionConfig.for_model(model)
    t_edit = int(kw.get("t_edit", base.t_edit))
    kw["t_boost"] = min(int(kw.get("t_boost", base.t_boost)), t_edit)
    return InjectionConfig.for_model(model, **kw)


def varied(cfg, model, fields: Sequence[str] = ("gamma", "t_edit", "t_boost", "calibrate", "omega", "method")) -> str:
    """One line naming the settings of ``cfg`` that differ from the model's stored defaults (what a
    figure varies on purpose), or saying that it uses the model's defaults."""
    from ..sampling import InjectionConfig
    base = InjectionConfig.for_model(model)
    diff = [f"{k}={getattr(cfg, k)!r} (model default {getattr(base, k)!r})" for k in fields
            if getattr(cfg, k) != getattr(base, k)]
    shown = ", ".join(f"{k}={getattr(base, k)!r}" for k in fields)
    return ("settings: the model's defaults (" + shown + ")") if not diff else \
        "settings varied on purpose: " + "; ".join(diff) + "; everything else the model's defaults"


SETTINGS_FILE = "settings.json"
CHECKED_FIELDS = ("gamma", "t_edit", "t_boost", "calibrate", "omega", "method")


def save_settings(out_dir, model, cfg, **on_purpose) -> dict:
    """Record the settings a notebook injected with: ``out_dir/settings.json`` with the config its
    injections start from, the model's stored defaults, and ``on_purpose`` — ``{field: why}`` for
    the fields a figure varies on purpose (a test checks every other field equals the model's
    default). Returns the record; writes nothing when ``out_dir`` is falsy."""
    import dataclasses
    from ..sampling import InjectionConfig

    def plain(c):
        return {k: v for k, v in dataclasses.asdict(c).items() if k in CHECKED_FIELDS}
    rec = {"model": str(getattr(model, "source", model)), "config": plain(cfg),
           "model_defaults": plain(InjectionConfig.for_model(model)), "varied_on_purpose": dict(on_purpose)}
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_json(Path(out_dir) / SETTINGS_FILE, rec)
    return rec


# ---------------------------------------------------------------------------------------------
# Images: any folder, at the model's size

def load_images(folder, size: int, what: str = "images", fit: str = "crop") -> tuple[torch.Tensor, list[str]]:
    """:func:`load_folder` with a one-line error for a folder that is missing or holds no image."""
    from ..images import list_images
    p = Path(folder).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"{what}: {p} is not a folder; pass a folder of images (png, jpg, …)")
    try:
        list_images(p)
    except ValueError as e:        # ImageError: an empty folder, a folder named like an image
        raise ValueError(f"{what}: {e}") from None
    return load_folder(p, size, fit=fit)


def load_pairs(model, n_pairs: int, content_dir=None, style_dir=None):
    """Up to ``n_pairs`` (content, style) pairs at the model's own size: the images of ``content_dir`` /
    ``style_dir`` (any size; centre-cropped and resized), each defaulting to the shipped sample faces
    (``data/samples/content`` and ``data/samples/style``). Returns ``(content, style, c_names, s_names)``."""
    size = model.sample_size
    content, c_names = load_images(content_dir or data_path("samples", "content"), size, "content_dir")
    style, s_names = load_images(style_dir or data_path("samples", "style"), size, "style_dir")
    n = min(int(n_pairs), len(content), len(style))
    if n < 1:
        raise ValueError(f"n_pairs={n_pairs}: ask for at least one pair")
    return content[:n], style[:n], c_names[:n], s_names[:n]
