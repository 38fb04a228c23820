"""Ground-truth scoring of content injection: ideals, counterfactual factor tests, baselines, probe."""

from pathlib import Path

import numpy as np
import pytest
import torch

from diffstyle_lab.faces import avatars as A
from diffstyle_lab.faces import groundtruth as G

pytest.importorskip("dicebear", reason="rendering faces needs the [data] extra")


@pytest.fixture(scope="module")
def gt():
    return G.GroundTruthPairs.make(12, seed=5)


def test_ideal_takes_content_factors_and_style_colours(gt):
    for c, s in zip(gt.content_factors, gt.style_factors):
        f = A.ideal(c, s)
        assert f.content() == c.content()
        assert f.background == s.background
        if c.family == s.family:
            assert (f.skin, f.hair_colour) == (s.skin, s.hair_colour)


def test_the_ideal_scores_perfectly_and_the_inputs_score_as_themselves(gt):
    perfect = G.score(gt.ideal, gt)
    assert np.allclose(perfect["rmse"], 0) and np.allclose(perfect["ssim"], 1, atol=1e-5)
    for k in G.LAYOUT_FACTORS + (G.IDENTITY,) + G.COLOUR_FACTORS:
        v = perfect[k][~np.isnan(perfect[k])]
        assert v.size and (v == 1).all(), k
    style, content = G.score(gt.style, gt), G.score(gt.content, gt)
    # the style image keeps the background colour; the content image has the wrong one
    assert np.nanmean(style["background"]) >= 0.9 and np.nanmean(content["background"]) == 0.0
    # the content image has the content's pose far more often than the style image has
    lay = lambda sc: np.nanmean(np.stack([sc[k] for k in G.LAYOUT_FACTORS]))  # noqa: E731
    assert lay(content) > lay(style) + 0.3


def test_factor_is_nan_where_content_and_style_agree(gt):
    sc = G.score(gt.style, gt)
    for k in G.LAYOUT_FACTORS:
        same = np.array([getattr(c, k) == getattr(s, k) for c, s in zip(gt.content_factors, gt.style_factors)])
        assert np.isnan(sc[k][same]).all(), k


def test_baselines_and_gap():
    c = torch.full((2, 3, 4, 4), -1.0)
    s = torch.ones(2, 3, 4, 4)
    assert torch.allclose(G.pixel_blend(c, s), torch.full_like(c, 0.4))
    r = G.reinhard(torch.randn(2, 3, 8, 8), 0.5 + torch.randn(2, 3, 8, 8) * 0.1)
    assert abs(float(r.mean()) - 0.5) < 0.05
    assert G.gap_closed(np.array([5.0]), np.array([10.0]), np.array([0.0])) == pytest.approx(0.5)
    assert float(G.rmse255(c, s)[0]) == pytest.approx(255.0)


def test_probe_is_zero_when_h_is_the_images_own_and_shape_checked():
    from diffstyle_lab.stats import probe
    from diffstyle_lab.models import tiny_model
    m = tiny_model(seed=0)
    x = torch.rand(2, 3, m.sample_size, m.sample_size) * 2 - 1
    rows = probe.h_influence(m, x, x.flip(0), steps=4)
    assert [r["t"] for r in rows] == sorted(r["t"] for r in rows) and all(r["r"] >= 0 for r in rows)
    same = probe.h_influence(m, x, x, steps=4, method="replace")
    assert all(r["r"] == 0.0 and r["eps_ratio"] == 0.0 for r in same)      # h̃ = h: nothing moves
    with pytest.raises(ValueError, match="pair up"):
        probe.h_influence(m, x, x[:1], steps=4)


# Measured with this very call (8 posed pairs, 10-step grid): the first default model peaks at r = 0.062,
# the shipped one (v4, trained to read layout from h) at 0.518 (v3: 0.124; v2, which read h more than v3 and
# carried colour in it too: 0.279); the threshold is under half of v4's.
R_FIRST_MAX, R_SHIPPED_MIN = 0.09, 0.25


@pytest.mark.slow
def test_the_shipped_model_reads_h_and_the_first_one_did_not():
    """The default model's decoder follows h (the issue's leading indicator), the first one's hardly."""
    from diffstyle_lab.stats import probe
    from diffstyle_lab.models import load_default_model, load_model
    gt = G.GroundTruthPairs.make(8, seed=90_000)
    peaks = {}
    for name, m in (("shipped", load_default_model()), ("first", load_model(Path(__file__).parents[1] / "data/models/faces32_v1"))):
        peaks[name] = probe.peak(probe.h_influence(m, gt.content, gt.style, steps=10), 300, 800)[1]
    assert peaks["first"] < R_FIRST_MAX, peaks
    assert peaks["shipped"] > R_SHIPPED_MIN, peaks


def test_colour_probe_is_the_h_probe_on_twins_and_skip_swaps_are_measured_by_level():
    """colour_in_h is h_influence between a face and its twin; skip_influence's "h" row is the same swap;
    swapping a level's skips for the image's own changes nothing; every up block is probed."""
    from diffstyle_lab.stats import probe
    from diffstyle_lab.models import tiny_model
    m = tiny_model(seed=0)
    m.unet.double()
    g = torch.Generator().manual_seed(1)
    x, y = (torch.rand(2, 3, m.sample_size, m.sample_size, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2))
    colour = probe.colour_in_h(m, x, y, steps=4)
    assert colour == probe.h_influence(m, y, x, steps=4)
    rows = probe.skip_influence(m, y, x, steps=4)
    levels = len(m.unet.up_blocks)
    assert len(rows) == len(colour) * (levels + 1)
    for c in colour:
        at_t = {r["level"]: r["r"] for r in rows if r["t"] == c["t"]}
        assert set(at_t) == {"h", *range(levels)}
        assert abs(at_t["h"] - c["r"]) < 1e-9                       # the same replacement, the same ratio
        assert all(v > 0 for v in at_t.values())                     # every swap moves P_t on distinct images
    same = probe.skip_influence(m, x, x.clone(), steps=4)
    assert all(r["r"] == 0.0 for r in same)                          # own skips: nothing moves
    with pytest.raises(ValueError, match="pair up"):
        probe.skip_influence(m, x, x[:1], steps=4)


# Measured with this very call (8 pairs per set, seed 90000, 20/20 steps, the model's stored defaults):
# the shipped model (v4, t_edit 200) is nearer the ideal than the unchanged style image by 16.9 (posed) and
# 14.8 (upright) RMSE points on average (v3: 13.3 and 12.1; v2 at t_edit 400: 13.7 and 7.4); the thresholds are
# under half, so other CPUs' rounding passes and a model that lost the effect does not.
MARGIN = {"posed": 8.0, "upright": 7.0}


@pytest.mark.slow
@pytest.mark.parametrize("pair_set", ["posed", "upright"])
def test_the_shipped_model_beats_the_unchanged_style_image(pair_set):
    from diffstyle_lab.config import InjectionConfig
    from diffstyle_lab.models import load_default_model
    from diffstyle_lab.sampling import ddim_invert, reverse
    m = load_default_model()
    gt = G.GroundTruthPairs.make(8, seed=90_000, size=m.sample_size, pose=pair_set == "posed")
    cfg = InjectionConfig.for_model(m, steps=20)
    inv_s, inv_c = (ddim_invert(m, x, 20, progress=False) for x in (gt.style, gt.content))
    result = reverse(m, inv_s.x_T, inv_c, cfg, progress=False)
    gain = float((G.rmse255(gt.style, gt.ideal) - G.rmse255(result, gt.ideal)).mean())
    assert gain > MARGIN[pair_set], f"{pair_set}: the result is only {gain:.1f} RMSE points nearer the ideal than the style image"


def _model_folders_with_summaries():
    from diffstyle_lab.models import data_path
    roots = [Path(data_path("models/faces32"))] + sorted((Path(__file__).resolve().parents[1] / "data" / "models").glob("*"))
    return [r for r in roots if (r / "summary.json").exists()]


@pytest.mark.parametrize("folder", _model_folders_with_summaries(), ids=lambda p: p.name)
def test_each_committed_summary_was_measured_on_its_folders_weights_at_its_stored_defaults(folder):
    """summary.json (what the notebooks' "this model shows" box reads) must describe the folder as it is:
    the same weights, and the injection settings its diffstyle_lab.json stores (a default changed without
    re-scoring fails here)."""
    from diffstyle_lab.config import InjectionConfig
    from diffstyle_lab.models import load_model
    from diffstyle_lab.faces.groundtruth_summary import SUMMARY_FILE, read_summary_file
    m = load_model(str(folder))
    s = read_summary_file(folder / SUMMARY_FILE)                         # the one reader, as the notebooks read it
    assert s["weights_sha256"] == m.weights_hash, f"{folder.name}: summary.json is for other weights"
    stored = InjectionConfig.for_model(m)
    for k in ("gamma", "t_edit", "t_boost", "calibrate", "omega", "method"):
        assert s["settings"][k] == getattr(stored, k), f"{folder.name}: summary {k}={s['settings'][k]!r}, stored {getattr(stored, k)!r}"
