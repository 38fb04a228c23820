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


def _tiny_unets():
    """A UNet2DModel (skips passed by position) and a UNet2DConditionModel (by keyword), float64."""
    from diffusers import UNet2DConditionModel
    from diffstyle_lab.models import tiny_unet
    torch.manual_seed(0)
    cond = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=8,
                                norm_num_groups=4, attention_head_dim=4).double().eval()
    plain = tiny_unet(seed=0).double().eval()
    return [(plain, torch.randn(2, 3, 16, 16, dtype=torch.float64), {}),
            (cond, torch.randn(2, 4, 8, 8, dtype=torch.float64),
             {"encoder_hidden_states": torch.randn(2, 3, 8, dtype=torch.float64)})]


@pytest.mark.parametrize("which", [0, 1], ids=["UNet2DModel", "UNet2DConditionModel"])
def test_skip_sites_are_indexed_by_up_block_and_work_on_both_unet_classes(which):
    """skips[k] is every residual handed to up block k, on a U-Net that passes them by position and on one that
    passes them by keyword; replacing them changes the output exactly as a by-hand pre-hook does; a hook with a
    ``site`` keyword is told its site's name; nothing outlives the block."""
    from diffstyle_lab.hooks import HookedUNet
    unet, x, cond = _tiny_unets()[which]
    hu = HookedUNet(unet)
    n = len(unet.up_blocks)
    assert [s for s in hu.sites if s.startswith("skips[")] == [f"skips[{k}]" for k in range(n)]
    t = torch.tensor([10, 500])
    with torch.no_grad():
        plain = unet(x, t, **cond).sample
        told = []
        with hu.record(*[f"skips[{k}]" for k in range(n)]) as rec, \
                hu.hooks(**{f"skips[{k}]": (lambda r, site: told.append(site)) for k in range(n)}):
            again = unet(x, t, **cond).sample
        torch.testing.assert_close(again, plain, rtol=0, atol=0)          # None leaves the skips alone
        assert sorted(told) == sorted(f"skips[{k}]" for k in range(n))
        for k in range(n):
            assert isinstance(rec[f"skips[{k}]"], tuple) and len(rec[f"skips[{k}]"]) == len(unet.up_blocks[k].resnets)
        with hu.hooks(**{"skips[1]": lambda r: tuple(0.5 * v for v in r)}):
            halved = unet(x, t, **cond).sample

        def by_hand(mod, args, kwargs):               # the same edit written for this class's calling convention
            if "res_hidden_states_tuple" in kwargs:
                return args, {**kwargs, "res_hidden_states_tuple": tuple(0.5 * v for v in kwargs["res_hidden_states_tuple"])}
            return (args[0], tuple(0.5 * v for v in args[1])) + tuple(args[2:]), kwargs
        hd = unet.up_blocks[1].register_forward_pre_hook(by_hand, with_kwargs=True)
        want = unet(x, t, **cond).sample
        hd.remove()
    torch.testing.assert_close(halved, want, rtol=0, atol=0)
    assert (halved - plain).abs().max() > 1e-6
    assert not hu.has_hooks()
    with pytest.raises(ValueError, match=r"skips\[7\].*skips\[0\.\.1\]"):
        with hu.hooks(**{"skips[7]": lambda r: r}):
            pass
    with pytest.raises(ValueError, match="returned 1 skips"):
        with hu.hooks(**{"skips[0]": lambda r: r[:1]}):
            unet(x, t, **cond)
    assert not hu.has_hooks()


def test_no_hand_written_unet_hook_outside_the_hooks_module():
    """One way to hook the U-Net: forward (pre-)hooks are registered in diffstyle_lab/hooks.py only — the
    package, the scripts and the notebooks go through its named sites (tests may count calls)."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    files = [p for d in ("diffstyle_lab", "scripts", "notebooks") for p in (root / d).rglob("*.py")]
    assert len(files) > 20
    offenders = [str(p.relative_to(root)) for p in files
                 if p.name != "hooks.py" and ("register_forward_pre_hook" in p.read_text(encoding="utf-8")
                                               or "register_forward_hook" in p.read_text(encoding="utf-8"))]
    assert offenders == [], f"forward hooks written by hand (use HookedUNet.hooks/attach): {offenders}"
