import math

import pytest
import torch

from diffstyle_lab import maths


def _norm(x):
    return x.flatten(1).norm(dim=1)


def test_normalised_slerp_keeps_the_norm_of_h():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(4, 8, 4, 4, generator=g) * torch.tensor([1, 2, 5, 0.1]).view(-1, 1, 1, 1)
    hc = torch.randn(4, 8, 4, 4, generator=g) * 7
    for gamma in (0.0, 0.3, 0.5, 1.0):
        out = maths.normalised_slerp(h, hc, gamma)
        torch.testing.assert_close(_norm(out), _norm(h), rtol=1e-5, atol=1e-5)


def test_gamma_one_gives_the_content_direction_at_the_norm_of_h():
    h, hc = torch.randn(3, 5, 2, 2), torch.randn(3, 5, 2, 2)
    out = maths.normalised_slerp(h, hc, 1.0)
    want = hc / _norm(hc).view(-1, 1, 1, 1) * _norm(h).view(-1, 1, 1, 1)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(maths.normalised_slerp(h, hc, 0.0), h, rtol=1e-5, atol=1e-6)


def test_slerp_follows_the_great_circle():
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0]])
    out = maths.slerp(a, b, 0.5)
    torch.testing.assert_close(out, torch.tensor([[math.sqrt(0.5), math.sqrt(0.5)]]))


@pytest.mark.parametrize("case", ["identical", "opposite", "zero_h", "zero_content", "both_zero"])
def test_no_nan_or_inf_on_degenerate_inputs(case):
    h = torch.randn(2, 4, 3, 3)
    hc = {"identical": h.clone(), "opposite": -h, "zero_h": h, "zero_content": torch.zeros_like(h),
          "both_zero": torch.zeros_like(h)}[case]
    if case in ("zero_h", "both_zero"):
        h = torch.zeros_like(h)
    for gamma in (0.0, 0.3, 1.0):
        for f in (maths.slerp, maths.normalised_slerp):
            out = f(h, hc, gamma)
            assert torch.isfinite(out).all(), (case, gamma, f.__name__)
    if case == "identical":
        torch.testing.assert_close(maths.normalised_slerp(h, hc, 0.4), h, rtol=1e-5, atol=1e-5)


def test_ablations():
    h, hc = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2)
    torch.testing.assert_close(maths.mix_h(h, hc, 0.7, "replace"), hc)
    torch.testing.assert_close(maths.mix_h(h, hc, 1.0, "add"), h + hc)
    torch.testing.assert_close(maths.mix_h(h, hc, 0.25, "lerp"), 0.75 * h + 0.25 * hc)
    with pytest.raises(ValueError, match="method='nope' is unknown"):
        maths.mix_h(h, hc, 0.5, "nope")


def _calibration_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    x, eps, eps_t = (torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(3))
    return x, eps, 1.7 * eps_t + 0.4, 0.37              # ε̃ with another spread and mean than ε


def test_normalise_like_keeps_the_mean_of_p_tilde_and_takes_the_spread_of_p():
    x, eps, eps_t, a_t = _calibration_inputs(1)
    p, p_t = maths.pred_x0(x, eps, a_t), maths.pred_x0(x, eps_t, a_t)
    out = maths.normalise_like(p_t, p)
    dims = (1, 2, 3)
    torch.testing.assert_close(out.mean(dims), p_t.mean(dims), rtol=0, atol=1e-12)
    torch.testing.assert_close(out.std(dims), p.std(dims), rtol=0, atol=1e-12)
    assert (p_t.std(dims) - p.std(dims)).abs().min() > 0.1          # so the test is not vacuous
    # an increasing affine map of P̃ per sample: the ranks of P̃'s elements are kept
    assert torch.equal(out.flatten(1).argsort(1), p_t.flatten(1).argsort(1))


@pytest.mark.parametrize("omega", [0.0, 0.3, 1.0])
def test_calibrated_point_decomposes_into_the_normalised_injected_x0_and_a_noise_mix(omega):
    """x̃' = x̃ + dx is the point √ᾱ·norm(P̃) + √(1−ᾱ)·((1−ω)ε + ωε̃): a plain step from it with ε
    (ω = 0) predicts the normalised injected x_0; ω = 1 makes (norm(P̃), ε̃) its own decomposition."""
    x, eps, eps_t, a_t = _calibration_inputs(2)
    x_cal = x + maths.calibration_shift(x, eps, eps_t, a_t, omega)
    p_norm = maths.normalise_like(maths.pred_x0(x, eps_t, a_t), maths.pred_x0(x, eps, a_t))
    want = a_t ** 0.5 * p_norm + (1 - a_t) ** 0.5 * ((1 - omega) * eps + omega * eps_t)
    torch.testing.assert_close(x_cal, want, rtol=0, atol=1e-12)
    if omega == 0.0:
        torch.testing.assert_close(maths.pred_x0(x_cal, eps, a_t), p_norm, rtol=0, atol=1e-12)


def test_ddim_step_inverts_its_inversion():
    x0 = torch.randn(2, 3, 4, 4)
    eps = torch.randn(2, 3, 4, 4)
    a_t, a_next = 0.9, 0.6
    x_next = maths.ddim_inversion_step(x0, eps, a_t, a_next)
    back = maths.ddim_step(maths.pred_x0(x_next, eps, a_next), eps, a_t)
    torch.testing.assert_close(back, x0, rtol=1e-5, atol=1e-5)


def test_sigma_is_zero_for_eta_zero_and_ddpm_like_for_eta_one():
    assert float(maths.ddim_sigma(torch.tensor(0.5), torch.tensor(0.6), 0.0)) == 0.0
    s = maths.ddim_sigma(0.5, 0.6, 1.0)
    assert s == pytest.approx(((1 - 0.6) / (1 - 0.5)) ** 0.5 * (1 - 0.5 / 0.6) ** 0.5)


@pytest.mark.parametrize("shape", [(8, 8), (1, 8, 8), (2, 1, 8, 8), (32, 32), (2, 2)])
def test_masks_of_any_resolution_are_resized_to_h(shape):
    m = torch.rand(shape)
    out = maths.resize_mask(m, (4, 4))
    assert out.shape[-2:] == (4, 4) and out.shape[1] == 1


@pytest.mark.parametrize("shape,msg", [((3, 8, 8), "1×H×W"), ((1, 2, 8, 8), "B×1×H×W"), ((8,), "dimensions"),
                                       ((1, 1, 1, 8, 8), "dimensions")])
def test_masks_of_the_wrong_rank_or_shape_are_refused(shape, msg):
    with pytest.raises(ValueError, match=msg):
        maths.resize_mask(torch.ones(shape), (4, 4))


def test_mask_values_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        maths.resize_mask(torch.full((4, 4), 2.0), (4, 4))


def test_region_slerp_keeps_the_norm_inside_the_mask_and_ignores_what_is_outside():
    g = torch.Generator().manual_seed(3)
    h, hc = (torch.randn(2, 4, 4, 4, generator=g, dtype=torch.float64) for _ in range(2))
    m = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    m[..., :2] = 1
    out = maths.normalised_slerp(h, hc, 0.6, region=m)
    inside = lambda v: v[..., :2].flatten(1).norm(dim=1)  # noqa: E731
    torch.testing.assert_close(inside(out), inside(h), rtol=0, atol=1e-12)
    # what lies outside the region does not change the result inside it
    h2, hc2 = h.clone(), hc.clone()
    h2[..., 2:] += 5.0
    hc2[..., 2:] *= -3.0
    out2 = maths.normalised_slerp(h2, hc2, 0.6, region=m)
    torch.testing.assert_close(out2[..., :2], out[..., :2], rtol=0, atol=1e-12)
    assert (maths.normalised_slerp(h2, hc2, 0.6)[..., :2] - out[..., :2]).abs().max() > 1e-2   # whole-tensor differs
