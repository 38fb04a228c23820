"""Figures and widgets for the notebooks: images drawn as matplotlib grids (:func:`grid_figure`), shown
once as PNG (:func:`show`), saved (:func:`save_figure`); :class:`Explorer` — an ipywidgets view with its
**static path** (a grid of fixed settings drawn as one figure, so a notebook executed by papermill shows
what a reader gets by moving the sliders) — and :func:`mask_toggles`. Only :class:`Explorer` and
:func:`mask_toggles` need ipywidgets (the ``notebooks`` extra). Part of :mod:`diffstyle_lab.lab.notebook`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from .loading import mask_from_cells, stopwatch

__all__ = ["to_rgb", "grid_figure", "row_figure", "png_bytes", "show", "save_figure", "Explorer", "mask_toggles"]


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


def _draw(ax, img, cmap="magma", clim=None):
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
    if a.ndim == 2 and clim is not None:
        kw = dict(vmin=clim[0], vmax=clim[1])
    ax.imshow(a, cmap=cmap if a.ndim == 2 else None, interpolation="nearest", **kw)


def grid_figure(rows: Sequence[Sequence], row_labels: Sequence[str] | None = None,
                col_labels: Sequence[str] | None = None, title: str | None = None, cell: float = 1.7,
                cmap: str = "magma", clim=None, colorbar: str | None = None):
    """A matplotlib figure of images: ``rows`` is a list of rows, each a list of images (image
    tensors in [−1, 1], uint8 arrays, 2-D maps drawn with ``cmap``, or None for a blank cell).
    ``col_labels`` go above the first row, ``row_labels`` left of each row. ``cell``: inches per image
    (1.7 by default: a 32-px image at 1.35 inches was too small to read in a lecture).

    2-D maps are auto-scaled one by one unless ``clim`` is given: ``(low, high)``, or ``"shared"`` —
    one scale from 0 to the largest value of all the figure's maps, so that maps can be compared.
    ``colorbar``: a label; draws the colour bar of that common scale (needs ``clim``)."""
    import matplotlib.pyplot as plt
    nr = len(rows)
    nc = max((len(r) for r in rows), default=1)
    if clim == "shared":
        maps = [to_rgb(x) for r in rows for x in r if x is not None and to_rgb(x).ndim == 2]
        clim = (0.0, max((float(np.nanmax(mp)) for mp in maps if mp.size), default=1.0) or 1.0)
    if colorbar and clim is None:
        raise ValueError("grid_figure: a colour bar needs a common scale (clim=(low, high) or 'shared')")
    left = 0.0 if not row_labels else 0.9
    fig, axes = plt.subplots(nr, nc, figsize=(left + cell * nc + (0.9 if colorbar else 0.0),
                                              0.35 * bool(title) + (cell + 0.25) * nr), squeeze=False)
    for i, r in enumerate(rows):
        for j in range(nc):
            _draw(axes[i, j], r[j] if j < len(r) else None, cmap, clim)
            if i == 0 and col_labels is not None and j < len(col_labels):
                axes[i, j].set_title(col_labels[j], fontsize=8)
        if row_labels is not None and i < len(row_labels):
            axes[i, 0].axis("on")                  # a blank cell still shows its label (_draw hid ticks and spines)
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    if colorbar:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize
        bar = fig.colorbar(ScalarMappable(Normalize(*clim), cmap), ax=axes, shrink=0.8, fraction=0.04, pad=0.02)
        bar.set_label(colorbar, fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return fig


def row_figure(panels: Mapping[str, object], title: str | None = None, cell: float = 1.8):
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
                 fixed: Mapping[str, object] | None = None, title: str | None = None, cell: float = 1.7):
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

    def static_figure(self, settings: Sequence[Mapping], title: str | None = None, row_labels=None, **grid):
        """One row per setting (each a dict of control values), as a matplotlib figure; panels that
        are the same in every row (e.g. the inputs) are drawn in the first row only. ``grid``: more
        options of :func:`grid_figure` (``clim``, ``colorbar``, ``cell``)."""
        if not settings:
            raise ValueError("static_figure: give at least one setting")
        rows, labels, names = self.static_rows(settings)
        grid.setdefault("cell", self.cell)
        return grid_figure(rows, row_labels=row_labels or labels, col_labels=names,
                           title=title or self.title, **grid)

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
                           title=title or self.title, cell=self.cell)


# ---------------------------------------------------------------------------------------------
# Masks on the h grid, as toggle buttons

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
