"""What the notebooks in ``notebooks/`` import as ``nb``: one namespace over four modules, split by
concern —

* :mod:`.loading` — the model, the sample images and any folder of images at the model's size,
  per-image cached inversions (:class:`InversionStore`), the model's own settings (:func:`config`),
  the h grid and masks on it;
* :mod:`.figures` — image grids, showing and saving figures, the :class:`Explorer` widget with its
  static path (a grid of fixed settings drawn as one figure, so a notebook executed by papermill shows
  what a reader gets by moving the sliders) and :func:`mask_toggles`;
* :mod:`.claims` — the verdict sentences written from measured numbers (:func:`claim`, :func:`compare`);
* :mod:`.boxes` — the "The paper says / this model shows" box.

Only :class:`Explorer` and :func:`mask_toggles` need ipywidgets (the ``notebooks`` extra).
"""

from __future__ import annotations

from . import boxes as _boxes, claims as _claims, figures as _figures, loading as _loading
from .boxes import *  # noqa: F401,F403
from .claims import *  # noqa: F401,F403
from .figures import *  # noqa: F401,F403
from .loading import *  # noqa: F401,F403

__all__ = [*_loading.__all__, *_figures.__all__, *_claims.__all__, *_boxes.__all__]
