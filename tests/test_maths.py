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


def test_calibration_with_omega_one_reduces_to_the_normalisation_term():
    g = torch.Generator().manual_seed(1)
    x, eps, eps_t = (torch.randn(2, 3, 8, 8, generator=g) for _ in range(3))
    a_t = 0.37
    dx = maths.calibration_shift(x, eps, eps_t, a_t, omega=1.0)
    p = maths.pred_x0(x, eps, a_t)
    p_t = maths.pred_x0(x, eps_t, a_t)
    want = a_t ** 0.5 * (maths.normalise_like(p_t, p) - p_t)
    torch.testing.assert_close(dx, want, rtol=1e-4, atol=1e-5)
    # when P̃ already has P's spread, the normalisation term vanishes and so does dx
    eps_same_spread = eps + 0.0
    assert maths.calibration_shift(x, eps, eps_same_spread, a_t, 1.0).abs().max() < 1e-5


def test_calibration_with_omega_zero_lands_on_the_injected_prediction():
    g = torch.Generator().manual_seed(2)
    x, eps, eps_t = (torch.randn(1, 3, 8, 8, generator=g) for _ in range(3))
    a_t = 0.5
    dx = maths.calibration_shift(x, eps, eps_t, a_t, omega=0.0)
    p = maths.pred_x0(x, eps, a_t)
    p_t = maths.normalise_like(maths.pred_x0(x, eps_t, a_t), p)
    torch.testing.assert_close(dx, a_t ** 0.5 * (p_t - p))


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
