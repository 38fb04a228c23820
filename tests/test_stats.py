"""Statistics collectors and estimators (method.md §8): synthetic inputs with known answers, and
the tiny random U-Net end to end."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from diffstyle_lab import InjectionConfig, ddim_invert, generate, maths, tiny_model  # noqa: E402
from diffstyle_lab.stats import bootstrap  # noqa: E402
from diffstyle_lab.stats import estimators as stats  # noqa: E402
from diffstyle_lab.sampling import StepInfo  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tensors here are tiny: one torch thread is as fast, and far faster on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------
# Synthetic trajectories with a known correlation

def synthetic_steps(n, ts, a=1.0, sigma=1.0, batch=50, seed=0, shape=(4, 3, 3)):
    """StepInfos whose ‖h‖ ~ N(10, 1) and ‖g‖ = a·‖h‖ + N(0, σ²), random directions.

    The population correlation of ‖h‖ and ‖g‖ is a / √(a² + σ²)."""
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, n, batch):
        b = min(batch, n - start)
        for k, t in enumerate(ts):
            hn = 10 + torch.randn(b, generator=gen, dtype=torch.float64)
            gn = a * hn + sigma * torch.randn(b, generator=gen, dtype=torch.float64)
            hd = torch.randn(b, *shape, generator=gen, dtype=torch.float64)
            gd = torch.randn(b, *shape, generator=gen, dtype=torch.float64)
            h = (hd / hd.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * hn.view(-1, 1, 1, 1)).float()
            g = (gd / gd.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * gn.view(-1, 1, 1, 1)).float()
            yield StepInfo("generate", k, t, torch.zeros(b, 3, 4, 4), h, g)


def run_synthetic(n, ts=(999, 500, 0), **kw):
    col = stats.NormCollector(seed=1)
    for info in synthetic_steps(n, ts, **kw):
        col(info)
    return col, col.table(model="synthetic")


@pytest.fixture(scope="module")
def big():
    """4000 samples, σ = 1: r = 1/√2 ≈ 0.707 at every t."""
    return run_synthetic(4000, batch=500)[1]


def test_r_homo_matches_the_known_correlation_and_r_hetero_is_near_zero(big):
    rh = stats.r_homo(big["h"], big["g"])
    assert rh.shape == (3,)
    assert np.all(np.abs(rh - 1 / math.sqrt(2)) < 0.03), rh
    rx = stats.r_hetero(big["h"], big["g"], n_perm=20, seed=0)
    assert np.all(np.abs(rx) < 0.04), rx            # 4 s.e. of r under independence is 4/√4000 ≈ 0.06
    # different noise variance: σ = 3 gives r = 1/√10
    _, t3 = run_synthetic(3000, ts=(10,), sigma=3.0, batch=300, seed=5)
    assert abs(float(stats.r_homo(t3["h"], t3["g"])[0]) - 1 / math.sqrt(10)) < 0.05


def test_pearson_equals_numpy_corrcoef_per_column():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    y[:, 1] += 2 * x[:, 1]
    r = stats.pearson(x, y)
    ref = [np.corrcoef(x[:, k], y[:, k])[0, 1] for k in range(4)]
    np.testing.assert_allclose(r, ref, rtol=1e-12)
    assert float(stats.pearson(x[:, 1], x[:, 1])) == pytest.approx(1.0)
    assert np.isnan(stats.pearson(np.ones(5), np.arange(5.0)))          # constant: undefined, not 0


def test_estimators_reject_bad_input():
    with pytest.raises(ValueError, match="n ≥ 3"):
        stats.r_homo([1.0, 2.0], [2.0, 1.0])
    with pytest.raises(ValueError, match="different shapes"):
        stats.r_homo(np.ones((5, 3)), np.ones((5, 4)))
    with pytest.raises(ValueError, match="different shapes"):
        stats.r_alt(np.ones(5), np.ones(6))
    with pytest.raises(ValueError, match="n ≥ 3"):
        stats.r_hetero(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="3 samples"):
        stats.batch_bounds(2, 4)
    with pytest.raises(ValueError, match="batch_size=1"):
        stats.batch_bounds(10, 1)
    with pytest.raises(ValueError, match="method='mean'"):
        stats.MixSetting("x", "mean", 0.5)
    t = stats.NormTable(np.arange(3), {"h": np.ones((2, 3)), "g": np.ones((2, 3))})
    with pytest.raises(ValueError, match="n ≥ 3"):
        stats.correlation_frame(t, n_boot=50)
    with pytest.raises(ValueError, match="expected n×3"):
        stats.NormTable(np.arange(3), {"h": np.ones((4, 2))})


def test_derangements_have_no_fixed_points_and_are_seeded():
    for n in (2, 3, 10):
        p = stats.derangement(n, np.random.default_rng(n))
        assert sorted(p) == list(range(n)) and not np.any(p == np.arange(n))
    a = stats.derangement(20, np.random.default_rng(4))
    np.testing.assert_array_equal(a, stats.derangement(20, np.random.default_rng(4)))
    with pytest.raises(ValueError, match="at least 2"):
        stats.derangement(1, np.random.default_rng(0))
    assert stats.batch_bounds(9, 4) == [(0, 4), (4, 9)]               # a lone last sample is merged
    assert stats.batch_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]


def test_normalised_slerp_keeps_r_homo_exactly_and_replacement_pairs_another_sample():
    col, t = run_synthetic(200, batch=40)
    np.testing.assert_allclose(t["h_tilde[normalised_slerp]"], t["h"], rtol=1e-12)
    np.testing.assert_allclose(stats.r_alt(t["h_tilde[normalised_slerp]"], t["g"]), stats.r_homo(t["h"], t["g"]),
                               rtol=0, atol=1e-10)
    # replace: |h̃^(i)| = |h^(π(i))|, π a derangement within each batch (never the sample itself)
    for s in range(0, 200, 40):
        hb, rb = t["h"][s:s + 40], t["h_tilde[replace]"][s:s + 40]
        np.testing.assert_allclose(np.sort(rb, 0), np.sort(hb, 0), rtol=1e-12)
        assert not np.any(np.isclose(rb, hb, rtol=1e-9))
    # energy of normalised Slerp: ‖h̃−h‖²/‖h‖² = 2(1 − cos γθ), θ the angle between the two h
    theta = np.arccos(np.clip(t["cos_pair"], -1, 1))
    np.testing.assert_allclose(t["energy[normalised_slerp]"], 2 * (1 - np.cos(0.3 * theta)), rtol=1e-9)
    # add (γ = 1): ‖h_i + h_j‖² = ‖h_i‖² + ‖h_j‖² + 2 cos·‖h_i‖‖h_j‖
    hj = t["h_tilde[replace]"]
    np.testing.assert_allclose(t["h_tilde[add]"] ** 2, t["h"] ** 2 + hj ** 2 + 2 * t["cos_pair"] * t["h"] * hj,
                               rtol=1e-9)


def test_correlation_frame_shape_ci_and_seeding(big):
    df = stats.correlation_frame(big, n_boot=200, seed=3, n_perm=10)
    assert list(df.columns) == stats.FRAME_COLUMNS
    assert set(df["statistic"]) == {"r_homo", "r_hetero", "r_alt"}
    assert set(df[df.statistic == "r_alt"]["setting"]) == {s.name for s in stats.alt_settings()}
    assert (df["n"] == 4000).all() and (df["model"] == "synthetic").all()
    assert ((df.ci_low <= df.value + 1e-12) & (df.value <= df.ci_high + 1e-12)).all()
    homo = df[df.statistic == "r_homo"].reset_index(drop=True)
    assert ((homo.ci_low < 1 / math.sqrt(2)) & (1 / math.sqrt(2) < homo.ci_high)).all()
    assert (homo.ci_high - homo.ci_low < 0.06).all()
    ns = df[(df.statistic == "r_alt") & (df.setting == "normalised_slerp")].reset_index(drop=True)
    np.testing.assert_allclose(ns[["value", "ci_low", "ci_high"]], homo[["value", "ci_low", "ci_high"]], atol=1e-10)
    _, small = run_synthetic(100, batch=50)
    one = stats.correlation_frame(small, n_boot=100, seed=3, n_perm=10)
    pd.testing.assert_frame_equal(one, stats.correlation_frame(small, n_boot=100, seed=3, n_perm=10))
    other = stats.correlation_frame(small, n_boot=100, seed=4, n_perm=10)
    assert not np.allclose(other.ci_low, one.ci_low)
    with pytest.raises(ValueError, match="level"):
        stats.correlation_frame(small, n_boot=100, level=95)


# ---------------------------------------------------------------------------------------------
# What the intervals are intervals of: simulated data whose sampling spread is known by Monte Carlo

def _norms(m, n, cols=2):
    """n samples of (‖h‖, ‖g‖) with corr ≈ 0.7, a fresh data set per m."""
    rng = np.random.default_rng(1000 + m)
    h = rng.normal(10, 1, (n, cols))
    return h, 0.7 * h + rng.normal(0, 0.7, (n, cols))


def test_r_hetero_replicates_are_the_mean_over_pairings_of_each_resample():
    h, g = _norms(0, 25)
    idx = bootstrap.bootstrap_indices(25, 20, seed=2)
    reps = stats.r_hetero_replicates(h, g, idx, n_perm=15, seed=2)
    pairings = stats.derangements(25, 15, bootstrap.stream(2, 25, 1))      # the first resample's draws
    explicit = np.mean([stats.pearson(h[idx[0]][p], g[idx[0]]) for p in pairings], axis=0)
    np.testing.assert_allclose(reps[0], explicit, rtol=0, atol=1e-13)
    # averaged over many pairings, r_hetero is −r_homo/(n−1) (exact over all derangements)
    np.testing.assert_allclose(stats.r_hetero(h, g, n_perm=3000, seed=0), -stats.r_homo(h, g) / 24, atol=0.02)


def test_r_hetero_interval_has_the_spread_of_the_reported_mean():
    """The reported r_hetero is a mean over n_perm pairings: its interval must match the spread of that mean
    over fresh data sets (≈ 0.04 here), not the spread of one pairing (≈ 1/√n ≈ 0.18, the old interval)."""
    n, n_perm = 30, 20
    vals = np.array([stats.r_hetero(*_norms(m, n), n_perm=n_perm, seed=m) for m in range(200)])
    sd, target = vals.std(0, ddof=1), vals.mean(0)
    widths, covered = [], []
    for m in range(50):
        t = stats.NormTable(np.arange(2), dict(zip(("h", "g"), _norms(m, n))))
        row = stats.correlation_frame(t, n_boot=100, seed=m, n_perm=n_perm).query("statistic == 'r_hetero'")
        widths.append(row.ci_high.to_numpy() - row.ci_low.to_numpy())
        covered.append((row.ci_low.to_numpy() <= target) & (target <= row.ci_high.to_numpy()))
        assert ((row.ci_low <= row.value) & (row.value <= row.ci_high)).all()
    ratio = np.mean(widths, 0) / (2 * 1.96 * sd)
    assert np.all((0.7 < ratio) & (ratio < 1.4)), ratio
    assert np.mean(widths) < 0.3 * 2 * 1.96 / math.sqrt(n)          # far narrower than one pairing's spread
    assert np.mean(covered) >= 0.85, np.mean(covered)


@pytest.mark.parametrize("method,gamma", [("replace", 1.0), ("lerp", 0.3)])
def test_r_alt_pair_bootstrap_has_the_spread_over_fresh_images_and_pairings(method, gamma):
    """r_alt's interval resamples the rows (i, π(i)) as if independent (each image is in two rows): on
    simulated h it still has the width of r_alt's spread over fresh images and a fresh derangement."""
    n, d = 40, 6

    def r_alt_once(m):
        rng = np.random.default_rng(5000 + m)
        hn = rng.normal(10, 1, n)
        gn = 0.7 * hn + rng.normal(0, 0.7, n)
        dirs = rng.normal(size=(n, d))
        h = torch.from_numpy(dirs / np.linalg.norm(dirs, axis=1, keepdims=True) * hn[:, None])
        pi = torch.from_numpy(stats.derangement(n, rng))
        return maths.mix_h(h, h[pi], gamma, method).norm(dim=1).numpy()[:, None], gn[:, None]

    sd = np.std([stats.r_alt(*r_alt_once(m))[0] for m in range(200)], ddof=1)
    widths = []
    for m in range(40):
        x, g = r_alt_once(m)
        idx = bootstrap.bootstrap_indices(n, 200, seed=m)
        lo, hi = bootstrap.percentile_interval(stats._pearson_axis(x[idx], g[idx], 1), 0.95)
        widths.append(hi - lo)
    assert 0.75 < np.mean(widths) / (2 * 1.96 * sd) < 1.25


def test_bootstrap_core_rules():
    """One core for stats and evaluate: indices a pure function of (n, n_boot, seed), n ≥ 2, NaN interval
    (not a zero-width one) from a single value, replicates recentred on the estimate."""
    from diffstyle_lab import evaluate as ev
    assert stats.bootstrap_indices is bootstrap.bootstrap_indices is ev.bootstrap_indices
    a = bootstrap.bootstrap_indices(7, 50, seed=4)
    assert a.shape == (50, 7) and a.min() >= 0 and a.max() < 7
    np.testing.assert_array_equal(a, bootstrap.bootstrap_indices(7, 50, seed=4))
    assert not np.array_equal(a, bootstrap.bootstrap_indices(7, 50, seed=5))
    assert bootstrap.bootstrap_indices(2, 10).shape == (10, 2)
    with pytest.raises(ValueError, match="n ≥ 2"):
        bootstrap.bootstrap_indices(1, 100)
    with pytest.raises(ValueError, match="n_boot=5"):
        bootstrap.bootstrap_indices(10, 5)
    m, lo, hi = bootstrap.bootstrap_ci([3.0, np.nan])
    assert m == 3.0 and np.isnan(lo) and np.isnan(hi)
    r = bootstrap.recentre(np.array([[1.0, 5.0], [3.0, 7.0]]), np.array([0.0, 6.0]))
    np.testing.assert_allclose(r.mean(0), [0.0, 6.0], rtol=0, atol=1e-15)
    assert bootstrap.percentile_interval([1.0, np.inf, np.nan, 3.0], 0.5, axis=None) == (1.5, 2.5)
    with pytest.raises(ValueError, match="level=95"):
        bootstrap.percentile_interval([1.0], 95)
    # any statistic of paired per-unit arrays: a ratio of means, resampled with the shared indices
    g = np.random.default_rng(0)
    x, y = g.uniform(1, 2, 30), g.uniform(3, 4, 30)
    est, lo, hi = bootstrap.paired_statistic(lambda a, b: a.mean(-1) / b.mean(-1), x, y, n_boot=200, seed=1)
    reps = x[bootstrap.bootstrap_indices(30, 200, 1)].mean(1) / y[bootstrap.bootstrap_indices(30, 200, 1)].mean(1)
    assert est == pytest.approx(x.mean() / y.mean())
    assert (lo, hi) == pytest.approx(tuple(np.quantile(reps, [0.025, 0.975])))
    with pytest.raises(ValueError, match="same units"):
        bootstrap.paired_statistic(np.subtract, x, y[:-1])


def test_spread_frame_means_and_sds():
    _, t = run_synthetic(300, batch=60)
    df = stats.spread_frame(t, n_boot=100)
    mh = df[df.statistic == "mean_h"].sort_values("t")
    np.testing.assert_allclose(mh.value, t["h"].mean(0), rtol=1e-12)
    sg = df[df.statistic == "sd_g"].sort_values("t")
    np.testing.assert_allclose(sg.value, t["g"].std(0, ddof=1), rtol=1e-12)
    assert abs(float(mh.value.mean()) - 10) < 0.3 and abs(float(sg.value.mean()) - math.sqrt(2)) < 0.2
    assert set(df[df.statistic == "energy"]["setting"]) == {s.name for s in stats.alt_settings()}


def test_collector_memory_is_n_T_k_scalars_and_holds_no_tensors():
    ts = list(range(0, 1000, 100))
    sizes = []
    for n in (4, 16, 64):
        col = stats.NormCollector(seed=0)
        for info in synthetic_steps(n, ts, batch=4, shape=(8, 4, 4)):
            col(info)
            assert col.numel() <= n * len(ts) * len(col.quantities)
        assert col.numel() == n * len(ts) * len(col.quantities)
        sizes.append(col.numel())

        def tensors(o, depth=0):
            if torch.is_tensor(o):
                return 1
            if depth > 4:
                return 0
            if isinstance(o, dict):
                return sum(tensors(v, depth + 1) for v in o.values())
            if isinstance(o, (list, tuple)):
                return sum(tensors(v, depth + 1) for v in o)
            return 0
        assert tensors(vars(col)) == 0
        table = col.table()
        assert table.numel() == n * len(ts) * len(col.quantities)
        assert all(v.dtype == np.float64 for v in table.values.values())
    assert sizes[1] == 4 * sizes[0] and sizes[2] == 16 * sizes[0]     # linear in n, feature-map size irrelevant


def test_collector_rejects_batches_on_other_grids_and_filters_phases():
    col = stats.NormCollector()
    for info in synthetic_steps(4, [0, 500, 999], batch=4):
        col(info)
    col.end_batch()
    for info in synthetic_steps(4, [0, 999], batch=4):
        col(info)
    with pytest.raises(ValueError, match="visited 2 timesteps"):
        col.table()
    inv = stats.NormCollector(phase="invert")
    for info in synthetic_steps(4, [0, 999], batch=4):
        inv(info)                                   # "generate" steps are ignored
    with pytest.raises(ValueError, match="recorded nothing"):
        inv.table()
    with pytest.raises(ValueError, match="phase='sideways'"):
        stats.NormCollector(phase="sideways")


def test_save_frame_csv_roundtrip_and_parquet_error(tmp_path, monkeypatch, big):
    df = stats.correlation_frame(big, n_boot=50, n_perm=5)
    p = stats.save_frame(df, tmp_path / "c.csv")
    back = pd.read_csv(p)
    assert list(back.columns) == stats.FRAME_COLUMNS and len(back) == len(df)
    np.testing.assert_allclose(back.value, df.value, rtol=1e-5)
    import sys
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "fastparquet", None)
    with pytest.raises(ImportError, match="pip install pyarrow"):
        stats.save_frame(df, tmp_path / "c.parquet")
    with pytest.raises(ValueError, match="unknown format"):
        stats.save_frame(df, tmp_path / "c.xlsx")


def test_plot_has_t_reversed_and_shaded_intervals(tmp_path, big):
    df = stats.summarise(big, n_boot=50, n_perm=5)
    fig = stats.plot_correlations(df, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 10_000
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert lo > hi                                   # T on the left
    assert len(ax.collections) == 2 + len(stats.alt_settings())     # one shaded CI per line
    with pytest.raises(ValueError, match="no r_homo"):
        stats.plot_correlations(df[df.statistic == "mean_h"])


# ---------------------------------------------------------------------------------------------
# End to end on the tiny random U-Net

@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return tiny_model(levels=2)


def test_collector_on_generate_matches_direct_norms(tiny):
    x_T = stats.noise(tiny, 0, 3, seed=0)
    col, raw = stats.NormCollector(), {}

    def direct(info):
        raw[info.t] = (info.h.flatten(1).double().norm(dim=1).numpy(), info.g.flatten(1).double().norm(dim=1).numpy())
    generate(tiny, x_T, steps=4, progress=False, callbacks=[col, direct])
    t = col.table()
    assert list(t.ts) == sorted(raw) and t.n == 3
    for k, ts in enumerate(t.ts):
        np.testing.assert_allclose(t["h"][:, k], raw[ts][0], rtol=1e-12)
        np.testing.assert_allclose(t["g"][:, k], raw[ts][1], rtol=1e-12)


def test_collect_is_independent_of_batch_size_and_resumes(tmp_path, tiny):
    a = stats.collect(tiny, 5, steps=4, batch_size=2, progress=False)
    b = stats.collect(tiny, 5, steps=4, batch_size=5, progress=False)
    assert a.n == 5 and list(a.ts) == [0, 333, 666, 999]
    np.testing.assert_allclose(a["h"], b["h"], rtol=1e-5)
    np.testing.assert_allclose(a["g"], b["g"], rtol=1e-5)
    # interrupt in the second batch, then resume: finished batches are read back, not recomputed
    calls = {"n": 0}

    def boom(info):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        stats.collect(tiny, 6, steps=4, batch_size=2, out_dir=tmp_path, progress=False, callbacks=[boom])
    assert sorted(p.name for p in tmp_path.glob("batch_*.npz")) == ["batch_0000000_0000002.npz"]
    seen = []
    resumed = stats.collect(tiny, 6, steps=4, batch_size=2, out_dir=tmp_path, progress=False,
                            callbacks=[lambda i: seen.append(i.x.shape[0])])
    assert len(seen) == 2 * 4                         # two batches left, four steps each
    fresh = stats.collect(tiny, 6, steps=4, batch_size=2, progress=False)
    for q in fresh.values:
        np.testing.assert_allclose(resumed[q], fresh[q], rtol=1e-6, equal_nan=True)
    with pytest.raises(ValueError, match="steps"):
        stats.collect(tiny, 6, steps=5, batch_size=2, out_dir=tmp_path, progress=False)


def test_collect_inversion_and_trajectory_cosine(tiny):
    g = torch.Generator().manual_seed(1)
    imgs = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    t = stats.collect(tiny, source="invert", images=imgs, steps=4, batch_size=4, progress=False)
    assert t.n == 4 and list(t.ts) == [0, 333, 666, 999] and t.source == "invert"
    inv_a = ddim_invert(tiny, imgs[:2], steps=4, progress=False)
    inv_b = ddim_invert(tiny, imgs[2:], steps=4, progress=False)
    np.testing.assert_allclose(inv_a.h.flatten(2).norm(dim=-1).double().numpy(), t["h"][:2], rtol=1e-5)
    np.testing.assert_allclose(stats.trajectory_cosine(inv_a, inv_a), 1.0, rtol=1e-6)
    c = stats.trajectory_cosine(inv_a, inv_b)
    assert c.shape == (2, 4) and np.all(np.abs(c) <= 1 + 1e-9) and np.all(c < 0.9999)
    with pytest.raises(ValueError, match="different timesteps"):
        stats.trajectory_cosine(inv_a, ddim_invert(tiny, imgs[:2], steps=3, progress=False))
    with pytest.raises(ValueError, match="source='invert' needs images"):
        stats.collect(tiny, 4, source="invert")


def test_collect_of_given_images_resumes_only_for_the_same_images(tmp_path, tiny):
    imgs = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    kw = dict(source="invert", steps=4, batch_size=3, out_dir=tmp_path, progress=False)
    a = stats.collect(tiny, images=imgs, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch_0000000_0000003.npz", "meta.json"]  # no temporary

    def no_step(info):
        raise AssertionError("the finished batch was recomputed")
    b = stats.collect(tiny, images=imgs.clone(), callbacks=[no_step], **kw)
    assert (b.source, b.model, list(b.ts), sorted(b.values)) == (a.source, a.model, list(a.ts), sorted(a.values))
    for q in a.values:
        np.testing.assert_array_equal(b[q], a[q])
    with pytest.raises(ValueError, match=r"other parameters \(images differ\)"):
        stats.collect(tiny, images=imgs.flip(0), **kw)


@pytest.mark.parametrize("method", ["normalised_slerp", "replace"])
def test_collect_injection_records_h_tilde_only_while_editing(tiny, method):
    cfg = InjectionConfig(steps=4, t_edit=500, t_boost=0, gamma=0.4, method=method)
    t = stats.collect(tiny, 3, source="inject", config=cfg, batch_size=3, progress=False)
    edit = t.ts >= 500
    assert np.isnan(t["h_tilde"][:, ~edit]).all() and np.isfinite(t["h_tilde"][:, edit]).all()
    if method == "normalised_slerp":
        np.testing.assert_allclose(t["h_tilde"][:, edit], t["h"][:, edit], rtol=1e-5)
    assert (t["energy"][:, edit] > 1e-4).all()
    df = stats.summarise(t, n_boot=50, n_perm=5)
    inj = df[df.statistic == "r_inject"]
    assert set(inj.t) == set(t.ts[edit]) and set(inj.setting) == {method}
    assert set(df[df.statistic == "energy"].setting) >= {f"inject:{method}"}
