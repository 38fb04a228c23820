import pytest
import torch

from diffstyle_lab import HookedUNet, NoMiddleBlockError
from diffstyle_lab.models import tiny_unet


def test_h_and_g_are_read_at_module_boundaries():
    u = tiny_unet(levels=3)
    hu = HookedUNet(u)
    x = torch.randn(2, 3, 16, 16)
    with hu.record() as rec:
        hu.eps(x, 10)
    # h: the middle block output; g: the last down residual, same spatial size as h
    assert rec["h"].shape == (2, 32, 4, 4)
    assert rec["g"].shape[0] == 2 and rec["g"].shape[-2:] == rec["h"].shape[-2:]
    h, state = hu.down_mid(x, 10)
    torch.testing.assert_close(rec["h"], h)
    torch.testing.assert_close(rec["g"], state["skips"][-1])


def test_replacing_h_changes_the_output_and_none_keeps_it():
    hu = HookedUNet(tiny_unet())
    x = torch.randn(1, 3, 16, 16)
    base = hu.eps(x, 500)
    with hu.hooks(h=lambda h: None):
        same = hu.eps(x, 500)
    with hu.hooks(h=lambda h: torch.zeros_like(h)):
        other = hu.eps(x, 500)
    torch.testing.assert_close(base, same)
    assert (base - other).abs().max() > 1e-3


def test_replacing_g_changes_the_output():
    hu = HookedUNet(tiny_unet())
    x = torch.randn(1, 3, 16, 16)
    base = hu.eps(x, 500)
    with hu.hooks(g=lambda g: 3 * g):
        other = hu.eps(x, 500)
    assert (base - other).abs().max() > 1e-3


def test_no_hook_outlives_its_block_even_on_exception():
    hu = HookedUNet(tiny_unet())
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(RuntimeError, match="boom"):
        with hu.hooks(h=lambda h: h, g=lambda g: g):
            assert hu.has_hooks()
            raise RuntimeError("boom")
    assert not hu.has_hooks()

    def bad(h):
        raise KeyError("inside the hook")
    with pytest.raises(KeyError):
        with hu.hooks(h=bad):
            hu.eps(x, 1)
    assert not hu.has_hooks()


def test_wrong_replacement_shape_is_an_error():
    hu = HookedUNet(tiny_unet())
    with pytest.raises(ValueError, match="hook 'h' returned shape"):
        with hu.hooks(h=lambda h: h[:, :1]):
            hu.eps(torch.randn(1, 3, 16, 16), 1)
    assert not hu.has_hooks()


def test_model_without_mid_block_is_refused_with_a_clear_message():
    from diffusers import UNet2DModel
    u = UNet2DModel(sample_size=16, block_out_channels=(8, 16), down_block_types=("DownBlock2D",) * 2,
                    up_block_types=("UpBlock2D",) * 2, norm_num_groups=4, mid_block_type=None)
    with pytest.raises(NoMiddleBlockError, match="has no mid_block"):
        HookedUNet(u)


def test_unknown_hook_point():
    hu = HookedUNet(tiny_unet())
    with pytest.raises(ValueError, match="unknown hook point"):
        with hu.record("q"):
            pass
