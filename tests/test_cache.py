import os
import warnings

import pytest
import torch

from diffstyle_lab import InversionCache, ddim_invert, inject, tiny_model
from diffstyle_lab.cache import cached_invert


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
