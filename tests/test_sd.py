"""Stable Diffusion content injection (diffstyle_lab.backends.sd) on tiny random SD components."""

import dataclasses
import json

import pytest
import torch

from diffstyle_lab import InjectionConfig, maths
from diffstyle_lab.models import ModelUnavailableError, alphas_cumprod_from_config
from diffstyle_lab.sampling import Inversion, ddim_invert, reverse
from diffstyle_lab.backends.sd import (Conditioning, LatentEps, SDModel, check_images, decode_latents, encode_images,
                              encode_prompt, inject_sd, load_sd, make_conditioning)

D = 12  # cross_attention_dim of the tiny U-Net
SD_SCHEDULER = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                "beta_end": 0.012, "prediction_type": "epsilon"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny tensors: one thread is much faster than several competing ones on a busy 2-core machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_unet(seed=0):
    from diffusers import UNet2DConditionModel
    torch.manual_seed(seed)
    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=D,
                                norm_num_groups=4, attention_head_dim=4).eval().requires_grad_(False)


def tiny_vae(seed=1):
    from diffusers import AutoencoderKL
    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                         norm_num_groups=4, sample_size=16, layers_per_block=1).eval().requires_grad_(False)


def make_sd(prediction_type="epsilon", **kw):
    sch = dict(SD_SCHEDULER, prediction_type=prediction_type)
    return SDModel(tiny_unet(), tiny_vae(), alphas_cumprod_from_config(sch), sch, **kw)


@pytest.fixture(scope="module")
def sd():
    return make_sd()


@pytest.fixture(scope="module")
def data(sd):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    emb = torch.randn(1, 5, D, generator=g)
    neg = torch.randn(1, 5, D, generator=g)
    return x, emb, neg


# Equivalences (batch doubling vs a single batch, guidance 1 vs none, split branches) run in float64:
# float32 kernels differ between batch sizes and thread counts by ~1e-6 relative, and the first step
# multiplies that by 1/√ᾱ_999 ≈ 14.6, so a float32 comparison at 1e-5 fails on some machines.
TIGHT = dict(atol=1e-10, rtol=0)


@pytest.fixture(scope="module")
def sd64():
    return make_sd().to(dtype=torch.float64)


@pytest.fixture(scope="module")
def data64(data):
    return tuple(v.double() for v in data)


FAST = dict(steps=8, t_boost=0, t_edit=300)


def invert_z(model, z, cond, steps, record_uncond=None):
    """The package's one inversion loop with the latent ε-provider."""
    return ddim_invert(LatentEps(model, cond, record_uncond), z, steps, progress=False)


def reverse_z(model, z_T, content, cfg, cond):
    """The package's one reverse loop with the latent ε-provider."""
    return reverse(LatentEps(model, cond), z_T, content, cfg, progress=False)


def test_vae_and_inversion_shapes(sd, data):
    x, emb, neg = data
    z = encode_images(sd, x)
    assert z.shape == (2, 4, 8, 8)
    img = decode_latents(sd, z)
    assert img.shape == x.shape and img.min() >= -1 and img.max() <= 1
    # the latents are scaled by the VAE config's factor
    raw = sd.vae.encode(x).latent_dist.mean
    torch.testing.assert_close(z, raw * sd.vae.config.scaling_factor)
    inv = invert_z(sd, z, Conditioning(emb), 6)
    assert inv.x_T.shape == z.shape and inv.h.shape == (2, 6, 1, 16, 4, 4) and inv.ts == inv.grid
    inv2 = invert_z(sd, z, Conditioning(emb, neg, 2.0), 6)
    assert inv2.h.shape == (2, 6, 2, 16, 4, 4)
    r = inject_sd(sd, x, x.flip(0), prompt_embeds=emb, inversion_steps=6, progress=False, **FAST)
    assert r.images.shape == (2, 3, 16, 16) and r.manifest["space"] == "latent"
    assert r.manifest["model"]["prediction_type"] == "epsilon"
    json.dumps(r.manifest)
    r = inject_sd(sd, x, x, prompt_embeds=emb, inversion_steps=6, pairs="product", progress=False, **FAST)
    assert r.images.shape == (4, 3, 16, 16)


def test_inversion_follows_the_conditional_eps_whether_or_not_uncond_h_is_recorded(sd64, data64):
    x, emb, neg = data64
    z = encode_images(sd64, x)
    inv = invert_z(sd64, z, Conditioning(emb), 6)
    inv2 = invert_z(sd64, z, Conditioning(emb, neg, 2.0), 6)
    torch.testing.assert_close(inv2.x_T, inv.x_T, **TIGHT)
    torch.testing.assert_close(inv2.h[:, :, 1], inv.h[:, :, 0], **TIGHT)
    assert (inv2.h[:, :, 0] - inv2.h[:, :, 1]).abs().max() > 1e-3   # the two branches really differ


def _diffusers_ddim(sd, z, emb, steps, neg=None, scale=None):
    """Plain DDIM with diffusers' own scheduler (an independent implementation of the same step)."""
    from diffusers import DDIMScheduler
    sch = DDIMScheduler(**sd.scheduler_config, clip_sample=False, set_alpha_to_one=True, steps_offset=0,
                        timestep_spacing="leading")
    sch.set_timesteps(steps)
    sch.alphas_cumprod = sd.alphas_cumprod.to(z.dtype)   # the same ᾱ table, at the test's precision
    x = z.clone()
    for t in sch.timesteps:
        if scale is None:
            out = sd.unet(x, t, encoder_hidden_states=emb.expand(len(x), -1, -1)).sample
        else:
            e = torch.cat([neg.expand(len(x), -1, -1), emb.expand(len(x), -1, -1)])
            u, c = sd.unet(torch.cat([x, x]), t, encoder_hidden_states=e).sample.chunk(2)
            out = u + scale * (c - u)
        x = sch.step(out, t, x, eta=0.0).prev_sample
    return x


@pytest.mark.parametrize("prediction_type,scale", [("epsilon", None), ("v_prediction", 3.0)])
def test_plain_latent_ddim_matches_diffusers_scheduler(prediction_type, scale, data64):
    m = make_sd(prediction_type).to(dtype=torch.float64)
    x, emb, neg = data64
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    cfg = InjectionConfig(gamma=0.0, t_boost=0, steps=8, spacing="leading")
    cond = Conditioning(emb, neg if scale else None, scale)
    ours = reverse_z(m, z, None, cfg, cond)
    with torch.no_grad():
        ref = _diffusers_ddim(m, z, emb, 8, neg, scale)
    torch.testing.assert_close(ours, ref, **TIGHT)


def test_gamma_zero_equals_plain_ddim_and_injection_changes_it(sd64, data64):
    sd, (x, emb, _) = sd64, data64
    cond = Conditioning(emb)
    z = encode_images(sd, x)
    inv = invert_z(sd, z, cond, 8)
    style = inv.select([1, 0])
    plain = reverse_z(sd, style.x_T, None, InjectionConfig(gamma=0.0, **FAST), cond)
    for method in ("normalised_slerp", "slerp", "lerp"):
        out = reverse_z(sd, style.x_T, inv, InjectionConfig(gamma=0.0, method=method, **FAST), cond)
        assert (out - plain).abs().max() <= 1e-10, method
    inj = reverse_z(sd, style.x_T, inv, InjectionConfig(gamma=0.8, **FAST), cond)
    assert (inj - plain).abs().max() > 1e-3
    # and which content is injected matters
    other = reverse_z(sd, style.x_T, inv.select([1, 0]), InjectionConfig(gamma=0.8, **FAST), cond)
    assert (inj - other).abs().max() > 1e-3
    # a calibrated run takes its own path and stays finite
    cal = reverse_z(sd, style.x_T, inv, InjectionConfig(gamma=0.8, calibrate=True, omega=0.3, **FAST), cond)
    assert torch.isfinite(cal).all() and (cal - inj).abs().max() > 1e-4


def test_guidance_scale_one_equals_the_unguided_path(sd64, data64):
    sd, (x, emb, neg) = sd64, data64
    kw = dict(prompt_embeds=emb, inversion_steps=6, progress=False, gamma=0.6, **FAST)
    unguided = inject_sd(sd, x, x.flip(0), **kw).images
    doubled = inject_sd(sd, x, x.flip(0), negative_prompt_embeds=neg, guidance_scale=1.0, **kw).images
    torch.testing.assert_close(doubled, unguided, atol=1e-6, rtol=0)    # Result.images are float32
    guided = inject_sd(sd, x, x.flip(0), negative_prompt_embeds=neg, guidance_scale=4.0, **kw).images
    assert (guided - unguided).abs().max() > 1e-3


def _reference_guided(sd, z_T, inv, emb, neg, scale, gamma, steps, t_edit):
    """One branch at a time with stock U-Net calls and an h hook: the guided asymmetric process."""
    from diffstyle_lab.sampling import timestep_grid
    hu, acp = sd.hooked, sd.alphas_cumprod
    ts = timestep_grid(steps)
    x, b = z_T.clone(), len(z_T)
    for i in reversed(range(len(ts))):
        t = ts[i]
        a_t, a_prev = float(acp[t]), (float(acp[ts[i - 1]]) if i > 0 else 1.0)
        eps, eps_t = {}, {}
        for k, e in ((0, neg), (1, emb)):
            e = e.expand(b, -1, -1)
            eps[k] = sd.unet(x, t, encoder_hidden_states=e).sample
            if t >= t_edit:
                hc = inv.h_at(t)[:, k]
                with hu.hooks(h=lambda h, hc=hc: maths.normalised_slerp(h, hc, gamma)):
                    eps_t[k] = sd.unet(x, t, encoder_hidden_states=e).sample
            else:
                eps_t[k] = eps[k]
        g = eps[0] + scale * (eps[1] - eps[0])
        g_t = eps_t[0] + scale * (eps_t[1] - eps_t[0])
        x = maths.ddim_step(maths.pred_x0(x, g_t, a_t), g, a_prev)
    return x


def test_guided_injection_uses_each_branchs_own_content_h(sd64, data64):
    sd, (x, emb, neg) = sd64, data64
    cond = Conditioning(emb, neg, 3.0)
    inv = invert_z(sd, encode_images(sd, x), cond, 6)
    style = inv.select([1, 0])
    cfg = InjectionConfig(gamma=0.7, t_boost=0, t_edit=300, steps=6)
    ours = reverse_z(sd, style.x_T, inv, cfg, cond)
    with torch.no_grad():
        ref = _reference_guided(sd, style.x_T, inv, emb, neg, 3.0, 0.7, 6, 300)
    torch.testing.assert_close(ours, ref, **TIGHT)
    # the check is sensitive to the pairing: swapping the recorded branches changes the result
    swapped = Inversion(inv.x_T, inv.h.flip(2), inv.ts, inv.grid, inv.spacing)
    bad = reverse_z(sd, style.x_T, swapped, cfg, cond)
    assert (bad - ref).abs().max() > 1e-3


def test_guided_local_mask_follows_each_pair(sd64, data64):
    sd, (x, emb, neg) = sd64, data64
    cond = Conditioning(emb, neg, 3.0)
    inv = invert_z(sd, encode_images(sd, x), cond, 6)
    style = inv.select([1, 0])
    kw = dict(gamma=0.8, t_boost=0, t_edit=300, steps=6)
    plain = reverse_z(sd, style.x_T, None, InjectionConfig(**kw), cond)
    full = reverse_z(sd, style.x_T, inv, InjectionConfig(**kw), cond)
    mask = torch.zeros(2, 1, 16, 16)
    mask[0] = 1.0                                       # inject into pair 0 only
    out = reverse_z(sd, style.x_T, inv, InjectionConfig(mask=mask, **kw), cond)
    torch.testing.assert_close(out[1], plain[1], **TIGHT)
    torch.testing.assert_close(out[0], full[0], **TIGHT)
    assert (full[1] - plain[1]).abs().max() > 1e-3


def test_bad_inputs_raise_precise_errors(sd, data):
    x, emb, neg = data
    with pytest.raises(ValueError, match="multiples of"):
        check_images(sd, torch.zeros(1, 3, 15, 16))
    with pytest.raises(ValueError, match="3×H×W"):
        check_images(sd, torch.zeros(1, 4, 16, 16))
    with pytest.raises(ValueError, match="expected \\[-1, 1\\]"):
        check_images(sd, torch.full((1, 3, 16, 16), 200.0))
    with pytest.raises(ValueError, match="NaN"):
        check_images(sd, torch.full((1, 3, 16, 16), float("nan")))
    with pytest.raises(ValueError, match="B×C×H×W"):
        check_images(sd, torch.zeros(3, 16, 16))
    with pytest.raises(ValueError, match="same size"):
        inject_sd(sd, x, torch.zeros(2, 3, 32, 32), prompt_embeds=emb, progress=False, **FAST)
    with pytest.raises(ValueError, match="prompt_embeds"):            # no text encoder: say what to pass
        inject_sd(sd, x, x, prompt="a painting", progress=False, **FAST)
    with pytest.raises(ValueError, match="prompt_embeds"):
        encode_prompt(sd, None)
    with pytest.raises(ValueError, match="cross_attention_dim"):
        inject_sd(sd, x, x, prompt_embeds=torch.zeros(1, 5, D + 1), progress=False, **FAST)
    with pytest.raises(ValueError, match="negative_prompt_embeds|text encoder"):
        make_conditioning(sd, prompt_embeds=emb, guidance_scale=5.0)
    with pytest.raises(ValueError, match="guidance_scale"):
        Conditioning(emb, neg, float("nan")).validate(sd)
    with pytest.raises(ValueError, match="gamma"):
        inject_sd(sd, x, x, prompt_embeds=emb, gamma=1.5, progress=False)
    with pytest.raises(ValueError, match="batch 3"):
        inject_sd(sd, x, x, prompt_embeds=emb.expand(3, -1, -1), inversion_steps=4, progress=False, **FAST)
    z = encode_images(sd, x)
    inv = invert_z(sd, z, Conditioning(emb), 4)
    with pytest.raises(ValueError, match="record_uncond"):
        reverse_z(sd, inv.x_T, inv, InjectionConfig(**FAST), Conditioning(emb, neg, 2.0))
    pixel_like = Inversion(inv.x_T, inv.h[:, :, 0], inv.ts, inv.grid, inv.spacing)
    with pytest.raises(ValueError, match=r"ddim_invert\(LatentEps"):
        reverse_z(sd, inv.x_T, pixel_like, InjectionConfig(**FAST), Conditioning(emb))
    with pytest.raises(ValueError, match="latents"):
        invert_z(sd, torch.zeros(1, 3, 8, 8), Conditioning(emb), 4)
    from diffstyle_lab.models import tiny_unet as pixel_unet
    with pytest.raises(TypeError, match="UNet2DConditionModel"):
        SDModel(pixel_unet(), sd.vae, sd.alphas_cumprod, sd.scheduler_config)
    with pytest.raises(ValueError, match="prediction_type"):
        make_sd("flow")


def _save_pipeline(root, sd):
    sd.unet.save_pretrained(root / "unet", safe_serialization=True)
    sd.vae.save_pretrained(root / "vae", safe_serialization=True)
    (root / "scheduler").mkdir(parents=True)
    (root / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"_class_name": "DDIMScheduler", **sd.scheduler_config}))


def test_load_sd_from_a_folder_strictly(tmp_path, sd, data):
    from safetensors.torch import load_file, save_file
    x, emb, _ = data
    _save_pipeline(tmp_path / "sd", sd)
    m = load_sd(tmp_path / "sd", text_encoder=False)
    assert m.text_encoder is None and m.image_size == 16 and m.prediction_type == "epsilon"
    a = inject_sd(sd, x, x.flip(0), prompt_embeds=emb, inversion_steps=4, progress=False, **FAST).images
    b = inject_sd(m, x, x.flip(0), prompt_embeds=emb, inversion_steps=4, progress=False, **FAST).images
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="loaded with text_encoder=False"):
        encode_prompt(m, "a face")
    # a tensor missing from the VAE's weights is an error, not a random layer
    f = tmp_path / "sd" / "vae" / "diffusion_pytorch_model.safetensors"
    w = load_file(str(f))
    w.pop(sorted(w)[0])
    save_file(w, str(f))
    with pytest.raises(ValueError, match="strict"):
        load_sd(tmp_path / "sd", text_encoder=False)
    with pytest.raises(FileNotFoundError, match="unet/ and vae/"):
        load_sd(tmp_path, text_encoder=False)


def test_load_sd_offline_hub_id_says_what_to_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="huggingface-cli download .*--revision abc123"):
        load_sd("stable-diffusion-v1-5/stable-diffusion-v1-5", revision="abc123", local_files_only=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_sd("./no/such/folder")


# ---------------------------------------------------------------------------------------------
# With the optional text encoder (transformers)

def _tiny_clip(tmp_path):
    transformers = pytest.importorskip("transformers", reason="the optional text encoder needs transformers")
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    # a byte-level vocabulary without merges: every character is a token
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for c in range(256):
        if c not in bs:
            bs.append(c)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    vocab = {tok: i for i, tok in enumerate(["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars])}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), model_max_length=8)
    torch.manual_seed(0)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=D, intermediate_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=8, bos_token_id=0,
                                      eos_token_id=1, pad_token_id=1)).eval()
    assert transformers
    return te, tok


def test_prompts_through_a_tiny_clip_text_encoder(tmp_path, sd, data):
    x, _, _ = data
    te, tok = _tiny_clip(tmp_path)
    m = SDModel(sd.unet, sd.vae, sd.alphas_cumprod, sd.scheduler_config, te, tok)
    e = encode_prompt(m, ["a face", "a painting"])
    assert e.shape == (2, 8, D)
    torch.testing.assert_close(encode_prompt(m, None), encode_prompt(m, ""))
    assert (encode_prompt(m, "a face") - encode_prompt(m, "")).abs().max() > 1e-4
    r = inject_sd(m, x, x.flip(0), prompt="a face", guidance_scale=2.0, inversion_steps=4, progress=False, **FAST)
    ref = inject_sd(m, x, x.flip(0), prompt_embeds=encode_prompt(m, "a face"),
                    negative_prompt_embeds=encode_prompt(m, ""), guidance_scale=2.0, inversion_steps=4,
                    progress=False, **FAST)
    assert torch.equal(r.images, ref.images) and r.manifest["conditioning"]["prompt"] == "a face"
    # and a pipeline folder with text_encoder/ and tokenizer/ loads them
    root = tmp_path / "pipe"
    _save_pipeline(root, sd)
    te.save_pretrained(root / "text_encoder")
    tok.save_pretrained(root / "tokenizer")
    m2 = load_sd(root)
    torch.testing.assert_close(encode_prompt(m2, "a face"), encode_prompt(m, "a face"))


def test_the_latent_path_runs_the_same_sampler_and_reads_every_field(sd64, data64):
    """One loop for pixels and latents: clip_x0 and the injection interval act in latent space too."""
    sd, (x, emb, _) = sd64, data64
    cond = Conditioning(emb)
    inv = invert_z(sd, encode_images(sd, x), cond, 8)
    z_T = 3 * inv.x_T                                   # far from the data: P_t leaves [−1, 1]
    base = InjectionConfig(gamma=0.0, t_boost=0, steps=8)
    plain = reverse_z(sd, z_T, None, base, cond)
    clipped = reverse_z(sd, z_T, None, dataclasses.replace(base, clip_x0=True), cond)
    assert (plain - clipped).abs().max() > 1e-3 and clipped.abs().max() <= 1 + 1e-9
    kw = dict(gamma=0.8, t_boost=0, t_edit=0, steps=8, spacing="leading")
    every = reverse_z(sd, inv.x_T, inv, InjectionConfig(**kw), cond)
    half = reverse_z(sd, inv.x_T, inv, InjectionConfig(**kw, inject_every=2), cond)
    assert (every - half).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------
# LatentEps as an ε-provider like any other: dl.inject, the inversion cache, the command line

def test_the_latent_provider_goes_through_inject_and_the_cache(sd64, data64, tmp_path):
    from diffstyle_lab import InversionCache, inject
    x, emb, neg = data64
    ref = inject_sd(sd64, x, x.flip(0), prompt_embeds=emb, inversion_steps=6, progress=False, **FAST)
    net = LatentEps(sd64, Conditioning(emb))
    got = inject(net, x, x.flip(0), inversion_steps=6, progress=False, **FAST)
    torch.testing.assert_close(got.images, ref.images, **TIGHT)
    assert got.manifest["space"] == "latent" and got.manifest["model"]["prediction_type"] == "epsilon"
    cache = InversionCache(tmp_path / "cache")
    for _ in range(2):
        cached = inject(net, x, x.flip(0), inversion_steps=6, progress=False, cache=cache, **FAST)
        torch.testing.assert_close(cached.images, ref.images, **TIGHT)
    assert (cache.hits, cache.misses) == (2 + 4, 2)      # style = content flipped; the second call reads all four
    # the key holds what the inversion depends on: the conditioning and the recorded branches, not the scale
    z = encode_images(sd64, x)[0]

    def key(cond, record_uncond=None):
        return cache.key(LatentEps(sd64, cond, record_uncond), z, 6, "authors", True)
    assert len({key(Conditioning(emb)), key(Conditioning(neg)), key(Conditioning(emb, neg, 2.0)),
                key(Conditioning(emb, emb, 2.0))}) == 4
    assert key(Conditioning(emb, neg, 2.0)) == key(Conditioning(emb, neg, 5.0))
    assert key(Conditioning(emb, neg, 2.0), record_uncond=False) == key(Conditioning(emb))


def test_the_cli_runs_the_latent_provider(tmp_path, sd, capsys):
    import numpy as np
    from PIL import Image
    from diffstyle_lab import InversionCache, cli
    from diffstyle_lab.images import load_image
    te, tok = _tiny_clip(tmp_path)
    root = tmp_path / "pipe"
    _save_pipeline(root, sd)
    rng = np.random.RandomState(0)
    for d in ("content", "style"):
        (tmp_path / d).mkdir()
        Image.fromarray((rng.rand(16, 16, 3) * 255).astype(np.uint8)).save(tmp_path / d / f"{d[0]}0.png")

    def run(out):
        return cli.main(["inject", "--provider", "latent", "--model", str(root), "--content", str(tmp_path / "content"),
                         "--style", str(tmp_path / "style"), "--out", str(tmp_path / out), "--cache",
                         str(tmp_path / "cache"), "--device", "cpu", "--quiet", "--batch", "1", "--steps", "8",
                         "--inversion-steps", "6", "--t-boost", "0", "--t-edit", "300"])
    assert run("no_te") == 2                                   # no text encoder: one line, nothing written
    assert "needs the model's text encoder" in capsys.readouterr().err and not (tmp_path / "no_te").exists()
    te.save_pretrained(root / "text_encoder")
    tok.save_pretrained(root / "tokenizer")
    assert run("out") == 0 and run("again") == 0
    m = load_sd(root)
    c, s = (load_image(tmp_path / d / f"{d[0]}0.png", 16) for d in ("content", "style"))
    want = inject_sd(m, c, s, prompt_embeds=encode_prompt(m, ""), inversion_steps=6, progress=False, **FAST)
    for out in ("out", "again"):
        with Image.open(tmp_path / out / "c0_png__s0_png.png") as got:
            assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(want.to_pil()[0]))
    params = json.loads((tmp_path / "out" / "manifest.json").read_text())["params"]
    assert params["provider"] == "latent"
    assert InversionCache(tmp_path / "cache").size()["entries"] == 2       # one content, one style: reused
