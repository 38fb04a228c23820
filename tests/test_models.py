import json

import pytest
import torch

from diffstyle_lab import ModelUnavailableError, load_model
from diffstyle_lab.models import alphas_cumprod_from_config, ddpm256_unet, tiny_unet
from diffstyle_lab.faces.architecture import export


def test_local_folder_round_trip(tmp_path):
    u = tiny_unet(levels=3, seed=4)
    export(u, tmp_path / "m")
    m = load_model(tmp_path / "m")
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(m.unet(x, 5).sample, u(x, 5).sample)
    assert m.T == 1000 and m.sample_size == 16
    assert abs(float(m.alphas_cumprod[-1]) - 4.04e-5) < 1e-6     # linear β 1e-4…0.02


def test_wrong_checkpoint_is_an_error_not_garbage(tmp_path):
    from safetensors.torch import save_file
    export(tiny_unet(levels=3), tmp_path / "m")
    other = tiny_unet(levels=2).state_dict()
    save_file({k: v.contiguous() for k, v in other.items()},
              str(tmp_path / "m" / "unet" / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ValueError, match="do not match its config.json"):
        load_model(tmp_path / "m")


def test_missing_weights(tmp_path):
    export(tiny_unet(), tmp_path / "m")
    (tmp_path / "m" / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_model(tmp_path / "m")


def test_legacy_bin_is_read_without_unpickling_code(tmp_path):
    import os
    import pickle
    u = tiny_unet()
    export(u, tmp_path / "m")
    d = tmp_path / "m" / "unet"
    (d / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(u.state_dict(), d / "diffusion_pytorch_model.bin")
    m = load_model(tmp_path / "m")
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(m.unet(x, 1).sample, u(x, 1).sample)

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path}/PWNED",))
    with open(d / "diffusion_pytorch_model.bin", "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(Exception):
        load_model(tmp_path / "m")
    assert not (tmp_path / "PWNED").exists()


def test_unreachable_hub_says_what_to_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelUnavailableError) as e:
        load_model("google/ddpm-ema-celebahq-256")
    msg = str(e.value)
    assert "huggingface-cli download google/ddpm-ema-celebahq-256 --revision" in msg
    assert "pass its path" in msg


def test_missing_local_folder():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model("./no/such/folder")


def test_ddpm256_layout_matches_the_paper_models():
    u = ddpm256_unet()
    assert sum(p.numel() for p in u.parameters()) == pytest.approx(113.7e6, rel=0.01)
    h = {}
    hd = u.mid_block.register_forward_hook(lambda m, a, o: h.update(h=o.shape))
    with torch.no_grad():
        u(torch.randn(1, 3, 256, 256), 10)
    hd.remove()
    assert tuple(h["h"]) == (1, 512, 8, 8)


def test_schedules():
    lin = alphas_cumprod_from_config({"num_train_timesteps": 1000, "beta_schedule": "linear",
                                      "beta_start": 1e-4, "beta_end": 0.02})
    cos = alphas_cumprod_from_config({"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"})
    assert lin.dtype == torch.float64 and len(lin) == 1000 and (lin[1:] < lin[:-1]).all()
    assert not torch.allclose(lin, cos)


def test_a_model_folder_stores_its_generation_settings(tmp_path):
    """``generation_defaults`` in diffstyle_lab.json set how ``sample`` draws from pure noise (clip_x0, η, steps);
    ``generate`` (the exact reverse of an inversion) never clips nor adds noise unless asked; bad entries are
    one-line errors naming the file."""
    import diffstyle_lab as dl
    export(tiny_unet(levels=3, seed=2), tmp_path / "m")
    x_T = dl.sampling.noise(load_model(tmp_path / "m"), 0, 2, seed=0)   # what sample(seed=0) draws
    plain = load_model(tmp_path / "m")
    assert plain.generation == {}
    off, on = (dl.generate(plain, x_T, steps=4, progress=False, clip_x0=c) for c in (False, True))
    assert not torch.equal(off, on)                                       # clipping matters on this model
    torch.testing.assert_close(dl.sample(plain, 2, steps=4, progress=False), off, rtol=0, atol=0)
    (tmp_path / "m" / "diffstyle_lab.json").write_text(json.dumps({"generation_defaults": {"clip_x0": True}}))
    m = load_model(tmp_path / "m")
    assert m.generation == {"clip_x0": True} and m.describe()["generation_defaults"] == {"clip_x0": True}
    torch.testing.assert_close(dl.sample(m, 2, steps=4, progress=False), on, rtol=0, atol=0)
    torch.testing.assert_close(dl.generate(m, x_T, steps=4, progress=False), off, rtol=0, atol=0)
    stored = {"clip_x0": True, "eta": 1.0, "steps": 6}
    (tmp_path / "m" / "diffstyle_lab.json").write_text(json.dumps({"generation_defaults": stored}))
    m = load_model(tmp_path / "m")
    ancestral = dl.generate(m, x_T, steps=6, eta=1.0, clip_x0=True, progress=False)
    assert not torch.equal(ancestral, dl.generate(m, x_T, steps=6, clip_x0=True, progress=False))   # η adds noise
    torch.testing.assert_close(dl.sample(m, 2, progress=False), ancestral, rtol=0, atol=0)   # stored steps and η
    for bad, why in (({"clip_x0": 1}, "must be of type bool"), ({"step": 20}, "generation_defaults.step is unknown"),
                     ({"steps": 20.0}, "steps=20.0 must be of type int"), ({"steps": 1}, r"steps=1 must be in \[2, 1000\]"),
                     ({"eta": 1}, "must be of type float"), ({"eta": 1.5}, r"eta=1.5 must be in \[0.0, 1.0\]"),
                     ([True], "must be an object")):
        (tmp_path / "m" / "diffstyle_lab.json").write_text(json.dumps({"generation_defaults": bad}))
        with pytest.raises(ValueError, match=f"diffstyle_lab.json: .*{why}"):
            load_model(tmp_path / "m")
