"""How much does the decoder read h? A one-forward-pass probe of a model's h-space.

Take the style image's own DDIM trajectory x_t^style and replace (or mix) its h by the content
image's h at the same t. The *h-influence* is how far the predicted x_0 moves, as a share of the
distance between the two images' own predictions:

    r(t) = RMSE(P_t(x_t^s | h̃), P_t(x_t^s)) / RMSE(P_t(x_t^c), P_t(x_t^s))

r = 0: the decoder ignores h (the skips carry everything); r near 1: h alone carries what makes
the two predictions differ. The other image's x_t differs too, so the ceiling of r is below 1.
``eps_ratio`` is the same ratio on ε instead of P_t. Seconds per checkpoint on a CPU; used to
screen candidate default models before their full transfer scores (``training/emergence.py``).
"""

from __future__ import annotations

import torch

from .. import maths
from ..sampling import StepInfo, ddim_invert


@torch.no_grad()
def trajectory(model, x0: torch.Tensor, steps: int = 50, spacing: str = "authors") -> dict[int, tuple]:
    """DDIM-invert ``x0`` and return {t: (x_t, h_t)} for every grid t the model was evaluated at."""
    out: dict[int, tuple] = {}

    def keep(info: StepInfo):
        out[info.t] = (info.x.clone(), info.h.clone())
    ddim_invert(model, x0, steps, spacing, record_last=True, progress=False, callbacks=[keep])
    return out


def _rmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1).pow(2).mean(1).sqrt()


@torch.no_grad()
def h_influence(model, content: torch.Tensor, style: torch.Tensor, steps: int = 50,
                method: str = "replace", gamma: float = 1.0, ts=None) -> list[dict]:
    """r(t) (P_t ratio) and the ε ratio per grid t, averaged over the pairs (content[i], style[i]).

    Returns rows ``{"t", "r", "eps_ratio", "cos_h", "n"}``; ``cos_h`` is the mean cosine between the
    two images' h at t (near 1: h says little that is specific to an image)."""
    if content.shape != style.shape:
        raise ValueError(f"content {tuple(content.shape)} and style {tuple(style.shape)} must pair up one to one")
    tc, tsy = trajectory(model, content, steps), trajectory(model, style, steps)
    acp, hu = model.alphas_cumprod, model.hooked
    rows = []
    for t in sorted(t for t in tsy if ts is None or t in ts):
        (xs, hs), (xc, hc) = tsy[t], tc[t]
        a_t = float(acp[t])
        eps_s, eps_c = hu.eps(xs, t), hu.eps(xc, t)
        h_tilde = maths.mix_h(hs, hc, gamma, method)
        with hu.hooks(h=lambda h, v=h_tilde: v):
            eps_i = hu.eps(xs, t)
        p_s, p_c, p_i = (maths.pred_x0(x, e, a_t) for x, e in ((xs, eps_s), (xc, eps_c), (xs, eps_i)))
        r = _rmse(p_i, p_s) / _rmse(p_c, p_s).clamp_min(1e-12)
        er = _rmse(eps_i, eps_s) / _rmse(eps_c, eps_s).clamp_min(1e-12)
        cos = torch.nn.functional.cosine_similarity(hs.flatten(1), hc.flatten(1), dim=1)
        rows.append({"t": t, "r": float(r.mean()), "eps_ratio": float(er.mean()), "cos_h": float(cos.mean()),
                     "n": int(r.numel())})
    return rows


def peak(rows: list[dict], lo: int = 0, hi: int = 999, key: str = "r") -> tuple[int, float]:
    """(t, value) of the largest ``key`` among rows with lo ≤ t ≤ hi."""
    sel = [r for r in rows if lo <= r["t"] <= hi]
    if not sel:
        raise ValueError(f"no probed t in [{lo}, {hi}]")
    best = max(sel, key=lambda r: r[key])
    return best["t"], best[key]


@torch.no_grad()
def colour_in_h(model, faces: torch.Tensor, twins: torch.Tensor, steps: int = 50, ts=None) -> list[dict]:
    """How much *colour* h carries: :func:`h_influence` between each face and its recoloured twin (the same
    content factors in other colours, :func:`diffstyle_lab.faces.avatars.same_identity_other_colours`).

    ``r`` here is the share of the colour change between the two predictions that swapping h alone
    brings: 0 is the paper's split (colour stays with x_t and the skips), 1 means h carries all of it."""
    return h_influence(model, twins, faces, steps, ts=ts)


@torch.no_grad()
def skip_influence(model, content: torch.Tensor, style: torch.Tensor, steps: int = 50, ts=None) -> list[dict]:
    """Which skip levels the decoder reads the difference between two images from: on the style image's
    own trajectory, the skips feeding one up block (level 0 = the coarsest, next to h) are replaced by the
    content image's at the same t; ``r`` is the P_t ratio of :func:`h_influence`. With a recoloured twin as
    ``content`` this says where the decoder reads colour. Rows ``{"t", "level", "side", "r", "n"}``;
    level ``"h"`` is the h swap itself, for comparison."""
    if content.shape != style.shape:
        raise ValueError(f"content {tuple(content.shape)} and style {tuple(style.shape)} must pair up one to one")
    tc, tsy = trajectory(model, content, steps), trajectory(model, style, steps)
    acp, hu = model.alphas_cumprod, model.hooked
    ups = hu.unet.up_blocks
    rows = []
    for t in sorted(t for t in tsy if ts is None or t in ts):
        (xs, hs), (xc, hc) = tsy[t], tc[t]
        a_t = float(acp[t])
        eps_s, eps_c = hu.eps(xs, t), hu.eps(xc, t)
        p_s, p_c = maths.pred_x0(xs, eps_s, a_t), maths.pred_x0(xc, eps_c, a_t)
        denom = _rmse(p_c, p_s).clamp_min(1e-12)
        with hu.hooks(h=lambda h, v=hc: v):
            r_h = _rmse(maths.pred_x0(xs, hu.eps(xs, t), a_t), p_s) / denom
        rows.append({"t": t, "level": "h", "side": hs.shape[-1], "r": float(r_h.mean()), "n": int(r_h.numel())})
        for k in range(len(ups)):
            site = f"skips[{k}]"
            with hu.record(site) as kept:
                hu.eps(xc, t)
            with hu.hooks(**{site: lambda skips, v=kept[site]: v}):
                eps_i = hu.eps(xs, t)
            r = _rmse(maths.pred_x0(xs, eps_i, a_t), p_s) / denom
            rows.append({"t": t, "level": k, "side": kept[site][-1].shape[-1], "r": float(r.mean()),
                         "n": int(r.numel())})
    return rows
