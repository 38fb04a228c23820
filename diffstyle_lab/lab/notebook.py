"""Figures and widgets for the notebooks in ``notebooks/`` (plus loading the model, the sample images
and per-notebook cached inversions). Every interactive view also has a **static path** (a grid of
fixed settings drawn as one figure), so a notebook executed by papermill shows the figures a reader
gets by moving the sliders. Only :class:`Explorer` and :func:`mask_toggles` need ipywidgets (the
``notebooks`` extra).
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..models import data_path  # noqa: F401  (nb.data_path: the checkout's data/, else the shipped data)

__all__ = ["load", "injection_defaults", "data_path", "sample_images", "sample_pairs", "load_folder", "InversionStore",
           "to_rgb", "grid_figure", "row_figure", "png_bytes", "show", "save_figure", "Explorer", "mask_toggles",
           "mask_from_cells", "upsample_mask", "h_shape", "ood_folder", "stopwatch", "config", "varied", "save_settings",
           "load_images", "load_pairs", "baseline_images", "reference_measures", "draw_references", "compare",
           "claim", "claims", "effect", "interval_text", "gap_sentence", "model_folder", "read_summary", "paper_box",
           "show_box", "NO_INJECTION", "PIXEL_BLEND", "REINHARD", "REFERENCES"]


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
# Figures

def to_rgb(x) -> np.ndarray:
    """An image tensor (C×H×W or 1×C×H×W, values in [−1, 1]) → H×W×3 floats in [0, 1];
    a 2-D tensor/array is returned as float numpy unchanged (drawn with a colour map)."""
    if torch.is_tensor(x):
        x = x.detach().float().cpu()
        if x.dim() == 4:
            if x.shape[0] != 1:
                raise ValueError(f"to_rgb: one image at a time, got a batch of {x.shape[0]}")
            x = x[0]
        if x.dim() == 2:
            return x.numpy()
        a = ((x.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
        return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a
    a = np.asarray(x)
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)


def _draw(ax, img, cmap="magma"):
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    if img is None:
        ax.axis("off")
        return
    a = to_rgb(img)
    kw = {}
    if a.ndim == 2 and a.size and np.nanmin(a) == np.nanmax(a):
        # a constant map (e.g. a mask that is on everywhere): imshow would auto-scale it to one end of
        # the colour map; draw it on [0, 1] (or on [0, v] / [v, 0]) instead
        v = float(np.nanmax(a))
        kw = dict(vmin=min(0.0, v), vmax=max(1.0, v))
    ax.imshow(a, cmap=cmap if a.ndim == 2 else None, interpolation="nearest", **kw)


def grid_figure(rows: Sequence[Sequence], row_labels: Sequence[str] | None = None,
                col_labels: Sequence[str] | None = None, title: str | None = None, cell: float = 1.35,
                cmap: str = "magma"):
    """A matplotlib figure of images: ``rows`` is a list of rows, each a list of images (image
    tensors in [−1, 1], uint8 arrays, 2-D maps drawn with ``cmap``, or None for a blank cell).
    ``col_labels`` go above the first row, ``row_labels`` left of each row."""
    import matplotlib.pyplot as plt
    nr = len(rows)
    nc = max((len(r) for r in rows), default=1)
    left = 0.0 if not row_labels else 0.9
    fig, axes = plt.subplots(nr, nc, figsize=(left + cell * nc, 0.35 * bool(title) + (cell + 0.25) * nr),
                             squeeze=False)
    for i, r in enumerate(rows):
        for j in range(nc):
            _draw(axes[i, j], r[j] if j < len(r) else None, cmap)
            if i == 0 and col_labels is not None and j < len(col_labels):
                axes[i, j].set_title(col_labels[j], fontsize=8)
        if row_labels is not None and i < len(row_labels):
            axes[i, 0].axis("on")                  # a blank cell still shows its label (_draw hid ticks and spines)
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def row_figure(panels: Mapping[str, object], title: str | None = None, cell: float = 1.6):
    """One row of labelled images: ``{"content": img, "style": img, "result": img}``."""
    return grid_figure([list(panels.values())], col_labels=list(panels.keys()), title=title, cell=cell)


def png_bytes(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (independent of the matplotlib backend)."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def show(fig, dpi: int = 100) -> None:
    """Display a figure once, as a PNG, and close it, whatever the kernel's matplotlib backend
    (returns None, so a cell ending with ``nb.show(fig)`` shows it only once)."""
    import matplotlib.pyplot as plt
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
        if get_ipython() is not None:
            display(Image(data=png_bytes(fig, dpi)))
    except ImportError:  # pragma: no cover
        pass
    plt.close(fig)


def save_figure(fig, out_dir, name: str, dpi: int = 130) -> Path | None:
    """Save ``fig`` as ``out_dir/name`` (``.png`` added if no suffix); nothing when out_dir is falsy."""
    if not out_dir:
        return None
    p = Path(out_dir) / (name if Path(name).suffix else name + ".png")
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=dpi, bbox_inches="tight")
    return p


# ---------------------------------------------------------------------------------------------
# Interactive views with a static path

def _same(a, b) -> bool:
    if torch.is_tensor(a) and torch.is_tensor(b):
        return a.shape == b.shape and bool(torch.equal(a, b))
    return a is b


def _label(setting: Mapping) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:g}"
        if isinstance(v, (tuple, list)) and len(v) > 4:
            return "…"
        return str(v)
    return "\n".join(f"{k}={fmt(v)}" for k, v in setting.items())


class Explorer:
    """An interactive view (ipywidgets controls + a re-rendered row of images) and its static path.

    ``render(**values)`` gets one keyword per control (plus ``fixed``) and returns the panels of one
    row, ``{title: image}`` (tensors in [−1, 1] or 2-D maps). Every render is timed (``latencies``,
    seconds, including drawing). :meth:`static_figure` and :meth:`sweep_figure` are the static path
    that papermill runs and exported HTML show.
    """

    def __init__(self, render: Callable[..., Mapping[str, object]], controls: Mapping[str, object],
                 fixed: Mapping[str, object] | None = None, title: str | None = None, cell: float = 1.6):
        self.render = render
        self.controls = dict(controls)
        self.fixed = dict(fixed or {})
        self.title = title
        self.cell = cell
        self.latencies: list[float] = []
        self._widget = self._image = self._status = None

    # -- values --------------------------------------------------------------------------------
    def values(self) -> dict:
        return {k: c.value for k, c in self.controls.items()}

    def panels(self, **overrides) -> dict:
        return dict(self.render(**{**self.fixed, **self.values(), **overrides}))

    # -- the widget ----------------------------------------------------------------------------
    @property
    def widget(self):
        if self._widget is None:
            import ipywidgets as W
            # an Image widget, not an Output widget: nbclient (papermill) answers Output widgets on
            # the shell channel while it waits there for the cell's reply, which can hang a run
            # (jupyter/nbclient#312); setting an image's bytes sends nothing back
            self._image = W.Image(format="png", layout=W.Layout(max_width="100%"))
            self._status = W.HTML()
            for c in self.controls.values():
                c.observe(lambda change: self.update(), names="value")
            box = W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap"))
            self._widget = W.VBox([box, self._status, self._image])
        return self._widget

    def update(self) -> float:
        """Render the current values into the widget's output; returns the seconds it took."""
        import matplotlib.pyplot as plt
        self.widget  # noqa: B018  (builds the output area on first use)
        with stopwatch() as sw:
            fig = row_figure(self.panels(), title=self.title, cell=self.cell)
            self._image.value = png_bytes(fig)
            plt.close(fig)
        self.latencies.append(sw.seconds)
        self._status.value = f"<small>rendered in {sw.seconds:.2f} s</small>"
        return sw.seconds

    def show(self):
        """Display the controls and the rendered current values (one timed render)."""
        from IPython.display import display
        display(self.widget)
        self.update()
        return self

    def set(self, **values) -> float:
        """Move controls from code (as a reader would); returns the latency of the re-render (done
        explicitly when no value changed, as a widget does not re-render then)."""
        self.widget  # noqa: B018  (observers attached)
        n = len(self.latencies)
        for k, v in values.items():
            if k not in self.controls:
                raise KeyError(f"no control named {k!r}; controls: {sorted(self.controls)}")
            self.controls[k].value = v
        if len(self.latencies) == n:
            self.update()
        return self.latencies[-1]

    # -- the static path -----------------------------------------------------------------------
    def static_rows(self, settings: Sequence[Mapping]) -> tuple[list[list], list[str], list[str]]:
        panels = [self.panels(**s) for s in settings]
        names = list(panels[0].keys()) if panels else []
        rows = [list(p.values()) for p in panels]          # by position: titles may carry the setting
        # draw panels that never change once (first row only)
        for j in range(len(names)):
            if len(rows) > 1 and all(_same(rows[0][j], r[j]) for r in rows[1:]):
                for r in rows[1:]:
                    r[j] = None
        return rows, [_label(s) for s in settings], names

    def static_figure(self, settings: Sequence[Mapping], title: str | None = None, row_labels=None):
        """One row per setting (each a dict of control values), as a matplotlib figure; panels that
        are the same in every row (e.g. the inputs) are drawn in the first row only."""
        if not settings:
            raise ValueError("static_figure: give at least one setting")
        rows, labels, names = self.static_rows(settings)
        return grid_figure(rows, row_labels=row_labels or labels, col_labels=names,
                           title=title or self.title, cell=self.cell * 0.8)

    def sweep_figure(self, name: str, values: Sequence, rows: Sequence[Mapping] = ({},), keep: Sequence[str] = (),
                     result: int | str = -1, title: str | None = None, row_labels=None, fmt: str = "{name}={value}"):
        """A sweep of one control as a figure: one row per setting in ``rows``; the columns are the
        panels named in ``keep`` (from the first value, e.g. the inputs) and then the ``result``
        panel (name or position) for each value of control ``name``."""
        grid, labels = [], []
        for r in rows:
            ps = [self.panels(**{**r, name: v}) for v in values]
            line = [p[result] if isinstance(result, str) else list(p.values())[result] for p in ps]
            grid.append([ps[0][n] for n in keep] + line)
            labels.append(_label(r))
        heads = list(keep) + [fmt.format(name=name, value=f"{v:g}" if isinstance(v, float) else v) for v in values]
        return grid_figure(grid, row_labels=row_labels or (labels if any(labels) else None), col_labels=heads,
                           title=title or self.title, cell=self.cell * 0.8)


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


@lru_cache(maxsize=None)
def _mask_toggles_class():
    import ipywidgets as W
    import traitlets

    class MaskToggles(W.GridBox):
        value = traitlets.Tuple()

        def __init__(self, h, w, initial, cell_px):
            self._buttons = [[W.ToggleButton(value=bool(initial[i][j]) if initial is not None else False,
                                             layout=W.Layout(width=f"{cell_px}px", height=f"{cell_px}px"),
                                             tooltip=f"h cell ({i}, {j})")
                              for j in range(w)] for i in range(h)]
            super().__init__(children=[b for r in self._buttons for b in r],
                             layout=W.Layout(grid_template_columns=f"repeat({w}, {cell_px + 4}px)"))
            self.value = self._read()
            for r in self._buttons:
                for b in r:
                    b.observe(self._toggled, names="value")

        def _read(self):
            return tuple(tuple(int(b.value) for b in r) for r in self._buttons)

        def _toggled(self, change):
            if not getattr(self, "_syncing", False):
                self.value = self._read()

        @traitlets.observe("value")
        def _set_buttons(self, change):
            self._syncing = True
            try:
                for r, vals in zip(self._buttons, change["new"]):
                    for b, v in zip(r, vals):
                        b.value = bool(v)
            finally:
                self._syncing = False

    return MaskToggles


def mask_toggles(h: int, w: int, initial=None, cell_px: int = 30):
    """An h×w grid of ToggleButtons (one per cell of h) whose ``value`` is a tuple of rows of 0/1;
    it fires ``observe(..., names="value")`` like any control, so it plugs into :class:`Explorer`.
    Turn it into a mask with :func:`mask_from_cells`."""
    if initial is not None:
        initial = mask_from_cells(initial).tolist()
        if len(initial) != h or any(len(r) != w for r in initial):
            raise ValueError(f"initial mask must be {h}×{w}")
    return _mask_toggles_class()(h, w, initial, cell_px)


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
        (Path(out_dir) / SETTINGS_FILE).write_text(json.dumps(rec, indent=1))
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


# ---------------------------------------------------------------------------------------------
# Claims computed from measured numbers

NO_INJECTION = "no injection (γ = 0)"
PIXEL_BLEND = "pixel blend 0.7·style + 0.3·content"
REINHARD = "Reinhard colour transfer"
REFERENCES = (NO_INJECTION, PIXEL_BLEND, REINHARD)


def baseline_images(content: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
    """The two cheap baselines every injection result is compared with: the pixel blend
    0.7·style + 0.3·content and Reinhard's colour transfer (content with the style's channel
    statistics) — :func:`diffstyle_lab.faces.groundtruth.pixel_blend` / ``reinhard``."""
    from ..faces.groundtruth import pixel_blend, reinhard
    c, s = content.float().cpu(), style.float().cpu()
    return {PIXEL_BLEND: pixel_blend(c, s, 0.7), REINHARD: reinhard(c, s)}


def reference_measures(no_injection: torch.Tensor, content: torch.Tensor, style: torch.Tensor) -> dict:
    """Per-pair :func:`diffstyle_lab.evaluate.metrics.measures` of the three references, keyed by
    :data:`REFERENCES`: the run without injection (γ = 0, the same seeds and settings otherwise) and
    the two cheap baselines of :func:`baseline_images`."""
    from ..evaluate.metrics import measures
    imgs = {NO_INJECTION: no_injection.float().cpu(), **baseline_images(content, style)}
    return {k: measures(v, content, style) for k, v in imgs.items()}


def draw_references(ax, refs: Mapping, column: str, styles=None) -> None:
    """The references' means of ``column`` as horizontal lines on ``ax`` (every γ/ω curve shows them)."""
    styles = styles or {NO_INJECTION: dict(color="0.25", ls="--"), PIXEL_BLEND: dict(color="C4", ls=":"),
                        REINHARD: dict(color="C5", ls="-.")}
    for name, df in refs.items():
        v = float(np.nanmean(np.asarray(df[column] if hasattr(df, "columns") else df, dtype=float)))
        ax.axhline(v, lw=1.1, label=name, **styles.get(name, {}))


def _triple(x):
    """(value, low, high) from a (v, lo, hi) *tuple* (a list or array is per-unit values), or None."""
    if isinstance(x, tuple) and len(x) == 3 and all(isinstance(v, (int, float)) or v is None for v in x):
        return tuple(float("nan") if v is None else float(v) for v in x)
    return None


def _fmt(v: float, share: bool, digits: int, sign: bool = False) -> str:
    if not np.isfinite(v):
        return "n/a"
    if share:
        return f"{100 * v:+.{max(digits - 2, 0)}f} %" if sign else f"{100 * v:.{max(digits - 2, 0)}f} %"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def interval_text(v: float, lo: float, hi: float, share: bool = False, digits: int = 3, sign: bool = False) -> str:
    """``"0.15 [0.12, 0.18]"`` (or ``"15 % [12 %, 18 %]"`` with ``share``); no brackets without an interval."""
    s = _fmt(v, share, digits, sign)
    if np.isfinite(lo) and np.isfinite(hi):
        s += f" [{_fmt(lo, share, digits, sign)}, {_fmt(hi, share, digits, sign)}]"
    return s


def effect(lo: float, hi: float) -> str:
    """``"higher"`` / ``"lower"`` when the interval of a difference excludes 0, ``"no effect detected"``
    when it includes 0, ``"no interval (n too small)"`` without one."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval (n too small)"
    if lo > 0:
        return "higher"
    if hi < 0:
        return "lower"
    return "no effect detected"


MIN_N = 4      # fewer pairs than this: a bootstrap interval means little, none is given


def compare(result, reference, n_boot: int = 1000, seed: int = 0, level: float = 0.95, min_n: int = MIN_N) -> dict:
    """``result`` against ``reference``: each per-unit values (the same units, in the same order: a
    paired bootstrap of the difference of means, :func:`diffstyle_lab.stats.bootstrap.paired_difference`),
    a ``(value, low, high)`` triple, or (reference only) a number. Returns ``{"value", "ref",
    "diff": (d, lo, hi), "effect"}``; two triples are compared by their intervals (``"higher"`` /
    ``"lower"`` only where they do not overlap — no per-unit values, no paired test)."""
    from ..stats.bootstrap import bootstrap_ci, paired_difference
    tr, tf = _triple(result), _triple(reference)
    if tr is None and tf is None:
        a = np.asarray(result, dtype=float).ravel()
        b = np.asarray(reference, dtype=float).ravel()
        if a.shape != b.shape:
            raise ValueError(f"compare: per-unit values must be on the same units, got {a.size} and {b.size}")
        n = int(np.isfinite(a - b).sum())
        if n >= max(int(min_n), 2):
            d = paired_difference(a, b, n_boot=n_boot, level=level, seed=seed)
            va = bootstrap_ci(a, n_boot, level, seed)
            vb = bootstrap_ci(b, n_boot, level, seed)
        else:
            d = (float(np.nanmean(a - b)) if n else float("nan"), float("nan"), float("nan"))
            va = (float(np.nanmean(a)), float("nan"), float("nan"))
            vb = (float(np.nanmean(b)), float("nan"), float("nan"))
        return {"value": va, "ref": vb, "diff": d, "effect": effect(d[1], d[2]), "n": n, "paired": True}
    if tr is None:
        tr = bootstrap_ci(np.asarray(result, dtype=float).ravel(), n_boot, level, seed)
    if tf is None:
        arr = np.asarray(reference, dtype=float).ravel()
        tf = (float(arr[0]),) * 3 if arr.size == 1 else bootstrap_ci(arr, n_boot, level, seed)
    if tf[1] == tf[2] == tf[0]:            # a constant reference (e.g. 0 for "doing nothing")
        d = (tr[0] - tf[0], tr[1] - tf[0], tr[2] - tf[0])
        eff = effect(d[1], d[2])
    else:
        d = (tr[0] - tf[0], float("nan"), float("nan"))
        eff = ("higher" if tr[1] > tf[2] else "lower" if tr[2] < tf[1] else "no difference detected (intervals overlap)") \
            if all(np.isfinite(v) for v in tr + tf) else "no interval (n too small)"
    return {"value": tr, "ref": tf, "diff": d, "effect": eff, "n": None, "paired": False}


def claim(what: str, result, references: Mapping, better: str | None = None, share: bool = False, digits: int = 3,
          n_boot: int = 1000, seed: int = 0, level: float = 0.95, name: str = "injection", min_n: int = MIN_N) -> str:
    """The one way a notebook turns measured numbers into a summary sentence.

    ``result``: the method's per-pair values (or a ``(value, low, high)`` triple); ``references``:
    ``{label: per-pair values | triple | number}`` — always :data:`NO_INJECTION` and the two cheap
    baselines (:data:`PIXEL_BLEND`, :data:`REINHARD`; missing ones are named as not measured).
    Each comparison is a paired bootstrap interval of the difference where n ≥ 2 per-pair values
    allow (:func:`compare`), and says **"no effect detected"** when that interval includes 0.
    ``better``: ``"higher"`` / ``"lower"`` adds whether a detected difference is better or worse.
    ``share``: values are shares, written in %."""
    refs = dict(references)
    parts, n_used = [], set()
    first = None
    for label in list(REFERENCES) + [k for k in refs if k not in REFERENCES]:
        if label not in refs or refs[label] is None:
            parts.append(f"{label}: not measured")
            continue
        c = compare(result, refs[label], n_boot=n_boot, seed=seed, level=level, min_n=min_n)
        first = first or c
        if c["n"] is not None:
            n_used.add(c["n"])
        word = c["effect"]
        if better and word in ("higher", "lower"):
            word += " (better)" if word == better else " (worse)"
        parts.append(f"vs {label} {interval_text(*c['ref'], share=share, digits=digits)}: difference "
                     f"{interval_text(*c['diff'], share=share, digits=digits, sign=True)} — {word}")
    head = f"{what}: {name} {interval_text(*first['value'], share=share, digits=digits)}" if first else \
        f"{what}: {name} {interval_text(*(_triple(result) or (float(np.nanmean(result)), np.nan, np.nan)), share=share, digits=digits)}"
    if n_used and max(n_used) >= max(min_n, 2):
        how = f"n = {', '.join(map(str, sorted(n_used)))} pairs, paired bootstrap {int(level * 100)} % CI"
    elif n_used:
        how = f"n = {max(n_used)} pair{'s' if max(n_used) > 1 else ''}: too few for an interval (at least {min_n})"
    else:
        how = f"{int(level * 100)} % intervals"
    return head + "; " + "; ".join(parts) + f" ({how})."


def claims(table_result, refs: Mapping, columns: Mapping[str, tuple[str, str | None]], **kw) -> list[str]:
    """:func:`claim` for several measures: ``columns`` = ``{column: (description, better)}``;
    ``table_result`` a per-pair measures frame; ``refs`` as from :func:`reference_measures`."""
    return [claim(desc, np.asarray(table_result[col], float),
                  {k: np.asarray(v[col], float) for k, v in refs.items()}, better=better, **kw)
            for col, (desc, better) in columns.items()]


def gap_sentence(triple, label: str = "content injection") -> str:
    """``"content injection closes 15 % [12 %, 18 %] of the gap to the ideal"`` from a gap-closed share
    ``(value, low, high)``, with "— no effect detected" when the interval includes 0 (γ = 0, doing
    nothing, closes 0 by definition)."""
    v, lo, hi = _triple(tuple(triple)) or (float("nan"),) * 3
    word = effect(lo, hi)
    tail = " — no effect detected" if word == "no effect detected" else \
        (" (no interval)" if word.startswith("no interval") else "")
    return f"{label} closes {interval_text(v, lo, hi, share=True, digits=2)} of the gap to the ideal{tail}"


# ---------------------------------------------------------------------------------------------
# "The paper says / this model shows"

SUMMARY_FILE = "summary.json"


def model_folder(model) -> Path | None:
    """The local folder a model was loaded from (the embedded default model's under ``data/models``),
    or None (a hub id resolved elsewhere, a model built in memory)."""
    src = str(getattr(model, "source", "") or "")
    if src.startswith("diffstyle_lab:"):
        return data_path("models", src.split(":", 1)[1])
    p = Path(src).expanduser() if src else None
    return p if p is not None and p.is_dir() else None


def read_summary(model) -> dict | None:
    """The model folder's machine-readable evaluation ``summary.json`` (schema 1), or None when the
    model has no folder or the folder has no summary. A file that is there but unreadable raises a
    one-line ``ValueError``."""
    folder = model_folder(model)
    if folder is None or not (folder / SUMMARY_FILE).is_file():
        return None
    path = folder / SUMMARY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("schema") != 1 or not isinstance(data.get("sets"), dict):
        raise ValueError(f"{path}: expected a schema-1 summary ({{\"schema\": 1, \"sets\": {{...}}, ...}})")
    data["_path"] = str(path)
    return data


def paper_box(model, paper: str, keys: Sequence[str] = ("gap_closed", "layout_as_content", "colours_as_style")) -> str:
    """The "The paper says / this model shows" box (Markdown): ``paper`` is the paper's claim
    (typed: it is a quotation of the paper); the model's part is read from its folder's
    ``summary.json`` (:func:`read_summary`) and written with :func:`gap_sentence` / :func:`claim`,
    or says "not measured for this model"."""
    lines = ["| | |", "|---|---|", f"| **The paper says** | {paper} |"]
    s = read_summary(model)
    if s is None:
        lines.append(f"| **This model shows** | not measured for this model ({getattr(model, 'source', model)}: "
                     f"no `{SUMMARY_FILE}` in its folder; `scripts/groundtruth_eval.py` writes one) |")
        return "\n".join(lines)
    st = s.get("settings", {})
    settings = ", ".join(f"{k} {v}" for k, v in st.items())
    warn = ""
    try:
        if s.get("weights_sha256") and s["weights_sha256"] != model.weights_hash:
            warn = " **(measured on other weights than the ones loaded)**"
    except Exception:  # noqa: BLE001  (a model without a weights hash)
        pass
    rows = []
    for name, d in s["sets"].items():
        base = d.get("baselines", {})
        refs = {NO_INJECTION: 0.0, PIXEL_BLEND: base.get("pixel_blend", {}).get("gap_closed"),
                REINHARD: base.get("reinhard", {}).get("gap_closed")}
        refs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in refs.items()}
        txt = f"*{name}* ({d.get('pairs', '?')} pairs, {d.get('description', '')}): " + \
            gap_sentence(tuple(d["gap_closed"])) + "; " + \
            "; ".join(f"{lbl} " + gap_sentence(v, "").strip() for lbl, v in
                      ((PIXEL_BLEND, refs[PIXEL_BLEND]), (REINHARD, refs[REINHARD])) if v is not None)
        for k in keys[1:]:
            if k in d:
                v, lo, hi = (float("nan") if x is None else x for x in d[k])
                txt += f"; {k.replace('_', ' ')} {interval_text(v, lo, hi, share=True, digits=2)} of pairs"
        rows.append(txt)
    lines.append(f"| **This model shows** | measured on {s.get('model', '?')} with {settings}{warn}: "
                 + " <br> ".join(rows) + f" (`{Path(s['_path']).name}`, by `{s.get('command', '?')}`) |")
    return "\n".join(lines)


def show_box(model, paper: str) -> str:
    """Display :func:`paper_box` as Markdown (and return its text, for printed summaries)."""
    text = paper_box(model, paper)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
        if get_ipython() is not None:
            display(Markdown(text))
    except ImportError:  # pragma: no cover
        pass
    return text
