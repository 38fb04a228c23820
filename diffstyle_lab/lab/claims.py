"""The verdict sentences of the notebooks, computed from measured numbers: every measure against no
injection (γ = 0) and the two cheap baselines (:func:`claim`, :func:`claims_table`). The intervals, the
words for an effect and the way an interval is written come from the one verdict engine,
:mod:`diffstyle_lab.stats.verdicts` (:func:`compare`, :func:`effect`, :func:`interval_text`,
:func:`gap_sentence` and :data:`MIN_N` are its own, re-exported here for the notebooks). Part of
:mod:`diffstyle_lab.lab.notebook`."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ..stats.verdicts import (MIN_N, NO_EFFECT, NOT_MEASURED, as_triple, compare, effect, gap_sentence,  # noqa: F401
                              interval_text, judged, rough, too_few)

__all__ = ["NO_INJECTION", "PIXEL_BLEND", "REINHARD", "REFERENCES", "MIN_N", "baseline_images", "reference_measures",
           "draw_references", "interval_text", "effect", "compare", "claim", "claims", "claims_table", "show_claims",
           "gap_sentence"]


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


def claim(what: str, result, references: Mapping, better: str | None = None, share: bool = False, digits: int = 3,
          n_boot: int = 1000, seed: int = 0, level: float = 0.95, name: str = "injection", min_n: int = MIN_N) -> str:
    """The one way a notebook turns measured numbers into a summary sentence.

    ``result``: the method's per-pair values (or a ``(value, low, high)`` triple); ``references``:
    ``{label: per-pair values | triple | number}`` — always :data:`NO_INJECTION` and the two cheap
    baselines (:data:`PIXEL_BLEND`, :data:`REINHARD`; missing ones are named as not measured).
    Each comparison is a paired bootstrap interval of the difference where n ≥ ``min_n`` per-pair values
    allow (:func:`compare`), and says **"no effect detected"** when that interval includes 0.
    ``better``: ``"higher"`` / ``"lower"`` adds whether a detected difference is better or worse.
    ``share``: values are shares, written in %."""
    refs = dict(references)
    parts, n_used = [], set()
    first = None
    for label in list(REFERENCES) + [k for k in refs if k not in REFERENCES]:
        if label not in refs or refs[label] is None:
            parts.append(f"{label}: {NOT_MEASURED}")
            continue
        c = compare(result, refs[label], n_boot=n_boot, seed=seed, level=level, min_n=min_n)
        first = first or c
        if c["n"] is not None:
            n_used.add(c["n"])
        parts.append(f"vs {label} {interval_text(*c['ref'], share=share, digits=digits)}: difference "
                     f"{interval_text(*c['diff'], share=share, digits=digits, sign=True)} — {judged(c['effect'], better)}")
    value = first["value"] if first else as_triple(result) or (float(np.nanmean(result)), np.nan, np.nan)
    head = f"{what}: {name} {interval_text(*value, share=share, digits=digits)}"
    if n_used:
        how = too_few(max(n_used), min_n) or \
            f"n = {', '.join(map(str, sorted(n_used)))} pairs, paired bootstrap {int(level * 100)} % CI"
    else:
        how = f"{int(level * 100)} % intervals"
    return head + "; " + "; ".join(parts) + f" ({how})."


def claims(table_result, refs: Mapping, columns: Mapping[str, tuple[str, str | None]], **kw) -> list[str]:
    """:func:`claim` for several measures: ``columns`` = ``{column: (description, better)}``;
    ``table_result`` a per-pair measures frame; ``refs`` as from :func:`reference_measures`."""
    return [claim(desc, np.asarray(table_result[col], float),
                  {k: np.asarray(v[col], float) for k, v in refs.items()}, better=better, **kw)
            for col, (desc, better) in columns.items()]


SHORT = {NO_INJECTION: "no injection", PIXEL_BLEND: "pixel blend", REINHARD: "Reinhard"}


def claims_table(table_result, refs: Mapping, columns: Mapping[str, tuple[str, str | None]], name: str = "injection",
                 share: bool = False, digits: int = 3, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                 min_n: int = MIN_N):
    """What :func:`claims` says, as a table (one row per measure, short cells) instead of long lines:
    ``name`` — the measured mean with its interval; one column per reference — the difference
    ``name − reference`` with its interval and the verdict word of :func:`compare` (``higher`` /
    ``lower``, marked better or worse by ``better``, or ``no effect detected``). Returns
    ``(DataFrame, note)``; ``note`` says n, the interval and how to read a cell."""
    import pandas as pd
    rows, n_used = [], set()
    labels = [k for k in REFERENCES if k in refs] + [k for k in refs if k not in REFERENCES]
    for col, (desc, better) in columns.items():
        a = np.asarray(table_result[col], float)
        row = {"measure": desc}
        for label in labels:
            c = compare(a, np.asarray(refs[label][col] if hasattr(refs[label], "columns") else refs[label], float),
                        n_boot=n_boot, seed=seed, level=level, min_n=min_n)
            if c["n"] is not None:
                n_used.add(c["n"])
            row.setdefault(name, interval_text(*c["value"], share=share, digits=digits))
            row[f"vs {SHORT.get(label, label)}"] = \
                f"{interval_text(*c['diff'], share=share, digits=digits, sign=True)}: {judged(c['effect'], better)}"
        rows.append(row)
    n = max(n_used) if n_used else 0
    how = (too_few(n, min_n) or f"n = {n} pairs; [low, high] = paired bootstrap {int(level * 100)} % interval") + rough(n)
    note = (f"{how}. A 'vs' cell is the difference {name} − reference and its verdict; "
            f"'{NO_EFFECT}' = the interval includes 0.")
    return pd.DataFrame(rows).set_index("measure"), note


def show_claims(table_result, refs: Mapping, columns: Mapping[str, tuple[str, str | None]], **kw):
    """Display :func:`claims_table` (a table, then its one-line note) and return the DataFrame."""
    df, note = claims_table(table_result, refs, columns, **kw)
    try:
        from IPython import get_ipython
        from IPython.display import display
        shown = get_ipython() is not None
    except ImportError:  # pragma: no cover
        shown = False
    if shown:
        display(df)
    else:
        print(df.to_string())
    print(note)
    return df
