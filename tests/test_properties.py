"""Property-based tests (hypothesis) over the public surface: ``InjectionConfig``, ``inject`` /
``ddim_invert`` / ``generate``, the inversion cache, the manifest reader and the ``inject`` command.

Inputs are generated, not hand-picked: every field of the config from valid and invalid ranges and types,
images of any shape, dtype, range and layout, masks of any resolution, dtype and value, corrupted cache
entries and manifests, input folders with odd names, modes, sizes and broken files. The properties:

* a bad input gives one ``ValueError``/``TypeError`` whose one-line message names the parameter (or file);
* a good one gives finite images of the right shape, a manifest that round-trips through JSON, and — in
  float64 — for each pair of a batch the result of that pair run alone (``atol`` 1e-10);
* the cache and the manifest reader never trust (nor unpickle) a damaged file; the command exits 0 with one
  verified output per pair, or 2 with one line — and loses or changes nothing that was in ``--out`` before.

Profiles (tests/conftest.py): ``ci`` (default, bounded: the file runs in well under a minute on one core)
and ``long`` (``pytest tests/test_properties.py --hypothesis-profile=long``: ≥ 10,000 cases in all; the
number run is printed at the end, see ``CASES``). Failures found became fixes, pinned with ``@example``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import pickle
import re
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, note, settings
from hypothesis import strategies as st
from PIL import Image

import diffstyle_lab as dl
from diffstyle_lab import maths
from diffstyle_lab.config import SPACINGS, InjectionConfig
from diffstyle_lab.fileio import sha256_hex

CASES: Counter = Counter()         # examples run per test (summed in the terminal summary: conftest.py)
FIELDS = [f.name for f in dataclasses.fields(InjectionConfig)]
ATOL64 = 1e-10                     # float64: a pair in a batch vs the pair alone


def one_line(e: BaseException, *names: str) -> str:
    """The message of a refused input: ValueError/TypeError, one line, naming one of ``names``."""
    assert isinstance(e, (ValueError, TypeError)), repr(e)
    msg = str(e)
    assert msg and "\n" not in msg and "\r" not in msg, msg
    if names:
        assert any(n in msg for n in names), (names, msg)
    return msg


# =============================================================================================
# Strategies

JUNK = st.one_of(
    st.none(), st.booleans(), st.text(max_size=4), st.just([]), st.just({}), st.just(b"0.3"),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-2 ** 70, 2 ** 70),
    st.builds(np.float32, st.floats(-2, 2, width=32)), st.builds(np.int64, st.integers(-5, 1200)),
    st.builds(np.bool_, st.booleans()), st.builds(lambda v: torch.tensor(v), st.floats(0, 1)),
    st.builds(lambda v: np.array([v]), st.floats(0, 1)), st.just(1 + 0j))


def unit():
    return st.one_of(st.floats(0, 1), st.sampled_from([0, 1]), st.builds(np.float64, st.floats(0, 1)),
                     st.builds(np.float32, st.floats(0, 1, width=32)))


VALID = {
    "gamma": unit(), "omega": unit(), "eta_boost": unit(),
    "t_edit": st.integers(0, 999), "t_boost": st.integers(0, 999),
    "calibrate": st.booleans(), "record_last": st.booleans(), "authors_noise_scale": st.booleans(),
    "clip_x0": st.one_of(st.booleans(), st.builds(np.bool_, st.booleans())),
    "method": st.sampled_from(maths.mix_methods()), "mask_mode": st.sampled_from(["region", "blend"]),
    "mask_norm": st.sampled_from(["normalised", "none"]), "boost": st.sampled_from(["paper", "authors"]),
    "spacing": st.sampled_from(SPACINGS), "steps": st.integers(2, 60), "inversion_steps": st.integers(2, 60),
    "inject_every": st.integers(1, 4), "seed": st.one_of(st.integers(0, 2 ** 63 - 1), st.builds(np.int64, st.integers(0, 99))),
}


@st.composite
def masks(draw, size=16, batch=None):
    """Masks of any resolution, layout, dtype and value — mostly valid, some not."""
    kind = draw(st.sampled_from(["tensor", "tensor", "tensor", "numpy", "list", "bad"]))
    h, w = draw(st.integers(1, 2 * size)), draw(st.integers(1, 2 * size))
    b = draw(st.sampled_from([1, batch or 1]))
    shape = draw(st.sampled_from([(h, w), (1, h, w), (b, 1, h, w)]))
    seed = draw(st.integers(0, 2 ** 16))
    m = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if draw(st.booleans()):
        m = (m > 0.5).double()
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bool, torch.uint8]))
    m = m.to(dtype) if dtype != torch.uint8 else (m > 0.5).to(dtype)
    if kind == "numpy":
        return m.numpy()
    if kind == "list":
        return m.tolist()
    if kind == "bad":
        return draw(st.sampled_from([
            "mask.png", [["a", "b"], ["c", "d"]], np.array(["x", "y"]), m.double() * 3, m.double() - 2,
            torch.full((4, 4), float("nan")), torch.ones(2, 2, 4, 4), torch.ones(3, 4, 4), torch.ones(4),
            torch.ones(0, 4), torch.ones(4, 4, dtype=torch.complex64), {"mask": 1}, np.ones((1, 1, 1, 1, 1))]))
    return m


@st.composite
def overrides(draw, fields=None, small_grid=False, max_fields=3):
    """1–``max_fields`` InjectionConfig fields, each valid or junk. ``small_grid``: valid grids of 2–4 steps."""
    names = draw(st.lists(st.sampled_from(fields or FIELDS), min_size=1, max_size=max_fields, unique=True))
    out = {}
    for n in names:
        valid = VALID.get(n)
        if small_grid and n in ("steps", "inversion_steps"):
            valid = st.integers(2, 4)
        if small_grid and n == "inject_every":
            valid = st.just(1)
        if n == "mask":
            out[n] = draw(st.one_of(st.none(), masks()))
        else:
            out[n] = draw(st.one_of(valid, JUNK) if draw(st.integers(0, 3)) else JUNK)
    return out


def check_valid_config(cfg: InjectionConfig):
    """A validated config holds plain Python values in range, and its dict round-trips through JSON."""
    for n in ("gamma", "omega", "eta_boost"):
        v = getattr(cfg, n)
        assert type(v) is float and 0 <= v <= 1 and math.isfinite(v), (n, v)
    for n in ("t_edit", "t_boost", "steps", "inversion_steps", "inject_every", "seed"):
        assert type(getattr(cfg, n)) is int, n
    assert 0 <= cfg.t_boost <= cfg.t_edit < 1000 and 0 <= cfg.seed < 2 ** 63
    for n in ("calibrate", "record_last", "authors_noise_scale", "clip_x0"):
        assert type(getattr(cfg, n)) is bool, n
    d = cfg.to_dict()
    if cfg.mask is not None:
        m = torch.as_tensor(cfg.mask, dtype=torch.float64)
        assert m.numel() and bool(torch.isfinite(m).all()) and 0 <= float(m.min()) and float(m.max()) <= 1
        assert d["mask"] == {"shape": list(m.shape), "mean": pytest.approx(float(m.mean()), abs=1e-6)}
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    again = InjectionConfig(**{k: v for k, v in d.items() if k != "mask"}, mask=cfg.mask).validate()
    assert again.to_dict() == d


# =============================================================================================
# InjectionConfig

@settings(max_examples=settings().max_examples * 4)
@given(overrides(max_fields=4))
@example({"gamma": True}).via("issue 26: a bool was taken for γ = 1")
@example({"seed": -1}).via("issue 26: a negative seed was accepted")
@example({"mask": [["a", "b"], ["c", "d"]]}).via("issue 26: a mask of strings gave a raw TypeError")
@example({"clip_x0": "no"}).via("a non-empty string counted as True")
@example({"seed": 2 ** 70}).via("an overflowing seed failed inside torch")
@example({"eta_boost": "1"}).via("a string η gave a raw TypeError")
@example({"method": ["x"]}).via("an unhashable method gave a raw TypeError")
@example({"mask": torch.ones(0, 4)}).via("an empty mask failed inside torch.min")
@example({"gamma": np.float32(0.3)}).via("numpy scalars were refused with a misleading range message")
@example({"mask": torch.full((4, 4), 1.5)}).via("a mask value just above 1")
def test_config_fields(kw):
    CASES["config"] += 1
    note(repr(kw))
    try:
        cfg = InjectionConfig(**kw).validate()
    except Exception as e:               # noqa: BLE001 - the property is about which exceptions
        msg = one_line(e, *kw)
        head = re.match(r"(\w+)[= ]", msg)          # "gamma=…: …", "mask has shape …", or the grid's own message
        assert head and head.group(1) in FIELDS or re.match(r"\d+ steps with spacing='\w+' repeat", msg), msg
        return
    check_valid_config(cfg)


@given(st.one_of(st.integers(-3, 1200), JUNK), st.one_of(st.sampled_from(SPACINGS), JUNK))
@example(50, "authors").via("every spacing at the paper's 50 steps")
@example(50, "leading")
@example(50, "trailing")
@example(50, "linspace")
def test_timestep_grid(n, spacing):
    CASES["grid"] += 1
    try:
        ts = dl.timestep_grid(n, spacing)
    except Exception as e:               # noqa: BLE001
        one_line(e, "steps", "spacing")
        return
    assert len(ts) == n and ts == sorted(set(ts)) and 0 <= ts[0] and ts[-1] <= 999
    assert dl.timestep_grid(n) == dl.timestep_grid(n, "authors")         # the default spacing: the authors'
    if spacing in ("authors", "linspace"):       # the definitions of docs/method.md / timestep_grid's docstring
        assert ts[0] == 0 and ts[-1] == 999
    elif spacing == "leading":
        assert ts == [k * (1000 // n) for k in range(n)]
    else:
        assert ts[-1] == 999 and ts[0] == round(1000 - (n - 1) * 1000 / n) - 1


EDGES_OK = [{"gamma": 0}, {"gamma": 1}, {"omega": 0.0}, {"omega": 1.0}, {"eta_boost": 0.0}, {"eta_boost": 1.0},
            {"t_edit": 999, "t_boost": 999}, {"t_edit": 0, "t_boost": 0}, {"seed": 0}, {"seed": 2 ** 63 - 1},
            {"steps": 2}, {"steps": 1000}, {"inversion_steps": 2}, {"inversion_steps": 1000},
            {"steps": 4, "inject_every": 2}, {"steps": 1000, "inject_every": 20}, {"mask": torch.ones(1, 1)},
            {"mask": torch.zeros(2, 1, 3, 5)}]
EDGES_BAD = [({"gamma": -1e-12}, "gamma"), ({"gamma": 1 + 1e-12}, "gamma"), ({"omega": 1.0000001}, "omega"),
             ({"eta_boost": -0.0001}, "eta_boost"), ({"t_edit": 1000}, "t_edit"), ({"t_edit": -1}, "t_edit"),
             ({"t_boost": 401}, "t_boost"), ({"t_boost": -1}, "t_boost"), ({"seed": 2 ** 63}, "seed"),
             ({"steps": 1}, "steps"), ({"steps": 1001}, "steps"), ({"inversion_steps": 1}, "inversion_steps"),
             ({"inject_every": 0}, "inject_every"), ({"steps": 6, "inject_every": 4}, "inject_every"),
             ({"steps": 4, "inject_every": 4}, "inject_every"), ({"mask": torch.ones(1, 2, 3, 3)}, "mask"),
             ({"mask": torch.ones(2, 3, 3)}, "mask"), ({"mask": torch.full((3, 3), -1e-6)}, "mask")]


@pytest.mark.parametrize("kw", EDGES_OK, ids=lambda kw: ",".join(kw))
def test_config_range_ends_are_accepted(kw):
    """Pinned ends of every range (a generated value rarely lands on one): accepted, and the grids exist."""
    cfg = InjectionConfig(**kw).validate()
    check_valid_config(cfg)
    grid = cfg.injection_grid()
    assert len(grid) == cfg.steps // cfg.inject_every and set(grid) <= set(dl.timestep_grid(cfg.steps, cfg.spacing))


@pytest.mark.parametrize("kw, name", EDGES_BAD, ids=lambda v: ",".join(v) if isinstance(v, dict) else v)
def test_config_just_outside_the_ranges_is_refused(kw, name):
    with pytest.raises(ValueError) as e:
        InjectionConfig(**kw).validate()
    msg = one_line(e.value, name)
    if name in ("gamma", "omega", "eta_boost"):  # the message says what is allowed
        assert "must be in [0, 1]" in msg, msg


# =============================================================================================
# inject / ddim_invert / generate on a tiny random U-Net (16 px, 2–4 steps), float64

@pytest.fixture(scope="module")
def m64():
    return dl.tiny_model(seed=0).to(dtype=torch.float64)


@st.composite
def images(draw, b=None, name="images"):
    """B×3×16×16 images: mostly valid (any float dtype, layout), some of the wrong dtype, range or shape."""
    b = b or draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2 ** 16))
    x = torch.rand(b, 3, 16, 16, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1
    fault = draw(st.sampled_from([None] * 6 + ["range", "nan", "shape", "channels", "dtype", "numpy", "empty"]))
    if fault == "range":
        x = x * draw(st.sampled_from([2.0, 255.0, -3.0]))
    elif fault == "nan":
        x[0, 0, 0, 0] = draw(st.sampled_from([float("nan"), float("inf")]))
    elif fault == "shape":
        x = draw(st.sampled_from([x[..., :8, :8], x[0], x[:, :, :, :15], x[None]]))
    elif fault == "channels":
        x = x[:, :1]
    elif fault == "dtype":
        x = draw(st.sampled_from([x.to(torch.complex64), x > 0, (x * 127.5 + 127.5).to(torch.uint8)]))
    elif fault == "numpy":
        return x.numpy()
    elif fault == "empty":
        x = x[:0]
    if fault is None:
        x = x.to(draw(st.sampled_from([torch.float64, torch.float32, torch.float16])))
        layout = draw(st.sampled_from(["plain", "transposed", "channels_last", "expanded"]))
        if layout == "transposed":
            x = x.transpose(2, 3).contiguous().transpose(2, 3)
        elif layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        elif layout == "expanded":
            x = x[:1].expand(b, -1, -1, -1)
    return x


def check_manifest(man: dict, cfg: InjectionConfig, pairs: str, model):
    """The manifest says how the run was made: the config, the grids (recomputed here from their definitions
    in docs/method.md), the pairing and the model."""
    assert man["injection"] == json.loads(json.dumps(cfg.to_dict()))
    gen, inj, inv = (dl.timestep_grid(cfg.steps, cfg.spacing), cfg.injection_grid(),
                     dl.timestep_grid(cfg.inversion_steps, cfg.spacing))
    assert man["generation_grid"] == gen and man["injection_grid"] == [t for t in inj if t >= cfg.t_edit]
    assert man["inversion"] == {"steps": cfg.inversion_steps, "spacing": cfg.spacing, "grid": inv,
                                "h_recorded_at": inv if cfg.record_last else inv[:-1]}
    assert man["boost_grid"] == [t for i, t in enumerate(gen) if i > 0 and 0 < cfg.t_boost and t <= cfg.t_boost
                                 and cfg.eta_boost > 0 and (cfg.boost == "paper" or t in inj)]
    assert man["pairs"] == pairs and man["model"]["weights_sha256"] == model.weights_hash
    assert man["device"] == str(model.device) and man["versions"]["torch"] == torch.__version__


def _alone_kw(kw, k, n_pairs, seed):
    """The keyword arguments of pair ``k`` run alone: its own boost seed and its row of a per-pair mask."""
    kw = dict(kw, sample_seeds=[seed + k])
    m = kw.get("mask")
    if m is not None and torch.as_tensor(m).dim() == 4 and torch.as_tensor(m).shape[0] == n_pairs > 1:
        kw["mask"] = torch.as_tensor(m)[k:k + 1]
    return kw


@given(st.data())
@example(None).via("issue 26: batch independence in float64 (and gamma=True, seed=-1 refused)")
def test_inject(m64, data):
    CASES["inject"] += 1
    if data is None:                     # the pinned example: a valid 3-pair product run with boosting
        content, style = (torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(n),
                                     dtype=torch.float64) * 2 - 1 for n in (1, 3))
        pairs = "product"
        kw = {"steps": 4, "inversion_steps": 3, "t_edit": 500, "t_boost": 500, "calibrate": True}  # noise at t=333
        for bad in ({"gamma": True}, {"seed": -1}, {"mask": [["a"]]}):
            with pytest.raises((ValueError, TypeError)) as e:
                dl.inject(m64, content, style, progress=False, **kw, **bad)
            one_line(e.value, *bad)
    else:
        pairs = data.draw(st.sampled_from(["zip", "product", "zip", "all"]))
        nc = data.draw(st.integers(1, 4 if pairs == "zip" else 2))
        ns = nc if pairs == "zip" and data.draw(st.integers(0, 5)) else data.draw(st.integers(1, 2))
        content, style = data.draw(images(nc), "content"), data.draw(images(ns), "style")
        kw = {"steps": 3, "inversion_steps": 3, "t_edit": data.draw(st.sampled_from([0, 400, 999])),
              "t_boost": 0}
        kw.update(data.draw(overrides(fields=[f for f in FIELDS if f != "mask"], small_grid=True), "overrides"))
        if data.draw(st.booleans()):
            kw["mask"] = data.draw(masks(batch=nc * ns if pairs == "product" else nc), "mask")
    note(f"pairs={pairs} kw={kw}")
    t0 = time.perf_counter()
    try:
        r = dl.inject(m64, content, style, pairs=pairs, progress=False, **kw)
    except Exception as e:               # noqa: BLE001
        one_line(e, *kw, "images", "pairs", "mask")
        return
    n = r.images.shape[0]
    assert r.images.shape == (n, 3, 16, 16) and r.images.dtype == torch.float64
    assert torch.isfinite(r.images).all()
    assert json.loads(json.dumps(r.manifest)) == r.manifest
    check_manifest(r.manifest, InjectionConfig(**kw).validate(), pairs, m64)
    took = r.manifest["seconds"]                 # the recorded durations fit in the measured one
    assert 0 <= took["inversion"] and 0 <= took["injection"]
    assert took["inversion"] + took["injection"] <= time.perf_counter() - t0 + 0.002
    a, b = r.manifest["pair_index"]["content"], r.manifest["pair_index"]["style"]
    assert len(a) == len(b) == n
    seed = r.manifest["injection"]["seed"]
    for k in range(n):                   # each pair of the batch equals that pair run alone
        alone = dl.inject(m64, content[a[k]:a[k] + 1], style[b[k]:b[k] + 1], pairs="zip", progress=False,
                          **_alone_kw(kw, k, n, seed))
        err = float((alone.images[0] - r.images[k]).abs().max())
        assert err <= ATOL64, (k, err)


@settings(max_examples=max(settings().max_examples // 3, 5))
@given(st.floats(0, 1), st.sampled_from(maths.mix_methods()), st.booleans(), st.booleans(), st.integers(0, 2 ** 16))
def test_batch_doubling_equals_the_split_forward(m64, gamma, method, masked, calibrate, seed):
    """``force_doubling`` (one forward of the doubled batch) and the split forward (shared down path) give
    the same images and hand the callbacks the same h, g and h̃ (float64)."""
    CASES["doubling"] += 1
    g = torch.Generator().manual_seed(seed)
    c, s_ = (torch.rand(2, 3, 16, 16, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2))
    mask = (torch.rand(16, 16, generator=g, dtype=torch.float64) > 0.5).double() if masked else None
    runs, batches = [], []
    hook = m64.unet.conv_in.register_forward_hook(lambda mod, inp, out: batches.append((doubling, inp[0].shape[0])))
    for doubling in (False, True):
        seen = []
        r = dl.inject(m64, c, s_, gamma=gamma, method=method, mask=mask, calibrate=calibrate, steps=3,
                      inversion_steps=3, t_edit=0, t_boost=0, progress=False, force_doubling=doubling,
                      callbacks=[lambda i: seen.append(i)])
        runs.append((r.images, seen))
    hook.remove()
    assert {n for d, n in batches if not d} == {2} and {n for d, n in batches if d} == {2, 4}   # 4: the doubled batch
    (a, sa), (b, sb) = runs
    assert float((a - b).abs().max()) <= ATOL64
    assert [(i.phase, i.t) for i in sa] == [(i.phase, i.t) for i in sb] and sa
    for i, j in zip(sa, sb):
        for name in ("h", "g", "h_tilde", "h_content"):
            u, v = getattr(i, name), getattr(j, name)
            assert (u is None) == (v is None), (name, i.phase)
            if u is not None:
                assert float((u - v).abs().max()) <= ATOL64, name


@pytest.mark.parametrize("embedding", ["positional", "fourier"])
@given(t=st.integers(1, 999), scale=st.floats(0, 2))      # Fourier features take σ = t > 0
@settings(max_examples=max(settings().max_examples // 3, 5))
def test_split_forward_equals_doubling_for_both_time_embeddings(embedding, t, scale):
    """The split forward (down path once, up path twice) gives the doubled batch's ε and ε̃, also for a U-Net
    with Fourier time features (whose output the split path divides by σ_t itself)."""
    from diffusers import UNet2DModel

    from diffstyle_lab.hooks import HookedUNet
    CASES["split"] += 1
    torch.manual_seed(0)
    u = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                    down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                    norm_num_groups=4, attention_head_dim=8, time_embedding_type=embedding).eval().requires_grad_(False).double()
    hu = HookedUNet(u)
    assert hu.can_split
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
    a = hu.asymmetric_eps(x, t, lambda h: scale * h)
    b = hu.asymmetric_eps(x, t, lambda h: scale * h, force_doubling=True)
    for u_, v in zip(a[:2], b[:2]):
        assert float((u_ - v).abs().max()) <= ATOL64


@pytest.mark.parametrize("damage, reason", [
    ("tensors", "holds tensors ['h', 'x_T', 'y'], expected ['x_T', 'h']"), ("key", "stored under another key"),
    ("format", "format 1, expected 2"), ("ts", "h does not hold one entry per timestep"),
    ("shape", "h is (3, 16, 4, 4) torch.float32, the model gives (3, 16, 8, 8) torch.float32"),
    ("grid", "timesteps differ from the grid"), ("checksum", "tensor checksum does not match"),
    ("nan", "non-finite values")])
def test_the_cache_says_why_an_entry_is_not_trusted(entry, tmp_path, damage, reason):
    """Pinned cases of test_cache_corruption: the one-line warning names the reason, and the entry is rewritten."""
    from diffstyle_lab.cache import FORMAT, cached_invert
    from diffstyle_lab.fileio import tensor_digest
    m, x, ref, key, good = entry
    t = {"x_T": ref.x_T[0].clone(), "h": ref.h[0].clone()}
    meta = {"key": key, "format": str(FORMAT), "ts": json.dumps(ref.ts)}
    if damage == "tensors":
        t["y"] = torch.ones(1)
    elif damage == "key":
        meta["key"] = "0" * 64
    elif damage == "format":
        meta["format"] = "1"
    elif damage == "ts":
        meta["ts"] = "[0, 999]"
    elif damage == "shape":
        t["h"] = t["h"][..., :4, :4].clone()
    elif damage == "grid":
        meta["ts"] = "[0, 499, 998]"
    elif damage == "nan":
        t["x_T"][0, 0, 0] = float("nan")
    if damage != "checksum":
        meta["sha256"] = tensor_digest(t)
    cache = dl.InversionCache(tmp_path)
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_bytes(_safetensors(t, meta))
    found = cache.verify()                       # without the model, all but the shape and the grid show
    assert (found == []) == (damage in ("shape", "grid")), found
    assert all(str(cache.path(key)) in f for f in found)
    with pytest.warns(UserWarning) as w:
        got = cached_invert(m, x, steps=3, progress=False, cache=cache)
    msg = str(w[0].message)
    assert msg == f"inversion cache entry {key}.safetensors is not trusted (ValueError: {reason}); recomputing it"
    assert torch.equal(got.h, ref.h) and cache.hits == 0 and cache.misses == 1 and cache.verify() == []


def one_bad(data, valid: dict) -> dict:
    """The arguments of ``valid`` (name → strategy), at most one of them drawn from JUNK instead."""
    bad = data.draw(st.sampled_from([None, None] + sorted(valid)), "junk argument")
    return {k: data.draw(JUNK if k == bad else v, k) for k, v in valid.items()} | {"_all_valid": bad is None}


def good_images(x, lo=-1.0, hi=1.0) -> bool:
    """Whether ``x`` is a batch the samplers must accept (B ≥ 1 real 3×16×16 images, finite, in [lo, hi])."""
    return (torch.is_tensor(x) and x.dtype.is_floating_point and x.dim() == 4 and x.shape[0] > 0
            and tuple(x.shape[1:]) == (3, 16, 16) and bool(torch.isfinite(x).all())
            and lo - 1e-3 <= float(x.min()) and float(x.max()) <= hi + 1e-3)


@given(images(), st.data())
def test_ddim_invert(m64, x, data):
    CASES["invert"] += 1
    a = one_bad(data, {"steps": st.integers(2, 4), "spacing": st.sampled_from(SPACINGS),
                       "record_last": st.booleans()})
    steps, spacing, record_last = a["steps"], a["spacing"], a["record_last"]
    try:
        inv = dl.ddim_invert(m64, x, steps, spacing, record_last=record_last, progress=False)
    except Exception as e:               # noqa: BLE001
        assert not (a["_all_valid"] and good_images(x)), f"valid arguments refused: {e}"
        one_line(e, "images", "steps", "spacing", "record_last")
        return
    b, n_rec = x.shape[0], steps - (not record_last)
    assert inv.x_T.shape == x.shape and inv.h.shape[:2] == (b, n_rec) and len(inv.ts) == n_rec
    assert torch.isfinite(inv.x_T).all() and torch.isfinite(inv.h).all()
    for k in range(b):
        alone = dl.ddim_invert(m64, x[k:k + 1], steps, spacing, record_last=record_last, progress=False)
        assert float((alone.x_T[0] - inv.x_T[k]).abs().max()) <= ATOL64
        assert float((alone.h[0] - inv.h[k]).abs().max()) <= ATOL64


@given(st.data())
def test_generate(m64, data):
    CASES["generate"] += 1
    b = data.draw(st.integers(1, 4))
    x_T = data.draw(images(b), "x_T")
    if torch.is_tensor(x_T) and data.draw(st.booleans()):
        x_T = x_T * 1.5                   # noise is not limited to [-1, 1]
    a = one_bad(data, {"steps": st.integers(2, 4), "t_boost": st.sampled_from([0, 500, 999]),
                       "seed": st.integers(0, 2 ** 62), "clip_x0": st.booleans()})
    steps, t_boost, seed, clip = a["steps"], a["t_boost"], a["seed"], a["clip_x0"]
    try:
        seen = []
        y = dl.generate(m64, x_T, steps=steps, t_boost=t_boost, seed=seed, clip_x0=clip, progress=False,
                        callbacks=[seen.append])
    except Exception as e:               # noqa: BLE001
        assert not (a["_all_valid"] and good_images(x_T, -2, 2)), f"valid arguments refused: {e}"
        one_line(e, "x_T", "steps", "t_boost", "seed", "clip_x0")
        return
    assert y.shape == x_T.shape and torch.isfinite(y).all()
    assert [i.phase for i in seen] == ["generate"] * steps and [i.step for i in seen] == list(range(steps))
    for k in range(b):
        alone = dl.generate(m64, x_T[k:k + 1], steps=steps, t_boost=t_boost, seed=seed + k, clip_x0=clip,
                            progress=False)
        assert float((alone[0] - y[k].to(alone)).abs().max()) <= ATOL64


# =============================================================================================
# The maths of one step (docs/method.md §2–7): identities, and floats and tensors giving the same numbers

F64 = torch.float64


@given(st.floats(1e-4, 0.999), st.floats(1e-4, 0.999), st.floats(0, 1), st.floats(0, 1), st.integers(0, 2 ** 16))
def test_step_maths(a_t, a_prev, eta, omega, seed):
    CASES["maths"] += 1
    a_t, a_prev = min(a_t, a_prev), max(a_t, a_prev)          # ᾱ falls as t grows: ᾱ_t ≤ ᾱ_{t−1}
    assume(a_prev - a_t > 1e-6)
    g = torch.Generator().manual_seed(seed)
    x, e, et, z, x0 = (torch.randn(2, 3, 4, 4, generator=g, dtype=F64) for _ in range(5))

    def tens(v):
        return torch.full((2, 1, 1, 1), v, dtype=F64)
    sigma = maths.ddim_sigma(a_t, a_prev, eta)
    assert 0 <= sigma and sigma ** 2 <= 1 - a_prev + 1e-12            # D_t stays real for η ≤ 1
    assert abs(float(maths.ddim_sigma(tens(a_t), tens(a_prev), eta).flatten()[0]) - sigma) <= 1e-12
    if eta == 1:                                                      # η = 1: the DDPM posterior's σ
        assert abs(sigma ** 2 - (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) <= 1e-12
    pairs = [(maths.pred_x0(x, e, a_t), maths.pred_x0(x, e, tens(a_t))),
             (maths.direction(e, a_prev, sigma), maths.direction(e, tens(a_prev), tens(sigma))),
             (maths.ddim_step(x0, e, a_prev, sigma, z), maths.ddim_step(x0, e, tens(a_prev), tens(sigma), z)),
             (maths.asymmetric_step(x, et, e, a_t, a_prev, sigma, z),
              maths.asymmetric_step(x, et, e, tens(a_t), tens(a_prev), tens(sigma), z)),
             (maths.calibration_shift(x, e, et, a_t, omega), maths.calibration_shift(x, e, et, tens(a_t), omega))]
    for f, t in pairs:
        assert torch.allclose(f, t, rtol=0, atol=1e-10)
    from diffstyle_lab.sampling import clip_prediction          # clip_x0: P_t(ε̃') = clamp(P_t(ε̃), −1, 1)
    for rederive in (False, True):
        e2, d2 = clip_prediction(x * 3, et, e, a_t, rederive_eps=rederive)
        want = maths.pred_x0(x * 3, et, a_t).clamp(-1, 1)
        assert torch.allclose(maths.pred_x0(x * 3, e2, a_t), want, rtol=0, atol=1e-8)
        assert d2 is (e2 if rederive else e)
    over = (1 - a_prev) ** 0.5 * (1 + 1e-9)          # σ² a hair above 1 − ᾱ_{t−1} (rounding): D_t is 0, not NaN
    for d in (maths.direction(e, a_prev, over), maths.direction(e, tens(a_prev), tens(over))):
        assert torch.equal(d, torch.zeros_like(e))
    # P_t and the ε that gives a chosen x_0 are inverse; a deterministic step and the inversion step undo each other
    assert torch.allclose(maths.pred_x0(x, maths.eps_from_x0(x, x0, a_t), a_t), x0, rtol=0, atol=1e-9)
    down = maths.ddim_step(maths.pred_x0(x, e, a_t), e, a_prev)
    assert torch.allclose(maths.ddim_inversion_step(down, e, a_prev, a_t), x, rtol=0, atol=1e-8)
    assert torch.allclose(down, maths.asymmetric_step(x, e, e, a_t, a_prev), rtol=0, atol=0)
    # x_{t−1} = √ᾱ_{t−1}·P̃ + √(1−ᾱ_{t−1}−σ²)·ε + σ·z, term by term
    want = a_prev ** 0.5 * maths.pred_x0(x, et, a_t) + (1 - a_prev - sigma ** 2) ** 0.5 * e + sigma * z
    assert torch.allclose(maths.asymmetric_step(x, et, e, a_t, a_prev, sigma, z), want, rtol=0, atol=1e-10)
    # calibration: norm(P̃) has P's spread and P̃'s mean; with ε̃ = ε there is nothing to move
    p, pt = maths.pred_x0(x, e, a_t), maths.pred_x0(x, et, a_t)
    n = maths.normalise_like(pt, p)
    assert torch.allclose(n.std((1, 2, 3)), p.std((1, 2, 3)), atol=1e-10)
    assert torch.allclose(n.mean((1, 2, 3)), pt.mean((1, 2, 3)), atol=1e-10)
    assert float(maths.calibration_shift(x, e, e, a_t, omega).abs().max()) <= 1e-10
    want = a_t ** 0.5 * (n - p) + omega * (1 - a_t) ** 0.5 * (et - e)
    assert torch.allclose(maths.calibration_shift(x, e, et, a_t, omega), want, rtol=0, atol=1e-10)


@given(st.floats(0, 1), st.sampled_from(["same", "scaled", "opposite", "zero", "random"]), st.integers(0, 2 ** 16),
       st.booleans())
def test_mixing(gamma, relation, seed, masked):
    CASES["mixing"] += 1
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(2, 4, 3, 3, generator=g, dtype=F64)
    hc = {"same": h, "scaled": 2.5 * h, "opposite": -h, "zero": torch.zeros_like(h),
          "random": torch.randn(2, 4, 3, 3, generator=g, dtype=F64)}[relation]
    region = (torch.rand(2, 1, 3, 3, generator=g, dtype=F64) > 0.3).to(F64) if masked else None
    for method in maths.mix_methods():
        out = maths.mix_h(h, hc, gamma, method, region=region)
        assert out.shape == h.shape and torch.isfinite(out).all(), method
    s0, s1 = maths.slerp(h, hc, 0.0, region), maths.slerp(h, hc, 1.0, region)
    assert torch.allclose(s0, h, atol=1e-9)
    if relation != "opposite":           # θ = π: the fallback is the lerp, whose γ = 1 end is h^content too
        assert torch.allclose(s1, hc, atol=1e-9)
    ns = maths.normalised_slerp(h, hc, gamma, region)
    if relation not in ("zero", "opposite"):     # ‖h̃‖ = ‖h‖ (over the region), the paper's normalisation
        assert torch.allclose(maths.per_sample_norm(ns, region), maths.per_sample_norm(h, region), rtol=1e-9)
    if relation in ("same", "scaled"):   # parallel: Slerp falls back to the lerp, exactly
        want = (1 - gamma) * h + gamma * hc
        assert torch.allclose(maths.slerp(h, hc, gamma, region), want, atol=1e-9)
    m = region if region is not None else torch.ones(2, 1, 3, 3, dtype=F64)
    mixed = maths.masked_mix(h, hc, m)
    assert torch.equal(mixed, m * hc + (1 - m) * h)


# =============================================================================================
# The inversion cache: damaged entries are detected and recomputed, never unpickled

@pytest.fixture(scope="module")
def entry(tmp_path_factory):
    """A true cache entry (tiny float32 model, 3 steps): its bytes and the inversion it holds."""
    from diffstyle_lab.cache import cached_invert
    m = dl.tiny_model(seed=0)
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    cache = dl.InversionCache(tmp_path_factory.mktemp("cache"))
    ref = cached_invert(m, x, steps=3, progress=False, cache=cache)
    key = cache.key(m, x[0], 3, "authors", True)
    return m, x, ref, key, cache.path(key).read_bytes()


class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def _safetensors(tensors: dict, meta: dict) -> bytes:
    from safetensors.torch import save
    return save({k: v.contiguous() for k, v in tensors.items()}, metadata=meta)


@st.composite
def corruptions(draw, good: bytes, ref, key):
    """The bytes of a damaged entry: bit flips, truncation, appended bytes, or a well-formed safetensors file
    with other keys, shapes, dtypes, values or metadata (with or without a matching checksum), or a pickle."""
    from safetensors import safe_open  # noqa: F401  (the format the entries use)

    from diffstyle_lab.cache import FORMAT
    from diffstyle_lab.fileio import tensor_digest
    kind = draw(st.sampled_from(["flip", "flip", "truncate", "append", "rewrite", "pickle", "empty"]))
    if kind == "flip":
        b = bytearray(good)
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(b) - 1))
            b[i] ^= 1 << draw(st.integers(0, 7))
        return bytes(b)
    if kind == "truncate":
        return good[:draw(st.integers(0, len(good) - 1))]
    if kind == "append":
        return good + draw(st.binary(min_size=1, max_size=64))
    if kind == "empty":
        return b""
    if kind == "pickle":
        buf = io.BytesIO()
        pickle.dump({"x_T": Evil(), "h": ref.h[0]}, buf)
        return buf.getvalue()
    t = {"x_T": ref.x_T[0].clone(), "h": ref.h[0].clone()}
    meta = {"key": key, "format": str(FORMAT), "ts": json.dumps(ref.ts)}
    change = draw(st.sampled_from(["rename", "extra", "drop", "shape", "dtype", "values", "key", "format", "ts",
                                   "nan"]))
    if change == "rename":
        t["y"] = t.pop(draw(st.sampled_from(["x_T", "h"])))
    elif change == "extra":
        t["extra"] = torch.ones(1)
    elif change == "drop":
        del t[draw(st.sampled_from(["x_T", "h"]))]
    elif change == "shape":
        n = draw(st.sampled_from(["x_T", "h"]))
        t[n] = draw(st.sampled_from([t[n][..., :1, :1], t[n][None], t[n].flatten(), t[n][:1]])).clone()
    elif change == "dtype":
        n = draw(st.sampled_from(["x_T", "h"]))
        t[n] = t[n].to(draw(st.sampled_from([torch.float64, torch.float16, torch.bfloat16])))
    elif change == "values":
        n = draw(st.sampled_from(["x_T", "h"]))
        t[n] = t[n] + draw(st.sampled_from([1e-6, 1.0, -0.5]))
    elif change == "nan":
        t["h"] = t["h"].clone()
        t["h"].view(-1)[0] = float("nan")
    elif change == "key":
        meta["key"] = sha256_hex(draw(st.binary(max_size=8)))
    elif change == "format":
        meta["format"] = draw(st.sampled_from(["1", "3", "", "2.0"]))
    else:
        meta["ts"] = draw(st.sampled_from(["[0, 499]", "[999, 499, 0]", "null", "{}", "[0, 499, 998]"]))
    if change != "values" and draw(st.booleans()):   # a matching checksum: structure must still be checked
        meta["sha256"] = tensor_digest(t)            # (other values under a recomputed checksum are a forgery,
                                                     # not a corruption: no self-contained check can see it)
    if draw(st.booleans()) and change not in ("drop",):
        meta.pop(draw(st.sampled_from(sorted(meta))))
    return _safetensors(t, meta)


@contextlib.contextmanager
def no_unpickling():
    """Any unpickling during the block fails the test (pickle.load(s), torch.load without weights_only)."""
    real_load, real_loads, real_torch = pickle.load, pickle.loads, torch.load
    seen = []

    def refuse(*a, **k):
        seen.append((a[:1], k))
        raise AssertionError("unpickled")

    def torch_load(*a, **k):
        if k.get("weights_only") is not True:
            refuse(*a, **k)
        return real_torch(*a, **k)
    pickle.load, pickle.loads, torch.load = refuse, refuse, torch_load
    try:
        yield seen
    finally:
        pickle.load, pickle.loads, torch.load = real_load, real_loads, real_torch
    assert not seen, seen


@given(st.data())
def test_cache_corruption(entry, data):
    from diffstyle_lab.cache import cached_invert
    CASES["cache"] += 1
    m, x, ref, key, good = entry
    bad = data.draw(corruptions(good, ref, key), "entry bytes")
    with tempfile.TemporaryDirectory() as d:
        cache = dl.InversionCache(d)
        p = cache.path(key)
        p.parent.mkdir(parents=True)
        p.write_bytes(bad)
        cwd = os.getcwd()
        os.chdir(d)                      # a pickle payload would touch PWNED_BY_PICKLE here
        try:
            with no_unpickling(), warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                got = cached_invert(m, x, steps=3, progress=False, cache=cache)
        finally:
            os.chdir(cwd)
        assert not (Path(d) / "PWNED_BY_PICKLE").exists()
        assert torch.equal(got.x_T, ref.x_T) and torch.equal(got.h, ref.h) and got.ts == ref.ts
        trusted = cache.hits == 1
        if trusted:                      # only an entry holding exactly the true tensors may be trusted
            assert not [x for x in w if "not trusted" in str(x.message)]
        else:
            assert [x for x in w if "not trusted" in str(x.message)], [str(x.message) for x in w]
        for x_ in w:
            assert "\n" not in str(x_.message)
        expect = cache.expected(m, x[0], 3, "authors", True)
        assert cache.load(key, expect) is not None           # rewritten (or kept): it verifies now
        assert cache.size()["entries"] == 1 and cache.verify() == []
        cache.clear()
        assert cache.size()["entries"] == 0


@given(st.one_of(st.text(max_size=200), st.integers(), st.lists(st.integers(), max_size=40), JUNK))
def test_values_in_messages_are_shown_on_one_short_line(v):
    from diffstyle_lab.config import show
    CASES["show"] += 1
    out = show(v)
    r = " ".join(repr(v).split())
    assert "\n" not in out and len(out) <= 60
    assert out == r if len(r) <= 60 and not torch.is_tensor(v) and not isinstance(v, np.ndarray) else \
        (out.startswith("<") or (len(out) == 60 and out.endswith("…") and r.startswith(out[:-1])))


def test_h_shape_without_the_meta_device(m64, monkeypatch):
    """A layout that cannot run on the meta device gets h's shape from one real pass: the same shape."""
    import torch.func

    from diffstyle_lab.cache import h_shape
    want = h_shape(m64, (3, 16, 16))

    def refuse(*a, **k):
        raise NotImplementedError("no meta kernels for this layout")
    monkeypatch.setattr(torch.func, "functional_call", refuse)
    assert h_shape(m64, (3, 16, 16)) == want == tuple(dl.ddim_invert(m64, torch.zeros(1, 3, 16, 16, dtype=F64), 2,
                                                                       progress=False).h.shape[2:])


@given(st.integers(1, 24), st.integers(1, 24), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2 ** 16))
def test_resize_mask_shrinks_by_area_and_grows_bilinearly(h, w, th, tw, seed):
    """docs/method.md §6: a mask is averaged over areas when both sides shrink (or stay), interpolated
    bilinearly otherwise; it stays in [0, 1] and keeps its batch."""
    import torch.nn.functional as F
    CASES["resize"] += 1
    m = torch.rand(2, 1, h, w, generator=torch.Generator().manual_seed(seed))
    out = maths.resize_mask(m, (th, tw))
    assert out.shape == (2, 1, th, tw) and 0 <= float(out.min()) and float(out.max()) <= 1
    if (h, w) == (th, tw):
        assert torch.equal(out, m)
    elif h >= th and w >= tw:
        assert torch.allclose(out, F.adaptive_avg_pool2d(m, (th, tw)))
    else:
        assert torch.allclose(out, F.interpolate(m, size=(th, tw), mode="bilinear", align_corners=False))


@settings(max_examples=max(settings().max_examples // 3, 5))
@given(st.integers(1, 5), st.one_of(st.none(), st.integers(1, 4)), st.integers(0, 2 ** 16))
def test_the_cache_inverts_at_the_batch_size_it_is_given(entry, n, batch, seed):
    """``batch``: every U-Net call sees exactly ``batch`` images (the last chunk padded) and the key records it."""
    m, _, _, _, _ = entry
    CASES["cache_batch"] += 1
    x = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    seen = []
    hook = m.unet.conv_in.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    with tempfile.TemporaryDirectory() as d:
        cache = dl.InversionCache(d)
        try:
            inv = cache.invert(m, x, steps=2, progress=False, batch=batch)
        finally:
            hook.remove()
        assert inv.x_T.shape == x.shape and set(seen) == {batch or n}
        assert cache.key(m, x[0], 2, "authors", True, batch) != cache.key(m, x[0], 2, "authors", True, None) \
            or batch is None


def test_the_cache_key_covers_the_scheduler(entry):
    """Another noise schedule is another inversion: every scheduler field in the key changes it."""
    m, x, _, _, _ = entry
    base = dl.InversionCache.key(m, x[0], 3, "authors", True)
    for k, v in (("num_train_timesteps", 999), ("beta_schedule", "scaled_linear"), ("beta_start", 0.0002),
                 ("beta_end", 0.03), ("trained_betas", [0.1, 0.2])):
        other = dataclasses.replace(m, scheduler_config={**m.scheduler_config, k: v})
        other._weights_hash = m.weights_hash
        assert dl.InversionCache.key(other, x[0], 3, "authors", True) != base, k


def test_verify_lists_leftovers_and_unreadable_entries(entry, tmp_path):
    from diffstyle_lab.cache import cached_invert
    m, x, _, key, good = entry
    cache = dl.InversionCache(tmp_path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        cached_invert(m, x, steps=3, progress=False, cache=cache)
    assert err.getvalue() == "" and cache.verify() == []                   # progress=False: no bar either
    (cache.path(key).parent / f".{key}.safetensors.x1.tmp").write_bytes(b"half")
    cache.path(key).write_bytes(good[:100])
    found = cache.verify()
    assert len(found) == 2 and "temporary file" in found[0] and "unreadable" in found[1], found


def test_an_unreadable_cache_path_is_a_miss(entry, tmp_path, monkeypatch):
    """A cache path the file system refuses to stat (too long, no permission) is a miss, not a crash."""
    from diffstyle_lab.cache import cached_invert
    m, x, ref, _, _ = entry
    cache = dl.InversionCache(tmp_path)

    def refuse(self):
        raise OSError(36, "File name too long")
    monkeypatch.setattr(Path, "is_file", refuse)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # a plain miss: no "not trusted" warning either
        got = cached_invert(m, x, steps=3, progress=False, cache=cache)
    assert cache.misses == 1 and cache.hits == 0 and torch.equal(got.h, ref.h)


def test_block_table_in_float64(m64):
    from diffstyle_lab.hooks import block_table
    tab = block_table(m64)
    inv = dl.ddim_invert(m64, torch.zeros(1, 3, 16, 16, dtype=F64), 2, progress=False)
    assert tab.attrs["h"] == tuple(inv.h.shape[2:]) and len(tab) == 2 + len(m64.unet.down_blocks) + \
        len(m64.unet.up_blocks) + 1


@given(st.integers(0, 999), st.integers(0, 999), st.floats(0, 1), st.sampled_from(["paper", "authors"]),
       st.integers(1, 3))
def test_boost_noise_follows_its_definition(t, t_boost, eta, boost, every):
    """σ_t > 0 exactly where quality boosting is on (docs/method.md §5): 0 < t ≤ t_boost, η > 0, and with
    boost='authors' only on the injection grid."""
    from diffstyle_lab.sampling import boost_sigma
    CASES["boost"] += 1
    cfg = InjectionConfig(t_edit=999, t_boost=t_boost, eta_boost=eta, boost=boost)
    inj = set(range(0, 1000, every))
    sigma = boost_sigma(cfg, t, 0.5, 0.6, inj)             # any ᾱ_t < ᾱ_{t−1}
    on = 0 < t_boost and t <= t_boost and eta > 0 and (boost == "paper" or t in inj)
    assert (sigma > 0) == on, (sigma, on)


def test_h_at_takes_the_nearest_recorded_t_and_the_larger_on_a_tie():
    from diffstyle_lab.sampling import Inversion
    h = torch.arange(3, dtype=F64).view(1, 3, 1, 1, 1)
    inv = Inversion(torch.zeros(1, 3, 1, 1), h, [0, 10, 30], [0, 10, 30], "authors")
    assert [float(inv.h_at(t)) for t in (0, 4, 5, 6, 20, 25, 999)] == [0, 0, 1, 1, 2, 2, 2]


def test_the_default_cache_folder(monkeypatch, tmp_path):
    from diffstyle_lab.cache import default_cache_dir
    monkeypatch.delenv("DIFFSTYLE_LAB_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "diffstyle_lab" / "inversions"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "diffstyle_lab" / "inversions"
    monkeypatch.setenv("DIFFSTYLE_LAB_CACHE", str(tmp_path / "y"))
    assert default_cache_dir() == tmp_path / "y" and dl.InversionCache().dir == tmp_path / "y"


def test_progress_bars_do_not_linger(m64):
    """With ``progress=True`` the bars are drawn on stderr and cleared when done (no line is left)."""
    err = io.StringIO()
    x = torch.zeros(1, 3, 16, 16, dtype=torch.float64)
    with contextlib.redirect_stderr(err):
        dl.inject(m64, x, x, steps=2, inversion_steps=2, progress=True)
    assert "invert" in err.getvalue() and "injection" in err.getvalue() and "\n" not in err.getvalue()


# =============================================================================================
# The manifest reader

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                    max_leaves=10)


@st.composite
def manifest_bytes(draw):
    good = {"format": 2, "params": {"batch": 8}, "compute": {"device": "cpu"},
            "pairs": {"c0_png__s0_png.png": {"content": "c0.png", "sha256": "0" * 64}}}
    kind = draw(st.sampled_from(["good", "json", "edit", "flip", "truncate", "binary"]))
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    if kind == "binary":
        return draw(st.binary(max_size=64))
    man = json.loads(json.dumps(good))
    if kind == "edit":
        where = draw(st.sampled_from(["top", "pairs", "entry"]))
        target = {"top": man, "pairs": man["pairs"], "entry": man["pairs"]["c0_png__s0_png.png"]}[where]
        key = draw(st.sampled_from(sorted(target) + ["format", "x"]))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(JSON)
    raw = json.dumps(man, indent=draw(st.sampled_from([None, 1]))).encode()
    if kind == "flip":
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([raw[i] ^ (1 << draw(st.integers(0, 7)))]) + raw[i + 1:]
    elif kind == "truncate":
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
    return raw


@given(manifest_bytes())
@example(b"[" * 100000).via("a deeply nested manifest raised RecursionError")
@example(b'{"format": 2, "params": {}, "pairs": {"a.png": 5}}').via("a non-object entry crashed the resume")
@example(b'{"format": "2\\nx", "params": {}, "pairs": {}}').via("a format with a newline broke the one line")
def test_manifest_reader(raw):
    from diffstyle_lab.cli import MANIFEST_FORMAT, read_manifest
    CASES["manifest"] += 1
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "manifest.json"
        p.write_bytes(raw)
        try:
            man = read_manifest(p)
        except ValueError as e:
            one_line(e, str(p))
            return
    assert man["format"] == MANIFEST_FORMAT and isinstance(man["params"], dict)
    assert all(isinstance(v, dict) for v in man["pairs"].values())


# =============================================================================================
# The command: generated input folders, flags and output folders

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from diffstyle_lab.faces.architecture import export
    from diffstyle_lab.models import tiny_unet
    d = tmp_path_factory.mktemp("cli_model") / "model"
    export(tiny_unet(seed=0), d)
    return d


NAME = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=8)
EXT = st.sampled_from([".png", ".png", ".jpg", ".PNG", ".webp", ".bmp", ".gif", ".tif", ".txt", ""])
MODES = ["RGB", "L", "RGBA", "P", "LA", "CMYK", "1", "I;16", "I", "F"]


@st.composite
def input_file(draw):
    """(name, kind, payload) of one entry of an input folder."""
    name = draw(NAME).strip() or "x"
    assume(name not in (".", "..") and not name.startswith("."))
    ext = draw(EXT)
    kind = draw(st.sampled_from(["image"] * 6 + ["empty", "garbage", "truncated", "folder", "symlink",
                                                 "dangling"]))
    mode = draw(st.sampled_from(MODES))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    return name + ext, kind, (mode, size, draw(st.integers(0, 2 ** 16)))


def _image(mode, size, seed):
    rng = np.random.RandomState(seed)
    a = rng.rand(size[1], size[0], 3)
    im = Image.fromarray((a * 255).astype(np.uint8))
    if mode in ("I;16", "I"):
        return Image.fromarray((a[..., 0] * 65535).astype(np.uint16)).convert(mode) if mode == "I" else \
            Image.fromarray((a[..., 0] * 65535).astype(np.uint16))
    if mode == "F":
        return Image.fromarray(a[..., 0].astype(np.float32))
    return im.convert(mode)


def _write_entry(folder: Path, name, kind, payload):
    p = folder / name
    mode, size, seed = payload
    fmt = {".png": "PNG", ".jpg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".gif": "GIF", ".tif": "TIFF"}.get(
        Path(name).suffix.lower(), "PNG")
    if kind == "folder":
        p.mkdir(exist_ok=True)
        _image("RGB", size, seed).save(p / "inner.png")
        return
    if p.exists() or p.is_symlink():
        return
    if kind in ("symlink", "dangling"):
        target = folder.parent / f"target{seed}.png"
        if kind == "symlink":
            _image("RGB", size, seed).save(target)
        os.symlink(target, p)
        return
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "garbage":
        p.write_bytes(np.random.RandomState(seed).bytes(50))
    else:
        im = _image(mode, size, seed)
        try:
            buf = io.BytesIO()
            im.save(buf, fmt)
        except (OSError, ValueError, KeyError):       # a mode the format cannot hold: PNG bytes instead
            buf = io.BytesIO()
            im.convert("RGB").save(buf, "PNG")
        data = buf.getvalue()
        p.write_bytes(data[: len(data) // 2] if kind == "truncated" else data)


def _snapshot(folder: Path) -> dict:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


@st.composite
def cli_case(draw):
    content = draw(st.lists(input_file(), min_size=1, max_size=3))
    style = draw(st.lists(input_file(), min_size=1, max_size=2))
    flags = []
    if draw(st.booleans()):
        flags += ["--batch", str(draw(st.one_of(st.integers(1, 3), st.integers(-1, 0))))]
    if draw(st.booleans()):
        flags += ["--fit", draw(st.sampled_from(["crop", "pad"]))]
    if draw(st.integers(0, 4)) == 0:
        flags += ["--gamma", draw(st.sampled_from(["0.5", "1", "1.5", "-0", "nan", "inf"]))]
    if draw(st.integers(0, 4)) == 0:
        flags += ["--seed", draw(st.sampled_from(["0", "7", "-1", str(2 ** 64)]))]
    if draw(st.integers(0, 5)) == 0:
        flags += ["--mask", "MASK"]
    out = draw(st.sampled_from(["missing", "empty", "with_files", "with_files"]))
    cache = draw(st.sampled_from(["off", "folder"]))
    single_style = draw(st.integers(0, 3)) == 0
    return content, style, flags, out, cache, single_style, draw(st.booleans())


STEPS = ["--steps", "3", "--inversion-steps", "3", "--t-edit", "400", "--t-boost", "0"]


@settings(max_examples=max(settings().max_examples // 2, 5))
@given(cli_case())
@example(([("0.png", "image", ("RGB", (1, 1), 0))], [("0\n0.png", "image", ("RGB", (1, 1), 0))], [], "missing", "off",
          True, False)).via("a newline in a style name: results written, then grid.png failed on every run")
@example(([("0.png", "image", ("RGB", (1, 1), 0))], [("0\x1e0.png", "empty", ("RGB", (1, 1), 0))], [], "missing",
          "off", True, False)).via("a control character in a file name made the error two lines")
def test_cli(model_dir, case):
    from diffstyle_lab.cli import LOCK_NAME, file_sha256
    CASES["cli"] += 1
    content_files, style_files, flags, out_kind, cache_kind, single_style, rerun = case
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "content").mkdir()
        (d / "style").mkdir()
        for e in content_files:
            _write_entry(d / "content", *e)
        for e in style_files:
            _write_entry(d / "style", *e)
        Image.new("L", (9, 7), 255).save(d / "mask.png")
        style = d / "style"
        if single_style:
            style = next(iter(sorted(style.iterdir())), style)
        out = d / "out"
        if out_kind != "missing":
            out.mkdir()
        if out_kind == "with_files":
            (out / "notes.txt").write_text("mine")
            Image.new("RGB", (5, 5)).save(out / "keep.png")
            (out / "sub").mkdir()
            (out / "sub" / "x.bin").write_bytes(b"\x00\x01")
        before = _snapshot(out)
        argv = ["inject", "--content", str(d / "content"), "--style", str(style), "--out", str(out),
                "--model", str(model_dir), "--device", "cpu", "--quiet", "--cache",
                "off" if cache_kind == "off" else str(d / "cache"), *STEPS,
                *[str(d / "mask.png") if f == "MASK" else f for f in flags]]
        note(f"argv={argv}\ncontent={sorted(os.listdir(d / 'content'))}\nstyle={sorted(os.listdir(d / 'style'))}")
        rc, err = _main(argv)
        assert rc in (0, 2), (rc, err)
        after = _snapshot(out)
        for k, v in before.items():      # nothing that was there is lost or changed
            assert after.get(k, "lost") == v, k
        assert LOCK_NAME not in after and not [k for k in after if k.endswith(".tmp")], sorted(after)
        if rc == 2:
            lines = [ln for ln in err.strip().splitlines() if ln.strip()]
            if lines and lines[0].startswith("usage:"):      # argparse's own refusal: usage + one error line
                lines = lines[1:]
            assert len(lines) == 1 and "error:" in lines[0], err
            assert set(after) == set(before)                  # nothing written
            assert out.exists() == (out_kind != "missing")
            return
        man = json.loads((out / "manifest.json").read_text())
        made = {k for k in after if "__" in k and k.endswith(".png") and "/" not in k}
        assert set(man["pairs"]) == made and made
        for name, e in man["pairs"].items():
            assert file_sha256(out / name) == e["sha256"]
            with Image.open(out / name) as im:
                assert im.size == (16, 16) and im.mode == "RGB"
        from diffstyle_lab.images import list_images
        assert len(made) == len(list_images(d / "content")) * len(list_images(style))
        if rerun:                        # a resume: nothing new, nothing changed
            again = _snapshot(out)
            assert _main(argv)[0] == 0
            now = _snapshot(out)
            assert {k: v for k, v in now.items() if k != "manifest.json" and k != "grid.png"} == \
                {k: v for k, v in again.items() if k != "manifest.json" and k != "grid.png"}
        if cache_kind == "folder":
            assert dl.InversionCache(d / "cache").verify() == []


def _main(argv):
    """(exit status, stderr) of one in-process command."""
    from diffstyle_lab.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:          # argparse: a flag of the wrong type
            rc = e.code
    return rc, err.getvalue()
