"""Original DDPM / SDEdit checkpoints → diffusers folders (diffstyle_lab.backends.convert), checked against the
original network (tests/reference_ddpm.py): float64, to rounding."""

import argparse
import json

import pytest
import torch

from diffstyle_lab.backends import convert as C
from diffstyle_lab.models import load_model
from reference_ddpm import OriginalDDPM, max_abs_diff, timestep_embedding

CHECKS = {"tensors": 268, "round_trip_exact": True, "forward_finite": True}


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
    assert set(original) == set(OriginalDDPM(32, (1, 2, 2), 2, [1]).state_dict())
    arch = C.infer_architecture(original)
    assert arch == {"ch": 32, "ch_mult": [1, 2, 2], "num_res_blocks": 2, "attn_levels": [1], "in_channels": 3,
                    "out_ch": 3, "temb_ch": 128}


def test_original_network_computes_what_the_converted_model_computes(unet, original):
    """float32, diffusers as it is (its own float32 time embedding): equal to float32 rounding."""
    ref = OriginalDDPM(32, (1, 2, 2), 2, [1])
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
    assert rec["sample_size_inferred"] and rec["checks"] == CHECKS
    assert json.loads((out / "conversion.json").read_text()) == json.loads(json.dumps(rec))
    m = load_model(out)
    for k, v in unet.state_dict().items():
        assert torch.equal(m.unet.state_dict()[k], v), k
    err, scale = max_abs_diff(original, m.unet, C.infer_architecture(original), size=32)
    assert err <= 1e-12 * scale, (err, scale)                      # the folder on disk = the original network
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert torch.equal(_eps(m.unet, x, (10, 900)), _eps(unet, x, (10, 900)))
    # and the project's samplers run on it
    from diffstyle_lab import ddim_invert
    inv = ddim_invert(m, x[:1].clamp(-1, 1), steps=3, progress=False)
    assert inv.h.shape == (1, 3, 64, 8, 8)
    with pytest.raises(C.ConversionError, match="not empty"):
        C.convert(ckpt, out)
    C.convert(ckpt, out, overwrite=True)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []    # no temporary folder left


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


def test_converted_model_equals_the_original_network_in_float64(original):
    """The whole network but the time embedding, in float64: equal to rounding (≈ 1e-15), at four timesteps."""
    unet, arch, _ = C.build_unet(original)
    err, scale = max_abs_diff(original, unet, arch, size=32)
    assert scale > 0.1 and err <= 1e-12 * scale, (err, scale)


def test_converted_time_embedding_is_ddpms():
    """The embedding the config selects (sin then cos, freq_shift=1), computed in float32 by diffusers: equal to
    DDPM's float64 embedding to float32 rounding of t·f (t ≤ 999); the other conventions are far off."""
    from diffusers.models.embeddings import get_timestep_embedding
    t = torch.arange(1000)
    ref = timestep_embedding(t, 32)
    unet = C.build_unet(C.to_original(ddpm_layout_unet()))[0]
    assert float((unet.time_proj(t).double() - ref).abs().max()) < 2e-4
    for flip, shift in ((True, 1), (False, 0)):
        assert float((get_timestep_embedding(t, 32, flip, shift).double() - ref).abs().max()) > 1.0


@pytest.fixture
def clean_key_cache(monkeypatch):       # cleared before the key maps are restored
    C._inverse_keys.cache_clear()
    yield
    C._inverse_keys.cache_clear()


def _swap(monkeypatch, names: dict, a: str, b: str):
    na, nb = names[a], names[b]
    monkeypatch.setitem(names, a, nb)
    monkeypatch.setitem(names, b, na)


def test_a_wrong_mapping_of_same_shaped_tensors_is_caught_by_the_reference(original, monkeypatch, clean_key_cache):
    """Attention q ↔ k in the key map: same shapes everywhere, so the conversion's own checks pass (the weights
    map back exactly through the same wrong map); the float64 comparison with the original network fails."""
    _swap(monkeypatch, C._ATT, "q", "k")
    unet, arch, _ = C.build_unet(original)
    assert C.check_converted(original, unet) == CHECKS
    err, scale = max_abs_diff(original, unet, arch, size=32)
    assert err > 1e-3 * scale, (err, scale)


def test_a_wrong_mapping_of_other_shapes_is_refused(original, monkeypatch, clean_key_cache):
    _swap(monkeypatch, C._RES, "norm1", "norm2")      # a ResNet that widens 32 → 64 has norms of both widths
    with pytest.raises(C.ConversionError, match=r"shape mismatch.*down\.1\.block\.0\.norm"):
        C.build_unet(original)


def test_the_conversion_checks_its_own_output(tmp_path, original, monkeypatch):
    bad = dict(original, **{"temb.dense.0.bias": torch.zeros(128, dtype=torch.int64)})
    bad["mid.attn_1.q.bias"] = original["mid.attn_1.q.bias"].clone()
    bad["mid.attn_1.q.bias"][3] = float("nan")
    with pytest.raises(C.ConversionError, match=r"not floating point: temb\.dense\.0\.bias.*NaN.*mid\.attn_1\.q"):
        C.build_unet(bad)
    huge = dict(original, **{"conv_out.weight": torch.full_like(original["conv_out.weight"], 1e38)})
    torch.save(huge, tmp_path / "huge.ckpt")
    with pytest.raises(C.ConversionError, match="not finite"):
        C.convert(tmp_path / "huge.ckpt", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # a tensor put in the wrong place while the key map is right: the weights no longer map back
    real_map = C.map_state_dict

    def swapped(sd, target, n_levels):
        out = real_map(sd, target, n_levels)
        q, k = "mid_block.attentions.0.to_q.weight", "mid_block.attentions.0.to_k.weight"
        out[q], out[k] = out[k], out[q]
        return out
    monkeypatch.setattr(C, "map_state_dict", swapped)
    unet = C.build_unet(original)[0]
    with pytest.raises(C.ConversionError, match=r"do not map back.*mid\.attn_1\.k\.weight, mid\.attn_1\.q\.weight"):
        C.check_converted(original, unet)


def test_convert_subcommand(tmp_path, original, capsys):
    torch.save(original, tmp_path / "m.ckpt")
    p = argparse.ArgumentParser(prog="diffstyle-lab")
    sub = p.add_subparsers(dest="cmd", required=True)
    C.register(sub)
    a = p.parse_args(["convert", str(tmp_path / "m.ckpt"), "--out", str(tmp_path / "conv"),
                      "--ch-mult", "1,2,2", "--attn-resolutions", "16"])
    assert a.fn(a) == 0
    assert "checked: 268 tensors" in capsys.readouterr().out
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
