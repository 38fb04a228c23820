"""Original DDPM / SDEdit checkpoints → diffusers folders (diffstyle_lab.backends.convert)."""

import argparse
import json

import pytest
import torch

from diffstyle_lab.backends import convert as C
from diffstyle_lab.models import load_model


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def ddpm_layout_unet(seed=0):
    """The google/ddpm-*-256 layout scaled down: 3 levels at 32 px, attention at 16 px (level 1),
    two ResNets per level, DDPM's embedding/padding/eps conventions."""
    from diffusers import UNet2DModel
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
                       block_out_channels=(32, 64, 64),
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                       attention_head_dim=None, norm_num_groups=32, norm_eps=1e-6, flip_sin_to_cos=False,
                       freq_shift=1, downsample_padding=0).eval().requires_grad_(False)


class NotATensor:
    pass


@pytest.fixture(scope="module")
def unet():
    return ddpm_layout_unet()


@pytest.fixture(scope="module")
def original(unet):
    return C.to_original(unet)


def _eps(u, x, ts):
    with torch.no_grad():
        return torch.stack([u(x, torch.full((len(x),), t)).sample for t in ts])


def test_inverse_mapping_gives_the_original_key_layout(original):
    # names and shapes as in the original DDPM code
    assert original["temb.dense.0.weight"].shape == (128, 32)
    assert original["down.1.attn.1.q.weight"].shape == (64, 64, 1, 1)
    assert original["mid.attn_1.proj_out.weight"].shape == (64, 64, 1, 1)
    assert original["down.0.downsample.conv.weight"].shape == (32, 32, 3, 3)
    assert original["up.0.block.2.nin_shortcut.weight"].shape == (32, 64, 1, 1)   # skip from conv_in: 32+32 → 32
    assert original["up.2.upsample.conv.weight"].shape == (64, 64, 3, 3)
    assert original["up.1.attn.2.norm.weight"].shape == (64,)
    assert "down.2.downsample.conv.weight" not in original and "up.0.upsample.conv.weight" not in original
    assert {k.split(".")[0] for k in original} == {"temb", "conv_in", "down", "mid", "up", "norm_out", "conv_out"}
    assert set(original) == set(C.OriginalDDPM(32, (1, 2, 2), 2, [1]).state_dict())
    arch = C.infer_architecture(original)
    assert arch == {"ch": 32, "ch_mult": [1, 2, 2], "num_res_blocks": 2, "attn_levels": [1], "in_channels": 3,
                    "out_ch": 3, "temb_ch": 128}


def test_original_network_computes_what_the_converted_model_computes(unet, original):
    ref = C.OriginalDDPM(32, (1, 2, 2), 2, [1])
    ref.load_state_dict(original, strict=True)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = torch.stack([ref.eval()(x, torch.full((2,), t)) for t in (0, 500, 999)])
    torch.testing.assert_close(a, _eps(unet, x, (0, 500, 999)), atol=1e-5, rtol=1e-4)


def test_ckpt_round_trip_is_exact(tmp_path, unet, original):
    ckpt = tmp_path / "celeba_hq.ckpt"
    torch.save(original, ckpt)
    rec = C.convert(ckpt, tmp_path / "out")
    out = tmp_path / "out"
    assert (out / "config.json").is_file() and (out / "diffusion_pytorch_model.safetensors").is_file()
    sch = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert (sch["beta_start"], sch["beta_end"], sch["beta_schedule"], sch["num_train_timesteps"]) == \
        (1e-4, 0.02, "linear", 1000)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["down_block_types"] == ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"]
    assert cfg["up_block_types"] == ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]
    assert cfg["sample_size"] == 32 and cfg["freq_shift"] == 1 and cfg["flip_sin_to_cos"] is False
    assert rec["sample_size_inferred"] and rec["verified_max_abs_diff"] < 1e-4
    assert json.loads((out / "conversion.json").read_text())["source_sha256"] == rec["source_sha256"]
    m = load_model(out)
    for k, v in unet.state_dict().items():
        assert torch.equal(m.unet.state_dict()[k], v), k
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert torch.equal(_eps(m.unet, x, (10, 900)), _eps(unet, x, (10, 900)))
    # and the project's samplers run on it
    from diffstyle_lab import ddim_invert
    inv = ddim_invert(m, x[:1].clamp(-1, 1), steps=3, progress=False)
    assert inv.h.shape == (1, 3, 64, 8, 8)
    with pytest.raises(C.ConversionError, match="not empty"):
        C.convert(ckpt, out)
    C.convert(ckpt, out, overwrite=True, do_verify=False)


def test_training_checkpoint_containers(tmp_path, unet, original):
    ema_unet = ddpm_layout_unet(seed=5)
    ema = {"module." + k: v for k, v in C.to_original(ema_unet).items()}
    model = {"module." + k: v for k, v in original.items()}
    states = [model, {"state": {}, "param_groups": [{"lr": 2e-4}]}, 10, 5000, ema]   # the DDIM training code's list
    torch.save(states, tmp_path / "ckpt.pth")
    sd = C.read_checkpoint(tmp_path / "ckpt.pth")
    assert set(sd) == set(original) and torch.equal(sd["conv_in.weight"], original["conv_in.weight"])
    sd_ema = C.read_checkpoint(tmp_path / "ckpt.pth", ema=True)
    assert torch.equal(sd_ema["conv_out.weight"], ema_unet.conv_out.weight)
    torch.save({"state_dict": original, "epoch": 3}, tmp_path / "wrapped.ckpt")
    assert set(C.read_checkpoint(tmp_path / "wrapped.ckpt")) == set(original)
    with pytest.raises(C.ConversionError, match="no entry 'nope'"):
        C.read_checkpoint(tmp_path / "wrapped.ckpt", key="nope")
    torch.save(original, tmp_path / "plain.ckpt")
    with pytest.raises(C.ConversionError, match="already the EMA"):
        C.read_checkpoint(tmp_path / "plain.ckpt", ema=True)


def test_arbitrary_objects_are_never_unpickled(tmp_path, original):
    torch.save({"state_dict": original, "args": NotATensor()}, tmp_path / "evil.ckpt")
    with pytest.raises(C.ConversionError, match="weights-only"):
        C.read_checkpoint(tmp_path / "evil.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(C.ConversionError, match="junk.ckpt"):
        C.read_checkpoint(tmp_path / "junk.ckpt")
    with pytest.raises(C.ConversionError, match="no such checkpoint"):
        C.read_checkpoint(tmp_path / "missing.ckpt")


def test_strict_loading_names_every_problem(tmp_path, original):
    bad = dict(original)
    bad.pop("up.1.attn.0.k.bias")
    bad["up.1.attn.0.extra.weight"] = torch.zeros(3)
    bad["ema_decay"] = torch.tensor(0.999)
    torch.save(bad, tmp_path / "bad.ckpt")
    with pytest.raises(C.ConversionError) as e:
        C.convert(tmp_path / "bad.ckpt", tmp_path / "out")
    msg = str(e.value)
    assert "up_blocks.1.attentions.0.to_k.bias" in msg and "not filled" in msg
    assert "up.1.attn.0.extra.weight" in msg and "ema_decay" in msg and "unexpected" in msg
    assert not (tmp_path / "out").exists()
    wrong = dict(original)
    wrong["mid.block_1.conv1.bias"] = torch.zeros(65)
    with pytest.raises(C.ConversionError, match=r"shape mismatch.*mid\.block_1\.conv1\.bias"):
        C.build_unet(wrong)
    with pytest.raises(C.ConversionError, match="conv_in.weight"):
        C.infer_architecture({k: v for k, v in original.items() if k != "conv_in.weight"})


def test_config_checks_and_sample_size(original):
    unet, arch, cfg = C.build_unet(original, sample_size=64)
    assert cfg["sample_size"] == 64
    assert C.build_unet(original, attn_resolutions=[8])[2]["sample_size"] == 16
    with pytest.raises(C.ConversionError, match="ch_mult"):
        C.build_unet(original, ch_mult=(1, 1, 2))
    with pytest.raises(C.ConversionError, match="multiple of 4"):
        C.build_unet(original, sample_size=30)
    with pytest.raises(C.ConversionError, match="norm_num_groups=24"):
        C.build_unet(original, norm_num_groups=24)
    no_conv = {k: v for k, v in original.items() if "downsample" not in k}
    with pytest.raises(C.ConversionError, match="resamp_with_conv"):
        C.infer_architecture(no_conv)
    no_attn = {k: v for k, v in original.items() if ".attn." not in k}
    assert C.infer_architecture(no_attn)["attn_levels"] == []
    with pytest.raises(C.ConversionError, match="sample-size"):
        C.build_unet(no_attn)


def test_verification_catches_a_wrong_model(unet, original):
    arch = C.infer_architecture(original)
    assert C.verify(original, unet, arch) < 1e-4
    with pytest.raises(C.ConversionError, match="verification failed"):
        C.verify(original, ddpm_layout_unet(seed=9), arch)


def test_convert_subcommand(tmp_path, original, capsys):
    torch.save(original, tmp_path / "m.ckpt")
    p = argparse.ArgumentParser(prog="diffstyle-lab")
    sub = p.add_subparsers(dest="cmd", required=True)
    C.register(sub)
    a = p.parse_args(["convert", str(tmp_path / "m.ckpt"), "--out", str(tmp_path / "conv"),
                      "--ch-mult", "1,2,2", "--attn-resolutions", "16"])
    assert a.fn(a) == 0
    assert "verified" in capsys.readouterr().out
    assert load_model(tmp_path / "conv").sample_size == 32
    a = p.parse_args(["convert", str(tmp_path / "m.ckpt"), "--out", str(tmp_path / "conv2"), "--ch", "16"])
    with pytest.raises(C.ConversionError, match="ch=16"):
        a.fn(a)
    with pytest.raises(SystemExit):
        p.parse_args(["convert", "x.ckpt", "--out", "o", "--ch-mult", "a,b"])


def test_the_paper_models_get_the_hub_config():
    """A CelebA-HQ/LSUN DDPM checkpoint converts to google/ddpm-ema-*-256's published UNet2DModel config."""
    arch = {"ch": 128, "ch_mult": [1, 1, 2, 2, 4, 4], "num_res_blocks": 2, "attn_levels": [4], "in_channels": 3,
            "out_ch": 3, "temb_ch": 512}
    cfg = C.diffusers_config(arch, C.guess_sample_size(arch))
    hub = {"sample_size": 256, "block_out_channels": [128, 128, 256, 256, 512, 512], "layers_per_block": 2,
           "down_block_types": ["DownBlock2D"] * 4 + ["AttnDownBlock2D", "DownBlock2D"],
           "up_block_types": ["UpBlock2D", "AttnUpBlock2D"] + ["UpBlock2D"] * 4, "attention_head_dim": None,
           "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "norm_eps": 1e-6, "norm_num_groups": 32,
           "mid_block_scale_factor": 1, "center_input_sample": False, "act_fn": "silu",
           "time_embedding_type": "positional", "in_channels": 3, "out_channels": 3}
    assert {k: cfg[k] for k in hub} == hub
    with pytest.raises(C.ConversionError, match="guided-diffusion"):
        C.infer_architecture({"input_blocks.0.0.weight": torch.zeros(1), "time_embed.0.weight": torch.zeros(1)})
