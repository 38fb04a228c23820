"""The split forward (down+mid once, up twice) must equal the stock forward.

Equivalences run in float64 (``.double()``): in float32, kernels chosen per batch size and thread
count differ by ~1e-6 relative, which the first reverse step multiplies by 1/√ᾱ_999 ≈ 14.6."""
import dataclasses
import itertools

import pytest
import torch

from diffstyle_lab import HookedUNet, InjectionConfig, ddim_invert, reverse, tiny_model
from diffstyle_lab.models import tiny_unet

CONFIGS = [dict(levels=l, attention=a, layers_per_block=n)
           for l, a, n in itertools.product((2, 3, 4), (True, False), (1, 2))]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"L{c['levels']}-attn{int(c['attention'])}-n{c['layers_per_block']}")
def test_split_equals_stock(cfg):
    u = tiny_unet(**cfg, seed=1).double()
    hu = HookedUNet(u)
    assert hu.can_split
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    t = torch.tensor([0, 400, 999])
    stock = u(x, t).sample
    h, state = hu.down_mid(x, t)
    split = hu.up(h, state)
    assert (stock - split).abs().max() <= 1e-12


def test_asymmetric_eps_split_equals_doubling():
    hu = HookedUNet(tiny_unet(levels=3).double())
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    edit = lambda h: 0.5 * h.flip(0) + 0.1  # noqa: E731
    a = hu.asymmetric_eps(x, 300, edit)
    b = hu.asymmetric_eps(x, 300, edit, force_doubling=True)
    for u, v in zip(a[:4], b[:4]):
        assert (u - v).abs().max() <= 1e-12
    # the split path shares the down path; eps equals the stock forward
    assert (a[0] - hu.eps(x, 300)).abs().max() <= 1e-12
    assert (a[1] - a[0]).abs().max() > 1e-3            # and the edit really changed ε̃


def test_injection_split_equals_doubling():
    m = tiny_model(levels=3).to(dtype=torch.float64)
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    inv = ddim_invert(m, x, steps=10, progress=False)
    for calibrate in (False, True):
        # grid 0, 111, 222, 333, …: t_boost = 250 adds noise at t = 222 and 111 (σ > 0), t_edit = 300
        # injects at t ≥ 333
        cfg = InjectionConfig(gamma=0.6, t_edit=300, t_boost=250, steps=10, calibrate=calibrate, seed=3)
        a = reverse(m, inv.x_T.flip(0), inv, cfg, progress=False)
        b = reverse(m, inv.x_T.flip(0), inv, cfg, progress=False, force_doubling=True)
        assert (a - b).abs().max() <= 1e-10
        unboosted = reverse(m, inv.x_T.flip(0), inv, dataclasses.replace(cfg, t_boost=0), progress=False)
        assert (a - unboosted).abs().max() > 1e-2          # the boost noise really entered


def test_unknown_layout_falls_back_to_doubling_with_a_warning():
    from diffusers import UNet2DConditionModel
    u = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                             block_out_channels=(8, 16), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                             up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=8,
                             norm_num_groups=4, attention_head_dim=4).double()
    hu = HookedUNet(u)
    assert not hu.can_split
    x = torch.randn(1, 4, 8, 8, dtype=torch.float64)
    enc = torch.randn(1, 3, 8, dtype=torch.float64)
    with pytest.warns(UserWarning, match="batch doubling"):
        eps, eps_t, h, ht, g = hu.asymmetric_eps(x, 10, lambda h: h * 0, encoder_hidden_states=enc)
    torch.testing.assert_close(eps, u(x, torch.tensor([10]), encoder_hidden_states=enc).sample, atol=1e-12, rtol=0)
    assert (eps - eps_t).abs().max() > 1e-4
