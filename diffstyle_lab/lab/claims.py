"""The verdict sentences of the notebooks, computed from measured numbers: every measure against no
injection (γ = 0) and the two cheap baselines (:func:`claim`, :func:`compare`), intervals written one
way (:func:`interval_text`), the words for an effect (:func:`effect`, :func:`gap_sentence`). Part of
:mod:`diffstyle_lab.lab.notebook`."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

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
            word = c["effect"]
            if better and word in ("higher", "lower"):
                word += " (better)" if word == better else " (worse)"
            row[f"vs {SHORT.get(label, label)}"] = \
                f"{interval_text(*c['diff'], share=share, digits=digits, sign=True)}: {word}"
        rows.append(row)
    n = max(n_used) if n_used else 0
    how = (f"n = {n} pairs; [low, high] = paired bootstrap {int(level * 100)} % interval" if n >= max(min_n, 2) else
           f"n = {n} pair{'s' if n != 1 else ''}: too few for an interval (at least {min_n})")
    if 2 <= n <= 8:
        from math import comb
        how += f" (with n = {n} a bootstrap has only {comb(2 * n - 1, n)} distinct resamples: a rough interval)"
    note = (f"{how}. A 'vs' cell is the difference {name} − reference and its verdict; "
            "'no effect detected' = the interval includes 0.")
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


def gap_sentence(triple, label: str = "content injection") -> str:
    """``"content injection closes 15 % [12 %, 18 %] of the gap to the ideal"`` from a gap-closed share
    ``(value, low, high)``, with "— no effect detected" when the interval includes 0 (γ = 0, doing
    nothing, closes 0 by definition)."""
    v, lo, hi = _triple(tuple(triple)) or (float("nan"),) * 3
    word = effect(lo, hi)
    tail = " — no effect detected" if word == "no effect detected" else \
        (" (no interval)" if word.startswith("no interval") else "")
    return f"{label} closes {interval_text(v, lo, hi, share=True, digits=2)} of the gap to the ideal{tail}"
