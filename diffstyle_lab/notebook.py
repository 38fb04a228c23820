"""Small helpers for the notebooks in ``notebooks/``: model and device, sample images, inversions
cached once per notebook, matplotlib image grids, image measures, and interactive views that also
have a **static path** (a grid of fixed settings drawn as a figure), so a notebook executed by
papermill shows the same figures a reader gets by moving the sliders.

Typical use inside a notebook::

    from diffstyle_lab import notebook as nb
    model = nb.load(None)                                  # None → the embedded default model
    content, c_names = nb.sample_images("content", model.sample_size)
    store = nb.InversionStore(model, steps=50)             # inversions computed once per image
    ci = store(content)

    def render(gamma, pair):
        ...
        return {"content": c, "style": s, "result": r}     # panels of one row, left to right

    view = nb.Explorer(render, {"gamma": widgets.FloatSlider(...), "pair": widgets.Dropdown(...)})
    view.show()                                            # the widget (re-renders on change)
    nb.show(view.static_figure([{"gamma": g} for g in (0, .3, .6)]))   # the static path

Only :class:`Explorer` and :func:`mask_toggles` need ipywidgets (the ``notebooks`` extra); the
static path works without it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

__all__ = ["hosted", "pick_device", "load", "data_path", "sample_images", "load_folder", "InversionStore",
           "to_rgb", "grid_figure", "row_figure", "png_bytes", "show", "save_figure", "Explorer", "mask_toggles",
           "mask_from_cells", "upsample_mask", "h_shape", "block_table", "measures", "ood_images",
           "write_ood_images", "ood_folder", "stopwatch"]


# ---------------------------------------------------------------------------------------------
# Where we run

def hosted() -> bool:
    """True on a hosted notebook service (Google Colab, Kaggle), False on a local kernel."""
    return ("google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ
            or "COLAB_GPU" in os.environ or "KAGGLE_KERNEL_RUN_TYPE" in os.environ)


def pick_device(device: str | None = None) -> str:
    """``device`` if given, else ``$DIFFSTYLE_LAB_DEVICE``, else ``cuda`` when available, else ``cpu``."""
    if device:
        return str(device)
    env = os.environ.get("DIFFSTYLE_LAB_DEVICE")
    if env:
        return env
    return "cuda" if torch.cuda.is_available() else "cpu"


def load(model=None, device: str | None = None, threads: int | None = None):
    """The model a notebook runs on: ``None`` (or ``"default"``) → the embedded default model,
    anything else → :func:`diffstyle_lab.load_model` (a local folder or a pinned hub id).

    ``threads`` sets torch's CPU thread count (``torch.set_num_threads``) for the kernel; None
    leaves torch's default. The small default model gains nothing from several threads, and on a
    busy machine several threads waiting for each other at every operation can make a step many
    times slower than one thread."""
    from .models import load_default_model, load_model
    if threads:
        torch.set_num_threads(int(threads))
    dev = pick_device(device)
    if model is None or str(model) in ("", "default", "faces32"):
        return load_default_model(device=dev)
    return load_model(model, device=dev)


def data_path(*parts) -> Path:
    """A path under the project's ``data/`` folder (``$DIFFSTYLE_LAB_DATA`` overrides)."""
    from .models import data_dir
    return data_dir().joinpath(*parts)


def load_folder(folder, size: int, fit: str = "crop") -> tuple[torch.Tensor, list[str]]:
    """Every image of a folder as an N×3×size×size tensor in [−1, 1], and the file stems."""
    from .images import list_images, load_image
    files = list_images(folder)
    return torch.cat([load_image(f, size, fit=fit) for f in files]), [f.stem for f in files]


def sample_images(kind: str = "content", size: int = 32) -> tuple[torch.Tensor, list[str]]:
    """The shipped sample faces ``data/samples/<kind>/*.png`` (kind: ``content`` | ``style``)."""
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
    """DDIM inversions kept in memory per image (and on disk with ``disk``), so a widget that
    re-renders never inverts again.

    ``store(images)`` returns an :class:`~diffstyle_lab.sampling.Inversion` for the batch; images
    seen before are not inverted again (``hits``/``misses`` count them). ``disk``: ``None``/``False``
    — memory only; ``True`` — the default :class:`~diffstyle_lab.cache.InversionCache` folder;
    a path — an ``InversionCache`` there.
    """

    def __init__(self, model, steps: int = 50, spacing: str = "authors", record_last: bool = True, disk=None):
        from .cache import InversionCache
        self.model, self.steps, self.spacing, self.record_last = model, int(steps), spacing, record_last
        if disk is True:
            self.disk = InversionCache()
        elif disk:
            self.disk = InversionCache(disk)
        else:
            self.disk = None
        self._mem: dict[str, object] = {}
        self.hits = 0
        self.misses = 0
        self.seconds = 0.0

    def _key(self, x: torch.Tensor) -> str:
        from .cache import InversionCache
        return InversionCache.key(self.model, x, self.steps, self.spacing, self.record_last)

    def __call__(self, images: torch.Tensor):
        from .sampling import Inversion, check_images, ddim_invert
        x = check_images(self.model, images)
        keys = [self._key(x[i]) for i in range(len(x))]
        miss = [i for i, k in enumerate(keys) if k not in self._mem]
        # the same image twice in one batch is inverted once
        todo = list(dict.fromkeys(keys[i] for i in miss))
        first = [keys.index(k) for k in todo]
        self.hits += len(keys) - len(miss)
        self.misses += len(miss)
        if first:
            t0 = time.perf_counter()
            inv = ddim_invert(self.model, x[first], self.steps, self.spacing, record_last=self.record_last,
                              progress=False, cache=self.disk)
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
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    return a.astype(np.float32)


def _draw(ax, img, cmap="magma"):
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    if img is None:
        ax.axis("off")
        return
    a = to_rgb(img)
    if a.ndim == 2:
        ax.imshow(a, cmap=cmap, interpolation="nearest")
    else:
        ax.imshow(a, interpolation="nearest")


def grid_figure(rows: Sequence[Sequence], row_labels: Sequence[str] | None = None,
                col_labels: Sequence[str] | None = None, title: str | None = None, cell: float = 1.35,
                cmap: str = "magma", titles: Sequence[Sequence[str]] | None = None):
    """A matplotlib figure of images: ``rows`` is a list of rows, each a list of images (image
    tensors in [−1, 1], uint8 arrays, 2-D maps drawn with ``cmap``, or None for a blank cell).
    ``col_labels`` go above the first row, ``row_labels`` left of each row; ``titles`` (same layout
    as ``rows``) put a title over individual cells."""
    import matplotlib.pyplot as plt
    nr = len(rows)
    nc = max((len(r) for r in rows), default=1)
    left = 0.0 if not row_labels else 0.9
    fig, axes = plt.subplots(nr, nc, figsize=(left + cell * nc, 0.35 * bool(title) + (cell + 0.25) * nr),
                             squeeze=False)
    for i, r in enumerate(rows):
        for j in range(nc):
            ax = axes[i, j]
            _draw(ax, r[j] if j < len(r) else None, cmap)
            if titles is not None and i < len(titles) and j < len(titles[i]) and titles[i][j]:
                ax.set_title(titles[i][j], fontsize=7)
            elif i == 0 and col_labels is not None and j < len(col_labels):
                ax.set_title(col_labels[j], fontsize=8)
        if row_labels is not None and i < len(row_labels):
            axes[i, 0].axis("on")
            axes[i, 0].set_xticks([])
            axes[i, 0].set_yticks([])
            for s in axes[i, 0].spines.values():
                s.set_visible(False)
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
    """Display a figure once, as a PNG, and close it. Works whatever matplotlib backend the kernel
    has set up, and returns None, so a cell ending with ``nb.show(fig)`` shows it only once."""
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
    if a is None or b is None:
        return a is b
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
    """An interactive view (ipywidgets controls + re-rendered row of images) and its static path.

    ``render(**values)`` gets one keyword per control (plus ``fixed``) and returns the panels of one
    row, ``{title: image}`` (tensors in [−1, 1] or 2-D maps). Every render is timed
    (``latencies``, seconds, including drawing).

    * :meth:`show` displays the controls and renders the current values (in a live notebook the
      row re-renders when a control changes);
    * :meth:`set` changes controls from code (what a slider move does) and returns the latency of
      that re-render;
    * :meth:`static_figure` renders a list of fixed settings, one row each, as one matplotlib figure
      — the static path that papermill runs and exported HTML show. Panels that are the same in
      every row (e.g. the input images) are drawn in the first row only;
    * :meth:`sweep_figure` renders one control over a list of values (columns) for a few other
      settings (rows), keeping chosen panels (the inputs) once per row.
    """

    def __init__(self, render: Callable[..., Mapping[str, object]], controls: Mapping[str, object],
                 fixed: Mapping[str, object] | None = None, title: str | None = None, cell: float = 1.6):
        self.render = render
        self.controls = dict(controls)
        self.fixed = dict(fixed or {})
        self.title = title
        self.cell = cell
        self.latencies: list[float] = []
        self._widget = None
        self._image = None
        self._status = None

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
                c.observe(self._changed, names="value")
            box = W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap"))
            self._widget = W.VBox([box, self._status, self._image])
        return self._widget

    def _changed(self, change):
        self.update()

    def update(self) -> float:
        """Render the current values into the widget's output; returns the seconds it took."""
        self.widget  # noqa: B018  (builds the output area on first use)
        t0 = time.perf_counter()
        fig = row_figure(self.panels(), title=self.title, cell=self.cell)
        import matplotlib.pyplot as plt
        png = png_bytes(fig)
        plt.close(fig)
        self._image.value = png
        dt = time.perf_counter() - t0
        self.latencies.append(dt)
        self._status.value = f"<small>rendered in {dt:.2f} s</small>"
        return dt

    def show(self):
        """Display the controls and the rendered current values (one timed render)."""
        from IPython.display import display
        display(self.widget)
        self.update()
        return self

    def set(self, **values) -> float:
        """Move controls from code (as a reader would); returns the latency of the re-render.

        A value equal to the current one triggers no re-render in a widget, so this renders
        explicitly in that case."""
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
        rows, labels, names = [], [], None
        for s in settings:
            p = self.panels(**s)
            names = names or list(p.keys())
            rows.append(list(p.values()))           # by position: titles may carry the setting
            labels.append(_label(s))
        # draw panels that never change once (first row only)
        for j in range(len(names or [])):
            if len(rows) > 1 and all(_same(rows[0][j], r[j]) for r in rows[1:]):
                for r in rows[1:]:
                    r[j] = None
        return rows, labels, names or []

    def static_figure(self, settings: Sequence[Mapping], title: str | None = None, row_labels=None):
        """One row per setting (each a dict of control values), as a matplotlib figure."""
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
        grid, labels, heads = [], [], None
        for r in rows:
            line, kept = [], []
            for k, v in enumerate(values):
                p = self.panels(**{**r, name: v})
                keys = list(p.keys())
                if k == 0:
                    kept = [p[n] for n in keep]
                line.append(p[result] if isinstance(result, str) else p[keys[result]])
            heads = list(keep) + [fmt.format(name=name, value=f"{v:g}" if isinstance(v, float) else v)
                                  for v in values]
            grid.append(kept + line)
            labels.append(_label(r))
        return grid_figure(grid, row_labels=row_labels or (labels if any(labels) else None), col_labels=heads,
                           title=title or self.title, cell=self.cell * 0.8)


# ---------------------------------------------------------------------------------------------
# Masks on the h grid

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


_MASK_CLASS = None


def mask_toggles(h: int, w: int, initial=None, cell_px: int = 30):
    """An h×w grid of ToggleButtons (one per cell of h) whose ``value`` is a tuple of rows of 0/1;
    it fires ``observe(..., names="value")`` like any control, so it plugs into :class:`Explorer`.
    Turn it into a mask with :func:`mask_from_cells`."""
    global _MASK_CLASS
    import ipywidgets as W
    import traitlets

    if _MASK_CLASS is None:
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
                self._syncing = False

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

        _MASK_CLASS = MaskToggles
    if initial is not None:
        initial = mask_from_cells(initial).tolist()
        if len(initial) != h or any(len(r) != w for r in initial):
            raise ValueError(f"initial mask must be {h}×{w}")
    return _MASK_CLASS(h, w, initial, cell_px)


# ---------------------------------------------------------------------------------------------
# The U-Net's layout

def h_shape(model) -> tuple[int, ...]:
    """C×H×W of h for ``model`` (one forward pass on zeros)."""
    x = torch.zeros(1, model.in_channels, model.sample_size, model.sample_size, device=model.device,
                    dtype=model.hooked.dtype)
    with torch.no_grad(), model.hooked.record("h") as rec:
        model.hooked.eps(x, 0)
    return tuple(rec["h"].shape[1:])


def block_table(model):
    """Every top-level block of the U-Net in execution order, with its output shape and parameter
    count, and where h and g are read (a pandas DataFrame)."""
    import pandas as pd
    u = model.unet
    named = [("conv_in", u.conv_in)] + [(f"down_blocks[{i}]", b) for i, b in enumerate(u.down_blocks)] + \
        [("mid_block", u.mid_block)] + [(f"up_blocks[{i}]", b) for i, b in enumerate(u.up_blocks)] + \
        [("conv_out", u.conv_out)]
    shapes, handles = {}, []

    def keep(name):
        def fn(mod, args, out):
            o = out[0] if isinstance(out, tuple) else out
            shapes[name] = tuple(o.shape[1:])
        return fn
    for name, mod in named:
        handles.append(mod.register_forward_hook(keep(name)))
    x = torch.zeros(1, model.in_channels, model.sample_size, model.sample_size, device=model.device,
                    dtype=model.hooked.dtype)
    try:
        with torch.no_grad(), model.hooked.record() as rec:
            model.hooked.eps(x, 0)
    finally:
        for hd in handles:
            hd.remove()
    rows = []
    for name, mod in named:
        note = ""
        if name == "mid_block":
            note = "h = this output"
        elif name == "up_blocks[0]":
            note = "input: cat(h, g); g = last skip of the down path"
        rows.append({"block": name, "type": type(mod).__name__, "output (C×H×W)": "×".join(map(str, shapes[name])),
                     "parameters": sum(p.numel() for p in mod.parameters()), "hook point": note})
    df = pd.DataFrame(rows)
    df.attrs["h"] = tuple(rec["h"].shape[1:])
    df.attrs["g"] = tuple(rec["g"].shape[1:])
    return df


# ---------------------------------------------------------------------------------------------
# Image measures (no downloaded networks)

def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels, in [0, 255] units (clamped images)."""
    x = x.clamp(-1, 1)
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    return (dx + dy) / 2 * 127.5


def measures(result: torch.Tensor, content: torch.Tensor | None = None, style: torch.Tensor | None = None):
    """Per-image measures of a batch of results against their content and style images
    (a pandas DataFrame, one row per image), from :mod:`diffstyle_lab.metrics`:

    * ``struct_content`` / ``struct_style`` — structure similarity (edge-map correlation, blind to
      colour) with the content / style image;
    * ``bg_dist_content`` / ``bg_dist_style`` — distance of the border (background) colour, 0–441;
    * ``colour_dist_content`` / ``colour_dist_style`` — distance of per-channel colour mean and s.d.;
    * ``psnr_content`` / ``psnr_style`` — PSNR in dB;
    * ``out_of_range`` — share of raw output values outside [−1, 1] (before clamping);
    * ``tv`` — total variation (mean neighbour difference, 0–255): noise and blotches raise it.
    """
    import pandas as pd
    from . import metrics as M
    r = result.detach().float().cpu()
    out = {"out_of_range": (r.abs() > 1.0).float().flatten(1).mean(1), "tv": total_variation(r)}
    rc = r.clamp(-1, 1)
    for name, ref in (("content", content), ("style", style)):
        if ref is None:
            continue
        ref = ref.detach().float().cpu().expand_as(rc)
        out[f"struct_{name}"] = M.structure_similarity(rc, ref)
        out[f"bg_dist_{name}"] = M.colour_distance(M.border_colour(rc), M.border_colour(ref))
        out[f"colour_dist_{name}"] = M.colour_stats_distance(rc, ref)
        out[f"psnr_{name}"] = M.psnr(rc, ref)
    return pd.DataFrame({k: v.numpy().astype(np.float64) for k, v in out.items()})


# ---------------------------------------------------------------------------------------------
# Out-of-domain style images, made procedurally (free to redistribute)

def _value_noise(size: int, rng: np.random.Generator, octaves: int = 5, base: int = 4) -> np.ndarray:
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
        a = lat[i][:, i]
        b = lat[i][:, i + 1]
        c = lat[i + 1][:, i]
        d = lat[i + 1][:, i + 1]
        fx, fy = f[None, :], f[:, None]
        out += amp * ((a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy)
        total += amp
        amp /= 2
    out /= total
    return (out - out.min()) / max(out.max() - out.min(), 1e-12)


def _palette(t: np.ndarray, colours: Sequence[Sequence[int]]) -> np.ndarray:
    """Map t in [0, 1] through a piecewise-linear colour ramp (RGB 0–255)."""
    cs = np.asarray(colours, dtype=np.float64)
    pos = np.clip(t, 0, 1) * (len(cs) - 1)
    i = np.minimum(np.floor(pos).astype(int), len(cs) - 2)
    f = (pos - i)[..., None]
    return cs[i] * (1 - f) + cs[i + 1] * f


def ood_images(size: int = 128, seed: int = 0) -> dict[str, np.ndarray]:
    """Six procedural "paintings" and textures (uint8 size×size×3), deterministic in ``seed``:
    stripes, a sunset gradient, clouds (fractal value noise), a checkerboard, a swirl and a
    stained-glass mosaic (Voronoi cells). Made by this module — no third-party pixels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    imgs = {}
    # 1. diagonal stripes in a warm ramp, with a little wobble like brush strokes
    wob = 0.03 * np.sin(2 * np.pi * 3 * y)
    t = 0.5 + 0.5 * np.sin(2 * np.pi * 6 * (x + y + wob))
    imgs["stripes"] = _palette(t, [(32, 45, 110), (230, 90, 50), (250, 210, 80)])
    # 2. a sunset: vertical gradient, a sun disc, dark hills
    sky = _palette(y, [(60, 40, 120), (220, 80, 90), (255, 190, 90)])
    sun = ((x - 0.65) ** 2 + (y - 0.62) ** 2) < 0.012
    sky[sun] = (255, 240, 200)
    hills = y > 0.78 + 0.06 * np.sin(2 * np.pi * 1.5 * x + 1.0)
    sky[hills] = (30, 25, 50)
    imgs["sunset"] = sky
    # 3. clouds: fractal value noise through a sky-blue ramp
    imgs["clouds"] = _palette(_value_noise(size, rng), [(20, 60, 150), (110, 170, 230), (245, 248, 255)])
    # 4. a rotated checkerboard in two colours
    u, v = (x - 0.5) * np.cos(0.4) - (y - 0.5) * np.sin(0.4), (x - 0.5) * np.sin(0.4) + (y - 0.5) * np.cos(0.4)
    chk = (np.floor(u * 6) + np.floor(v * 6)) % 2
    imgs["checker"] = np.where(chk[..., None] > 0, np.array([20, 110, 90.0]), np.array([240, 225, 190.0]))
    # 5. a swirl: colour by angle + radius, like a night-sky painting
    r = np.hypot(x - 0.5, y - 0.5)
    a = np.arctan2(y - 0.5, x - 0.5)
    t = 0.5 + 0.5 * np.sin(3 * a + 18 * r + 2 * _value_noise(size, rng, octaves=3))
    imgs["swirl"] = _palette(t, [(10, 20, 70), (40, 90, 180), (240, 220, 90)])
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
    out = []
    for name, a in ood_images(size, seed).items():
        p = folder / f"{name}.png"
        Image.fromarray(a).save(p, optimize=True)
        out.append(p)
    return out


def ood_folder() -> Path:
    """``data/ood`` (the shipped out-of-domain style images)."""
    return data_path("ood")
