"""``reverse()`` and ``ddim_invert()`` against an independent float64 re-implementation of the paper.

The reference below is written from the paper's equations (``docs/method.md`` §2, §4–7) and calls
none of the package's helpers: its own ᾱ table, grids, U-Net calls (stock forwards with a plain
forward hook on ``mid_block``, no split forward), Slerp over the masked elements, calibration and
steps. It shares only two documented conventions with the package: the noise draws (one CPU
generator per sample, seeded ``seed + i``, one float32 ``randn`` per boosted step) and the nearest
recorded h^content (ties to the larger t).

Each of these one-line mistakes in the package makes a test here fail (checked by applying it):
a symmetric step (P_t and D_t from ε̃), P_t and D_t swapped, no normalisation of P̃ in calibration,
``mask_norm`` ignored, σ dropped from D_t in boosted steps, ``t ≥ t_edit`` written ``t > t_edit``.
"""

import math

import pytest
import torch

import diffstyle_lab as dl
from diffstyle_lab import InjectionConfig

TOL = 1e-9          # float64: the package and the reference agree to ~1e-13 on values of order 1–20


# ---------------------------------------------------------------------------------------------
# The reference

def ref_alphas(scheduler_config):
    """ᾱ_t = ∏_{s ≤ t}(1 − β_s), β linear from beta_start to beta_end (float32 linspace, as diffusers)."""
    c = scheduler_config
    assert c.get("beta_schedule", "linear") == "linear"
    betas = torch.linspace(c["beta_start"], c["beta_end"], c["num_train_timesteps"], dtype=torch.float32).double()
    return torch.cumprod(1 - betas, 0)


def ref_grid(n, spacing="authors", T=1000):
    if spacing == "authors":                     # t_k = int(k/(n−1)·(T−1))
        return [int(k * (T - 1) / (n - 1) + 1e-6) for k in range(n)]
    assert spacing == "leading"
    return [k * (T // n) for k in range(n)]


class RefNet:
    """ε(x_t) and ε(x_t | h̃) with two stock forwards; h read and replaced by a hook on mid_block."""

    def __init__(self, unet):
        self.unet, self.h = unet, None

    def eps(self, x, t, h_tilde=None):
        """ε(x_t), or ε(x_t | h̃) with ``h_tilde``; the h the middle block computed is left in ``self.h``."""
        def hook(module, args, out):
            self.h = out
            return h_tilde
        handle = self.unet.mid_block.register_forward_hook(hook)
        try:
            return self.unet(x, torch.full((x.shape[0],), t, dtype=torch.long)).sample
        finally:
            handle.remove()


def ref_slerp_region(h, target, gamma, m):
    """Slerp(h, target, γ) of one sample over the elements where m = 1 (all when m is None); h elsewhere."""
    sel = torch.ones(h.shape[1:], dtype=torch.bool) if m is None else m.bool()
    a, b = h[:, sel], target[:, sel]
    cos = float((a * b).sum() / (a.norm() * b.norm()))
    theta = math.acos(max(-1.0, min(1.0, cos)))
    out = h.clone()
    out[:, sel] = (math.sin((1 - gamma) * theta) * a + math.sin(gamma * theta) * b) / math.sin(theta)
    return out


def ref_mix(h, hc, gamma, mask=None, normalise=True, blend=False):
    """h̃ per sample: normalised Slerp (paper §4.2) or plain Slerp; under a 0/1 mask at h's
    resolution over the masked region (paper, local mixing), or with ``blend`` over the whole
    tensor and then m⊙h̃ + (1−m)⊙h."""
    out = []
    for i in range(h.shape[0]):
        m = None if mask is None else mask[min(i, mask.shape[0] - 1), 0]
        region = None if (m is None or blend) else m
        sel = torch.ones(h.shape[2:], dtype=torch.bool) if region is None else region.bool()
        target = hc[i]
        if normalise:
            target = hc[i] / hc[i][:, sel].norm() * h[i][:, sel].norm()
        mixed = ref_slerp_region(h[i], target, gamma, region)
        if blend and m is not None:
            mixed = m * mixed + (1 - m) * h[i]
        out.append(mixed)
    return torch.stack(out)


def ref_invert(net, acp, x0, ts, record_last=True):
    """DDIM inversion x_{t'} = √ᾱ_{t'}·P_t(ε) + √(1−ᾱ_{t'})·ε, recording h at each evaluated t."""
    x, hs, rec = x0.clone(), [], []
    for k in range(len(ts) - 1):
        t, tn = ts[k], ts[k + 1]
        eps = net.eps(x, t)
        hs.append(net.h)
        rec.append(t)
        p = (x - (1 - acp[t]).sqrt() * eps) / acp[t].sqrt()
        x = acp[tn].sqrt() * p + (1 - acp[tn]).sqrt() * eps
    if record_last:
        net.eps(x, ts[-1])
        hs.append(net.h)
        rec.append(ts[-1])
    return x, torch.stack(hs, 1), rec


def ref_reverse(net, acp, x_T, hs, rec_ts, *, gamma, t_edit, t_boost=0, steps=10, spacing="authors",
                calibrate=False, omega=0.3, mask=None, normalise=True, blend=False, inject_ts=None,
                boost_only_on_inject_ts=False, seed=0):
    """The asymmetric reverse process (paper §4.1, eq. of x̃_{t−1}) with boosting and calibration."""
    ts = ref_grid(steps, spacing)
    inject_ts = set(ts if inject_ts is None else inject_ts)
    gens = [torch.Generator().manual_seed(seed + i) for i in range(x_T.shape[0])]
    x = x_T.clone()
    for i in reversed(range(len(ts))):
        t = ts[i]
        a, a_prev = acp[t], (acp[ts[i - 1]] if i > 0 else torch.tensor(1.0, dtype=torch.float64))
        boosted = i > 0 and 0 < t_boost and t <= t_boost and (not boost_only_on_inject_ts or t in inject_ts)
        sigma = ((1 - a_prev) / (1 - a)).sqrt() * (1 - a / a_prev).sqrt() if boosted else 0.0
        eps = net.eps(x, t)
        eps_tilde = eps
        if hs is not None and t >= t_edit and t in inject_ts:
            j = min(range(len(rec_ts)), key=lambda k: (abs(rec_ts[k] - t), -rec_ts[k]))
            h_tilde = ref_mix(net.h, hs[:, j], gamma, mask, normalise, blend)
            eps_tilde = net.eps(x, t, h_tilde)
            if calibrate:                                     # paper §4.3, method.md §7 steps 1–4
                p = (x - (1 - a).sqrt() * eps) / a.sqrt()
                pt = (x - (1 - a).sqrt() * eps_tilde) / a.sqrt()
                dims = (1, 2, 3)
                mu = pt.mean(dims, keepdim=True)
                pt = mu + (pt - mu) * p.std(dims, keepdim=True) / pt.std(dims, keepdim=True)
                x = x + a.sqrt() * (pt - p) + omega * (1 - a).sqrt() * (eps_tilde - eps)
                eps = eps_tilde = net.eps(x, t)
        p_t = (x - (1 - a).sqrt() * eps_tilde) / a.sqrt()              # P_t(ε̃)
        d_t = (1 - a_prev - sigma ** 2).sqrt() * eps                    # D_t(ε)
        x = a_prev.sqrt() * p_t + d_t
        if boosted:
            z = torch.stack([torch.randn(x.shape[1:], generator=g, dtype=torch.float32) for g in gens]).double()
            x = x + sigma * z
    return x


# ---------------------------------------------------------------------------------------------
# Fixtures: a tiny random U-Net and the shipped model, both in float64

def _setup(model, n=2, seed=0):
    model = model.to(dtype=torch.float64)
    s = model.sample_size
    x = torch.rand(n, 3, s, s, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1
    net = RefNet(model.unet)
    acp = ref_alphas(model.scheduler_config)
    return model, x, net, acp


@pytest.fixture(scope="module")
def tiny():
    return _setup(dl.tiny_model(levels=3))


@pytest.fixture(scope="module")
def shipped():
    return _setup(dl.load_default_model())


def _half_mask(size):
    """A 0/1 mask, left half on, whose blocks align with h's cells (exact at h's resolution)."""
    m = torch.zeros(size, size)
    m[:, : size // 2] = 1
    return m


def _compare(setup, steps=10, spacing="authors", inversion_steps=10, record_last=True, **kw):
    model, x, net, acp = setup
    inv = dl.ddim_invert(model, x, steps=inversion_steps, spacing=spacing, record_last=record_last, progress=False)
    x_T, hs, rec = ref_invert(net, acp, x, ref_grid(inversion_steps, spacing), record_last)
    assert (inv.x_T - x_T).abs().max() <= TOL and (inv.h - hs).abs().max() <= TOL and inv.ts == rec
    style_T = x_T.flip(0)
    ref_kw = {k: kw[k] for k in ("gamma", "t_edit", "t_boost", "calibrate", "omega", "seed") if k in kw}
    mask = kw.get("mask")
    if mask is not None:
        h_size = hs.shape[-1]
        f = mask.shape[-1] // h_size
        ref_kw["mask"] = mask.view(h_size, f, h_size, f).mean((1, 3))[None, None].double()
        assert set(ref_kw["mask"].unique().tolist()) <= {0.0, 1.0}
    ref_kw["normalise"] = kw.get("mask_norm", "normalised") == "normalised" or mask is None
    ref_kw["blend"] = kw.get("mask_mode", "region") == "blend"
    cfg = InjectionConfig(steps=steps, spacing=spacing, **kw)
    if cfg.inject_every > 1:
        ref_kw["inject_ts"] = ref_grid(steps // cfg.inject_every, spacing)
        ref_kw["boost_only_on_inject_ts"] = cfg.boost == "authors"
    ours = dl.reverse(model, style_T, inv, cfg, progress=False)
    ref = ref_reverse(net, acp, style_T, hs, rec, steps=steps, spacing=spacing, **ref_kw)
    plain = ref_reverse(net, acp, style_T, None, rec, steps=steps, spacing=spacing, gamma=0.0, t_edit=0,
                        t_boost=kw.get("t_boost", 0), seed=kw.get("seed", 0))
    return (ours - ref).abs().max().item(), (ref - plain).abs().max().item()


# ---------------------------------------------------------------------------------------------
# The tests. Grid of 10 (authors): 0, 111, 222, 333, 444, …, 999; t_edit = 333 lies on it.

CASES = {
    "inject, t_edit on the grid": dict(gamma=0.6, t_edit=333, t_boost=0),
    "boost σ at 222, 111": dict(gamma=0.6, t_edit=333, t_boost=250, seed=4),
    "calibration ω=0": dict(gamma=0.6, t_edit=333, t_boost=0, calibrate=True, omega=0.0),
    "calibration ω=0.3": dict(gamma=0.6, t_edit=333, t_boost=0, calibrate=True, omega=0.3),
    "calibration ω=1": dict(gamma=0.6, t_edit=333, t_boost=0, calibrate=True, omega=1.0),
    "mask, normalised over the region": dict(gamma=0.7, t_edit=333, t_boost=0, mask=_half_mask(16)),
    "mask, plain Slerp (mask_norm none)": dict(gamma=0.7, t_edit=333, t_boost=0, mask=_half_mask(16), mask_norm="none"),
    "mask, blended whole-tensor Slerp": dict(gamma=0.7, t_edit=333, t_boost=0, mask=_half_mask(16), mask_mode="blend"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_reverse_matches_the_reference_on_a_tiny_unet(tiny, case):
    diff, effect = _compare(tiny, **CASES[case])
    assert diff <= TOL, f"{case}: max|Δ| = {diff:.3g} against the reference"
    assert effect > 1e-2, f"{case}: the injection changed nothing, so the comparison proves nothing"


def test_the_authors_interval_and_boost_match_the_reference(tiny):
    # 40 leading steps (0, 25, …, 975), injection and boost noise only on 0, 100, …, 900
    diff, effect = _compare(tiny, steps=40, spacing="leading", gamma=0.6, t_edit=300, t_boost=200, seed=2,
                            inject_every=4, boost="authors", record_last=False)
    assert diff <= TOL and effect > 1e-2


SHIPPED = {
    "inject + boost, t_edit on the grid": dict(gamma=0.5, t_edit=333, t_boost=250, seed=1),
    "calibration ω=0.3 under a region mask": dict(gamma=0.5, t_edit=333, t_boost=0, calibrate=True, omega=0.3,
                                                 mask=_half_mask(32)),
    "mask_norm none": dict(gamma=0.5, t_edit=333, t_boost=0, mask=_half_mask(32), mask_norm="none"),
}


@pytest.mark.parametrize("case", list(SHIPPED))
def test_reverse_matches_the_reference_on_the_shipped_model(shipped, case):
    diff, effect = _compare(shipped, **SHIPPED[case])
    assert diff <= TOL, f"{case}: max|Δ| = {diff:.3g} against the reference"
    assert effect > 1e-2


def test_the_reference_itself_tells_the_settings_apart(tiny):
    """Sanity of the oracle: each setting the mutations touch changes the reference's output."""
    model, x, net, acp = tiny
    x_T, hs, rec = ref_invert(net, acp, x, ref_grid(10))
    base = dict(gamma=0.6, t_edit=333, steps=10)
    out = {k: ref_reverse(net, acp, x_T.flip(0), hs, rec, **{**base, **kw}) for k, kw in {
        "plain": {}, "t_edit above": dict(t_edit=334), "cal0": dict(calibrate=True, omega=0.0),
        "cal1": dict(calibrate=True, omega=1.0)}.items()}
    assert (out["plain"] - out["t_edit above"]).abs().max() > 1e-3        # the step at t = t_edit counts
    assert (out["cal0"] - out["cal1"]).abs().max() > 1e-3
