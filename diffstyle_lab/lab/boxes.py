"""The "The paper says / this model shows" box: the paper's claim next to what the loaded model's
folder measured (its ``summary.json``). Part of :mod:`diffstyle_lab.lab.notebook`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..models import data_path
from .claims import NO_INJECTION, PIXEL_BLEND, REINHARD, gap_sentence, interval_text

__all__ = ["SUMMARY_FILE", "model_folder", "read_summary", "paper_box", "show_box"]


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
