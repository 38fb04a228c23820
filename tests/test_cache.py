import hashlib
import json
import os
import warnings

import pytest
import torch

from diffstyle_lab import InversionCache, ddim_invert, inject, tiny_model
from diffstyle_lab.cache import FORMAT, cached_invert
from diffstyle_lab.config import timestep_grid
from diffstyle_lab.sampling import PixelEps


@pytest.fixture
def setup(tmp_path):
    m = tiny_model(levels=2)
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return m, x, InversionCache(tmp_path / "cache")


def test_cached_inversion_equals_fresh_and_hits_on_second_call(setup):
    m, x, cache = setup
    fresh = ddim_invert(m, x, steps=6, progress=False)
    a = cached_invert(m, x, steps=6, progress=False, cache=cache)
    assert (cache.hits, cache.misses) == (0, 3)
    real = []   # U-Net calls on real tensors (the cache's shape probe runs on the meta device)
    hd = m.unet.conv_in.register_forward_hook(lambda mod, a, o: real.append(o.device.type) if o.device.type != "meta"
                                              else None)
    try:
        b = cached_invert(m, x, steps=6, progress=False, cache=cache)
    finally:
        hd.remove()
    assert (cache.hits, cache.misses) == (3, 3) and real == []
    for inv in (a, b):
        torch.testing.assert_close(inv.x_T, fresh.x_T)
        torch.testing.assert_close(inv.h, fresh.h)
        assert inv.ts == fresh.ts
    size = cache.size()
    assert size["entries"] == 3 and size["bytes"] > 0


def test_key_depends_on_weights_pixels_grid_and_schedule(setup):
    m, x, cache = setup
    k = cache.key(m, x[0], 6, "authors", True)
    assert k == cache.key(m, x[0].clone(), 6, "authors", True)
    assert k != cache.key(m, x[1], 6, "authors", True)
    assert k != cache.key(m, x[0], 7, "authors", True)
    assert k != cache.key(m, x[0], 6, "leading", True)
    assert k != cache.key(m, x[0], 6, "authors", False)
    assert k != cache.key(tiny_model(levels=2, seed=1), x[0], 6, "authors", True)
    m2 = tiny_model(levels=2)
    m2.scheduler_config = {**m2.scheduler_config, "beta_end": 0.03}
    assert k != cache.key(m2, x[0], 6, "authors", True)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "pickle"])
def test_corrupt_entries_are_recomputed_not_trusted(setup, damage):
    m, x, cache = setup
    ref = cached_invert(m, x[:1], steps=6, progress=False, cache=cache)
    p = cache.path(cache.key(m, x[0], 6, "authors", True))
    data = p.read_bytes()
    if damage == "truncate":
        p.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        p.write_bytes(os.urandom(len(data)))
    elif damage == "empty":
        p.write_bytes(b"")
    else:  # a pickle planted in the shared cache must never be executed
        import pickle

        class Evil:
            def __reduce__(self):
                return (os.system, ("touch " + str(p.parent / "PWNED"),))
        p.write_bytes(pickle.dumps(Evil()))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        again = cached_invert(m, x[:1], steps=6, progress=False, cache=cache)
    assert any("recomputing" in str(i.message) for i in w)
    torch.testing.assert_close(again.x_T, ref.x_T)
    assert not (p.parent / "PWNED").exists()
    assert cache.load(cache.key(m, x[0], 6, "authors", True)) is not None  # rewritten


def test_an_entry_under_the_wrong_key_is_not_trusted(setup):
    m, x, cache = setup
    cached_invert(m, x[:2], steps=6, progress=False, cache=cache)
    k0, k1 = (cache.key(m, x[i], 6, "authors", True) for i in range(2))
    cache.path(k0).write_bytes(cache.path(k1).read_bytes())   # x[1]'s inversion stored as x[0]'s
    with pytest.warns(UserWarning, match="recomputing"):
        assert cache.load(k0) is None


def test_inject_uses_the_cache(setup):
    m, x, cache = setup
    a = inject(m, x, x.flip(0), steps=6, inversion_steps=6, cache=cache, progress=False)
    b = inject(m, x, x.flip(0), steps=6, inversion_steps=6, progress=False)
    torch.testing.assert_close(a.images, b.images)
    assert cache.misses == 3 and cache.hits == 3   # the style images are the content images, reversed


# ---------------------------------------------------------------------------------------------
# Any ε-provider: keyed by its identity, never mixed with another's

class HalfEps(PixelEps):
    """A second provider over the same pixel model, half its ε (so its inversions differ), with the same
    cache_identity() as the pixel one: only the provider's class tells their entries apart."""

    def eps(self, x, t, record=False):
        eps, h, g = super().eps(x, t, record)
        return 0.5 * eps, h, g


def test_the_pixel_key_is_the_format_2_key_whichever_way_the_model_comes(setup):
    """Written out independently: a change here silently drops every user's cached inversions (bump FORMAT)."""
    m, x, cache = setup
    names = ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "trained_betas")
    meta = {"format": 2, "weights": m.weights_hash, "grid": timestep_grid(6, "authors", m.T), "spacing": "authors",
            "record_last": True, "dtype": "torch.float32", "batch": 4,
            "scheduler": {k: m.scheduler_config.get(k) for k in names}}
    want = hashlib.sha256(json.dumps(meta, sort_keys=True).encode() + str((3, 16, 16)).encode()
                          + x[0].numpy().tobytes()).hexdigest()
    assert FORMAT == 2
    for model in (m, PixelEps(m), PixelEps(m, force_doubling=True)):
        assert cache.key(model, x[0], 6, "authors", True, batch=4) == want


def test_two_providers_never_share_an_entry(setup):
    m, x, cache = setup
    pixel = cached_invert(m, x, steps=6, progress=False, cache=cache)
    half = HalfEps(m)
    assert half.cache_identity() == PixelEps(m).cache_identity()
    assert cache.key(half, x[0], 6, "authors", True) != cache.key(m, x[0], 6, "authors", True)
    a = cached_invert(half, x, steps=6, progress=False, cache=cache)
    assert (cache.hits, cache.misses) == (0, 6) and cache.size()["entries"] == 6
    fresh = ddim_invert(half, x, steps=6, progress=False)
    torch.testing.assert_close(a.x_T, fresh.x_T)
    assert (a.x_T - pixel.x_T).abs().max() > 1e-2
    b = cached_invert(half, x, steps=6, progress=False, cache=cache)
    assert (cache.hits, cache.misses) == (3, 6) and torch.equal(b.x_T, a.x_T) and torch.equal(b.h, a.h)
    again = cached_invert(m, x, steps=6, progress=False, cache=cache)
    assert (cache.hits, cache.misses) == (6, 6) and torch.equal(again.x_T, pixel.x_T)


def test_a_provider_without_an_identity_cannot_use_the_cache(setup):
    m, x, cache = setup

    class Anonymous:
        """An ε-provider that says nothing about what its inversions depend on."""
        label = ""

        def __init__(self, model):
            self.inner, self.model = PixelEps(model), model

        def __getattr__(self, name):
            if name in ("check_x0", "check_x_T", "check_content", "eps", "asymmetric", "invert_eps", "content_h"):
                return getattr(self.inner, name)
            raise AttributeError(name)

    net = Anonymous(m)
    with pytest.raises(ValueError, match="Anonymous has no cache_identity"):
        cached_invert(net, x, steps=6, progress=False, cache=cache)
    assert cache.size()["entries"] == 0
