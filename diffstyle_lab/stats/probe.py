"""How much does the decoder read h? A one-forward-pass probe of a model's h-space.

Take the style image's own DDIM trajectory x_t^style and replace (or mix) its h by the content
image's h at the same t. The *h-influence* is how far the predicted x_0 moves, as a share of the
distance between the two images' own predictions:

    r(t) = RMSE(P_t(x_t^s | h̃), P_t(x_t^s)) / RMSE(P_t(x_t^c), P_t(x_t^s))

r = 0: the decoder ignores h (the skips carry everything); r near 1: h alone carries what makes
the two predictions differ. The other image's x_t differs too, so the ceiling of r is below 1.
``eps_ratio`` is the same ratio on ε instead of P_t. Seconds per checkpoint on a CPU; used to
screen candidate default models before their full transfer scores (``scripts/emergence.py``).
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
