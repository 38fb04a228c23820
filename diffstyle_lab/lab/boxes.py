"""The "The paper says / this model shows" box: the paper's claim next to what the loaded model's
folder measured (its ``summary.json``, written and read by :mod:`diffstyle_lab.faces.groundtruth_summary`;
its sentences by the verdict engine, :mod:`diffstyle_lab.stats.verdicts`). Part of
:mod:`diffstyle_lab.lab.notebook`."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..faces.groundtruth_summary import SUMMARY_FILE, read_summary_file
from ..models import data_path
from ..stats.verdicts import gap_sentence, interval_text

__all__ = ["SUMMARY_FILE", "model_folder", "read_summary", "paper_box", "show_box"]


# ---------------------------------------------------------------------------------------------
# "The paper says / this model shows"


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
    one-line ``ValueError`` (:func:`~diffstyle_lab.faces.groundtruth_summary.read_summary_file`)."""
    folder = model_folder(model)
    if folder is None or not (folder / SUMMARY_FILE).is_file():
        return None
    path = folder / SUMMARY_FILE
    data = read_summary_file(path)
    data["_path"] = str(path)
    return data


def paper_box(model, paper: str, keys: Sequence[str] = ("gap_closed", "layout_as_content", "colours_as_style"),
              about: str | None = None) -> str:
    """The "The paper says / this model shows" box (Markdown): ``paper`` is the paper's claim
    (typed: it is a quotation of the paper); the model's part is read from its folder's
    ``summary.json`` (:func:`read_summary`) and written with :func:`gap_sentence` /
    :func:`interval_text`, one short line per evaluation set, saying that those numbers come from the
    evaluation's pairs, not from the sample pairs the notebook draws — or says "not measured for this
    model". ``about``: what the paper's claim is about when the evaluation does not measure it (e.g.
    ``"style calibration"``): the box then says so instead of repeating the evaluation's numbers."""
    lines = ["| | |", "|---|---|", f"| **The paper says** | {paper} |"]
    s = read_summary(model)
    if s is None:
        lines.append(f"| **This model shows** | not measured for this model ({getattr(model, 'source', model)}: "
                     f"no `{SUMMARY_FILE}` in its folder; `training/groundtruth_eval.py` writes one) |")
        return "\n".join(lines)
    if about:
        lines.append(f"| **This model shows** | its evaluation (`{SUMMARY_FILE}`) measures injection at the model's "
                     f"defaults, not {about}; the measurements below are this notebook's own (notebook 04 has "
                     "the evaluation's numbers) |")
        return "\n".join(lines)
    st = s.get("settings", {})
    short = {k: st[k] for k in ("gamma", "t_edit", "t_boost", "calibrate", "omega") if k in st}
    settings = ", ".join(f"{k} {v}" for k, v in short.items())
    warn = ""
    try:
        if s.get("weights_sha256") and s["weights_sha256"] != model.weights_hash:
            warn = " **(measured on other weights than the ones loaded)**"
    except Exception:  # noqa: BLE001  (a model without a weights hash)
        pass
    rows = []
    for name, d in s["sets"].items():
        base = d.get("baselines", {})
        others = [(lbl, base.get(key, {}).get("gap_closed")) for lbl, key in
                  (("pixel blend", "pixel_blend"), ("Reinhard", "reinhard"))]
        txt = f"• *{name}* ({d.get('pairs', '?')} pairs; {d.get('description', '')}): " + \
            gap_sentence(tuple(d["gap_closed"])) + " (" + \
            ", ".join(f"{lbl} {interval_text(*(float('nan') if x is None else x for x in v), share=True, digits=2)}"
                      for lbl, v in others if v is not None) + ")"
        for k in keys[1:]:
            if k in d:
                v, lo, hi = (float("nan") if x is None else x for x in d[k])
                txt += f"; {k.replace('_', ' ')} in {interval_text(v, lo, hi, share=True, digits=2)} of those pairs"
        rows.append(txt)
    lines.append(f"| **This model shows** | measured by its evaluation (`{Path(s['_path']).name}`) on {s.get('model', '?')} "
                 f"({settings}){warn}, over the evaluation's own pairs — other images than the sample pairs "
                 "drawn below, which need not look the same: <br> " + " <br> ".join(rows) + " |")
    return "\n".join(lines)


def show_box(model, paper: str, about: str | None = None) -> str:
    """Display :func:`paper_box` as Markdown (and return its text, for printed summaries)."""
    text = paper_box(model, paper, about=about)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
        if get_ipython() is not None:
            display(Markdown(text))
    except ImportError:  # pragma: no cover
        pass
    return text
