"""Evaluation (issue 6): metrics with known answers, bootstrap intervals, resumable sweeps, the
paper-metric slots, claim verdicts and the results page — on tiny models and synthetic data."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

import diffstyle_lab as dl
from diffstyle_lab import evaluate as ev
from diffstyle_lab.faces import factors
from diffstyle_lab.evaluate import metrics
from diffstyle_lab.evaluate import paper_metrics


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: these tensors are tiny, and extra threads only contend on a busy 2-core box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def clf():
    torch.manual_seed(0)
    return factors.FactorNet(factors.label_space()).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def pairs16():
    return ev.PairSet.from_avatars(6, seed=3, size=16)


def _imgs(n=3, s=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, s, s, generator=g) * 2 - 1


def tiny64():
    """The tiny U-Net in float64: results compared across batch splits are then equal to rounding (in float32,
    kernels chosen per batch size differ at the 1e-6 level)."""
    return dl.tiny_model().to(dtype=torch.float64)


SMALL_PLAN = ev.gamma_sweep(gammas=(0.0, 0.5, 1.0)) + ev.ablation()[:1]
RUN_KW = dict(steps=4, reference=16, n_boot=50, n_boot_frechet=20, progress=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, clf, pairs16):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("eval")
    return ev.evaluate(tiny64(), SMALL_PLAN, pairs16, out, classifier=clf, **RUN_KW)


# ---------------------------------------------------------------------------------------------
# metrics

def test_identical_images_give_zero_distances(clf):
    x = _imgs(4, 32)
    assert torch.allclose(metrics.pixel_rmse(x, x), torch.zeros(4))
    assert torch.allclose(metrics.ssim(x, x), torch.ones(4), atol=1e-5)
    assert torch.allclose(metrics.ssim_distance(x, x), torch.zeros(4), atol=1e-5)
    assert torch.allclose(metrics.colour_stats_distance(x, x), torch.zeros(4))
    assert torch.allclose(metrics.classifier_gram_distance(clf, x, x), torch.zeros(4))
    f = clf.features(x)
    assert torch.allclose(metrics.cosine_similarity(f, f), torch.ones(4), atol=1e-6)
    rows = ev.pair_metrics(x, x, _imgs(4, 32, seed=1), clf)
    assert (rows.pixel_rmse_content == 0).all() and np.allclose(rows.ssim_content, 1, atol=1e-5)
    assert (rows.gram_content == 0).all() and (rows.border_dist_content == 0).all()
    assert (rows.take_border == 0).all()          # the border is exactly the content image's


def test_metrics_known_values(clf):
    black, white = -torch.ones(2, 3, 8, 8), torch.ones(2, 3, 8, 8)
    assert torch.allclose(metrics.pixel_rmse(black, white), torch.ones(2))
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])            # 1×2×1×2
    assert torch.allclose(metrics.gram_matrix(f), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 2)
    a, b = _imgs(2, 32, 0), _imgs(2, 32, 1)
    d_ab, d_ba = metrics.classifier_gram_distance(clf, a, b), metrics.classifier_gram_distance(clf, b, a)
    assert torch.allclose(d_ab, d_ba) and (d_ab > 0).all()
    acts = metrics.classifier_activations(clf, a)
    w = clf.body[0].weight.shape[0]
    assert [t.shape[1] for t in acts] == [w, w, 2 * w, 2 * w, 4 * w] and acts[-1].shape[-1] == 8


def test_frechet_reference_equals_factors_frechet():
    g = np.random.default_rng(0)
    ref = g.normal(size=(300, 20))
    for n in (8, 200):                                           # fewer and more samples than dimensions
        f = g.normal(0.3, 1.2, size=(n, 20))
        fast = ev.FrechetReference(ref).distance(f)
        slow = factors.frechet_distance(torch.as_tensor(f), torch.as_tensor(ref))
        assert fast == pytest.approx(slow, rel=1e-6, abs=1e-8)
    assert ev.FrechetReference(ref).distance(ref) == pytest.approx(0, abs=1e-4)


def test_pair_metrics_with_an_oracle_classifier(pairs16):
    """A classifier that returns the renderer's ground truth: the content image scores content_kept = 1
    and style_taken = 0, the style image the opposite."""
    table = {}
    for x, f in zip(torch.cat([pairs16.content, pairs16.style]), pairs16.content_factors + pairs16.style_factors):
        table[x.numpy().tobytes()] = f

    class Oracle(factors.FactorNet):
        def predict(self, x, batch=256):
            fs = [table[v.numpy().tobytes()] for v in x]
            return {h: [ev.measures._label(f, h) for f in fs] for h in factors.HEADS}

    torch.manual_seed(0)
    oracle = Oracle(factors.label_space()).eval()
    c, s, cf, sf = pairs16.content, pairs16.style, pairs16.content_factors, pairs16.style_factors
    as_content = ev.pair_metrics(c, c, s, oracle, cf, sf)
    as_style = ev.pair_metrics(s, c, s, oracle, cf, sf)
    assert (as_content.content_kept == 1).all() and (as_content.content_all == 1).all()
    assert (as_content.style_taken == 0).all()
    assert (as_style.content_kept == 0).all() and (as_style.style_taken == 1).all()
    # heads where content and style agree do not count
    for h in ev.CONTENT_HEADS:
        same = np.array([ev.measures._label(a, h) == ev.measures._label(b, h) for a, b in zip(cf, sf)])
        assert np.isnan(as_content[f"keep_{h}"][same]).all()


# ---------------------------------------------------------------------------------------------
# bootstrap

def test_bootstrap_ci_contains_the_mean():
    g = np.random.default_rng(1)
    for k in range(5):
        v = g.exponential(size=30 + 10 * k)
        m, lo, hi = ev.bootstrap_ci(v, n_boot=500, seed=k)
        assert m == pytest.approx(v.mean()) and lo < m < hi
    m, lo, hi = ev.bootstrap_ci([2.0, 2.0, np.nan, 2.0], n_boot=100)
    assert (m, lo, hi) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="level"):
        ev.bootstrap_ci([1.0, 2.0], level=1.5)


def test_paired_difference_and_trend():
    g = np.random.default_rng(2)
    a = g.normal(size=40)
    assert ev.paired_difference(a, a, n_boot=100) == (0.0, 0.0, 0.0)
    d, lo, hi = ev.paired_difference(a + 1, a, n_boot=100)
    assert d == pytest.approx(1) and lo == pytest.approx(1) and hi == pytest.approx(1)
    x = np.array([0.0, 0.5, 1.0])
    rising = np.stack([a, a + 1, a + 2])
    assert ev.trend(rising, x, n_boot=100) == pytest.approx((1.0, 1.0, 1.0))
    assert ev.trend(rising[::-1], x, n_boot=100) == pytest.approx((-1.0, -1.0, -1.0))


# ---------------------------------------------------------------------------------------------
# sweeps

def test_default_plan_shares_settings():
    plan = ev.default_plan()
    ids = ev.setting_ids(plan, "ctx")
    assert len(set(ids.values())) == 11 + 7 + 4 + 4       # γ, t_edit (400 shared), ω, ablation (2 shared)
    by = {(e.sweep, e.x): ids[e] for e in plan}
    assert by[("gamma", 0.3)] == by[("t_edit", 400)] == by[("ablation", "normalised slerp")]
    assert by[("omega", 0.3)] == by[("ablation", "normalised slerp + calibration")]
    assert all(e.setting.t_boost <= e.setting.t_edit for e in plan)


def test_setting_is_a_view_of_injection_config():
    defaults = {f.name: f.default for f in dataclasses.fields(dl.InjectionConfig)}
    s = ev.Setting()
    assert [f.name for f in dataclasses.fields(s)] == list(ev.SWEPT_FIELDS)
    assert {k: getattr(s, k) for k in ev.SWEPT_FIELDS} == {k: defaults[k] for k in ev.SWEPT_FIELDS}
    cfg = ev.Setting(gamma=0.5, t_edit=np.int64(600)).config(steps=20, spacing="authors", seed=3)
    assert cfg == dataclasses.replace(dl.InjectionConfig(), gamma=0.5, t_edit=600, steps=20, seed=3)
    assert type(cfg.t_edit) is int and type(cfg.gamma) is float
    assert ev.Setting.from_config(cfg) == ev.Setting(gamma=0.5, t_edit=600)
    assert ev.Setting().config(steps=1000, inject_every=20, record_last=False).inject_every == 20   # fixed fields
    with pytest.raises(ValueError, match="gamma: swept"):
        ev.Setting().config(gamma=0.1)


def _toy_ideal_rmse(b):
    """A metric family as a new one would be written: RMSE to an 'ideal' image (here the blend of the pair)."""
    return {"toy_rmse_ideal": metrics.pixel_rmse(b.result, (b.content + b.style) / 2).double().numpy()}


def _blend(pairs):
    return (pairs.content + pairs.style) / 2


def test_a_new_metric_family_baseline_and_claim(tmp_path, clf, pairs16):
    """The extension points: a per-pair metric family, a baseline (a reference row) and a claim comparing a
    setting with the baseline; a run with other families is another run (nothing reused or mixed)."""
    run = ev.evaluate(tiny64(), SMALL_PLAN, pairs16, tmp_path, classifier=clf,
                      families=ev.PAIR_METRIC_FAMILIES + (_toy_ideal_rmse,),
                      baselines={**ev.BASELINES, "blend": _blend}, **RUN_KW)
    p = run.tables["pairs"].merge(run.tables["plan"], on="setting_id")
    blend = p[(p.sweep == "reference") & (p.x == "blend")]
    assert len(blend) == len(pairs16) and (blend.toy_rmse_ideal == 0).all()
    assert (p[p.sweep == "gamma"].toy_rmse_ideal > 0).all()
    claim0 = ev.Claim("beats-blend", "Injection is nearer the ideal than the blend.", "diff", "toy_rmse_ideal",
                      ("gamma", 0.5), ("reference", "blend"), -1)
    verdicts = ev.assess_claims(run.tables, (claim0,) + ev.CLAIMS, n_boot=100).set_index("claim").verdict
    assert verdicts.iloc[0] == verdicts["beats-blend"] == "does not hold"     # the blend *is* the ideal here
    plain = ev.evaluate(tiny64(), SMALL_PLAN, pairs16, tmp_path, classifier=clf, **RUN_KW)
    assert len(plain.computed) == 4 and "toy_rmse_ideal" not in plain.tables["pairs"]


def test_resumed_sweep_skips_finished_settings(tiny_run, clf, pairs16, monkeypatch):
    calls = []
    real = ev.run._run_chunk

    def counting(ctx, setting, idx, threads=None):
        calls.append(setting.label)
        return real(ctx, setting, idx, threads)
    monkeypatch.setattr(ev.run, "_run_chunk", counting)
    m = tiny64()
    again = ev.evaluate(m, SMALL_PLAN, pairs16, tiny_run.out_dir, classifier=clf, **RUN_KW)
    assert calls == [] and again.computed == [] and len(again.skipped) == 4
    pd.testing.assert_frame_equal(again.tables["pairs"], tiny_run.tables["pairs"])
    # one more setting: only it is computed; a setting whose JSON is missing (a crash) is redone
    extra = ev.t_edit_sweep(t_edits=(600,))
    sid_lost = tiny_run.computed[0]
    (tiny_run.out_dir / "blocks" / f"{sid_lost}.json").unlink()
    more = ev.evaluate(m, SMALL_PLAN + extra, pairs16, tiny_run.out_dir, classifier=clf, **RUN_KW)
    assert sorted(calls) == sorted([extra[0].setting.label, sid_lost.rsplit("-", 1)[0]])
    assert len(more.computed) == 2 and len(more.skipped) == 3
    got = more.tables["pairs"].set_index(["setting_id", "pair"]).loc[tiny_run.tables["pairs"].set_index(
        ["setting_id", "pair"]).index]
    np.testing.assert_allclose(got.content_kept, tiny_run.tables["pairs"].content_kept.to_numpy())


def test_run_tables(tiny_run, pairs16):
    t = tiny_run.tables
    n_set = 4 + 2                                    # settings + the two reference rows
    assert len(t["pairs"]) == n_set * len(pairs16)
    assert set(t["sets"].metric) == {"frechet_classifier"} and len(t["sets"]) == n_set
    assert (t["sets"].ci_low <= t["sets"].ci_high).all()
    tim = t["timing"].set_index("stage")
    assert list(tim.index) == ["inversion", "injection", "metrics"] and (tim.seconds >= 0).all()
    assert tim.share.sum() == pytest.approx(1)
    # γ = 0 leaves the trajectory unchanged: the same result as γ = 0 of any other method is not
    # guaranteed, but replace must differ from γ = 0
    p = t["pairs"].merge(t["plan"], on="setting_id")
    g0 = p[(p.sweep == "gamma") & (p.x == 0.0)].pixel_rmse_style.to_numpy()
    rp = p[(p.sweep == "ablation")].pixel_rmse_style.to_numpy()
    assert not np.allclose(g0, rp)


def test_chunked_run_on_dask_gives_the_same_results(tiny_run, clf, pairs16, tmp_path):
    """Work units of 4 + 2 pairs on a Dask client (model and classifier shipped as payloads and rebuilt)
    reproduce the unchunked in-process run: per-pair seeds make results independent of the chunking."""
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        r = ev.evaluate(tiny64(), SMALL_PLAN, pairs16, tmp_path, classifier=clf, scheduler=client,
                        chunk_size=4, **RUN_KW)
    a = r.tables["pairs"].sort_values(["setting_id", "pair"]).reset_index(drop=True)
    b = tiny_run.tables["pairs"].sort_values(["setting_id", "pair"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-5, atol=1e-6)


def test_the_run_files_are_read_strictly(tmp_path):
    """A run's JSON files are read with fileio.read_json: a damaged timing file stops the run in one line naming
    it and the fix; a damaged block marker only makes its block recompute."""
    pairs = ev.PairSet(_imgs(2), _imgs(2, seed=1))
    plan = ev.gamma_sweep(gammas=(0.5,))
    kw = dict(steps=3, classifier=None, reference=None, baselines={}, n_boot=10, progress=False)
    first = ev.evaluate(tiny64(), plan, pairs, tmp_path, **kw)
    sid, = first.computed
    (tmp_path / "blocks" / f"{sid}.json").write_text(f'{{"setting_id": "{sid}", "setting_id": "{sid}"}}')
    timing, = tmp_path.glob("timing-*.json")
    timing.write_text("{not json")
    with pytest.raises(ValueError, match=rf"{timing.name}: not valid JSON .*; delete it to recompute$"):
        ev.evaluate(tiny64(), plan, pairs, tmp_path, **kw)
    timing.unlink()
    again = ev.evaluate(tiny64(), plan, pairs, tmp_path, **kw)
    assert again.computed == [sid] and again.skipped == [] and "inversion" in json.loads(timing.read_text())


# ---------------------------------------------------------------------------------------------
# the paper's metrics

@pytest.mark.parametrize("name,env,filename", [("arcface", "DIFFSTYLE_LAB_ARCFACE", "model_ir_se50.pth"),
                                               ("vgg", "DIFFSTYLE_LAB_VGG", "vgg19-dcbb9e9d.pth"),
                                               ("inception", "DIFFSTYLE_LAB_INCEPTION",
                                                "pt_inception-2015-12-05-6726825d.pth")])
def test_paper_metric_slots_say_what_is_missing(name, env, filename, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFSTYLE_LAB_DATA", str(tmp_path))
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(paper_metrics.MissingWeightsError) as e:
        paper_metrics.weights_path(name)
    msg = str(e.value)
    assert str(tmp_path / "weights" / filename) in msg and env in msg and "does not exist" in msg
    monkeypatch.setenv(env, str(tmp_path / "elsewhere.pth"))
    with pytest.raises(paper_metrics.MissingWeightsError, match=f"elsewhere.pth \\(\\${env}\\)"):
        paper_metrics.weights_path(name)
    status = paper_metrics.paper_metric_status()[name]
    assert not status["available"] and filename in status["message"]


def test_paper_metric_functions_and_evaluate_refuse_without_weights(tmp_path, monkeypatch, clf, pairs16):
    monkeypatch.setenv("DIFFSTYLE_LAB_DATA", str(tmp_path))
    for env in ("DIFFSTYLE_LAB_ARCFACE", "DIFFSTYLE_LAB_VGG", "DIFFSTYLE_LAB_INCEPTION"):
        monkeypatch.delenv(env, raising=False)
    x = _imgs(1, 32)
    with pytest.raises(paper_metrics.MissingWeightsError, match="model_ir_se50.pth"):
        paper_metrics.arcface_identity(x, x)
    with pytest.raises(paper_metrics.MissingWeightsError, match="vgg19"):
        paper_metrics.vgg_gram_distance(x, x)
    with pytest.raises(paper_metrics.MissingWeightsError, match="pt_inception"):
        paper_metrics.inception_fid(x, x)
    with pytest.raises(paper_metrics.MissingWeightsError):
        ev.evaluate(tiny64(), SMALL_PLAN, pairs16, tmp_path / "o", classifier=clf,
                    paper_metrics=["arcface"], **RUN_KW)
    assert not (tmp_path / "o" / "blocks").exists() or not any((tmp_path / "o" / "blocks").iterdir())


def _tiny_vgg16_state(c=4):
    sd, i, cin = {}, 0, 3
    for v in [c, c, "M", c, c, "M", c, c, c, "M", c, c, c, "M", c, c, c, "M"]:
        if v == "M":
            i += 1
            continue
        sd[f"features.{i}.weight"] = torch.randn(v, cin, 3, 3) * 0.3
        sd[f"features.{i}.bias"] = torch.zeros(v)
        cin, i = v, i + 2
    sd["classifier.0.weight"] = torch.zeros(2, 2)          # ignored like torchvision's classifier
    return sd


def test_vgg_slot_activates_with_local_weights(tmp_path, monkeypatch):
    torch.manual_seed(0)
    sd = _tiny_vgg16_state()
    torch.save(sd, tmp_path / "vgg16.pth")
    monkeypatch.setenv("DIFFSTYLE_LAB_VGG", str(tmp_path / "vgg16.pth"))
    gram = paper_metrics.VGGGram(size=32)
    assert gram.net.taps == [1, 6, 11, 18, 25]             # relu1_1 … relu5_1 of VGG-16
    a, b = _imgs(2, 32, 0), _imgs(2, 32, 1)
    assert torch.allclose(gram.distance(a, a), torch.zeros(2)) and (gram.distance(a, b) > 0).all()
    from safetensors.torch import save_file
    save_file(sd, str(tmp_path / "vgg16.safetensors"))
    assert torch.allclose(paper_metrics.VGGGram(tmp_path / "vgg16.safetensors", size=32).distance(a, b), gram.distance(a, b))


class NotATensor:
    pass


def test_paper_weights_are_never_unpickled_and_load_strictly(tmp_path):
    torch.save({"features.0.weight": torch.zeros(1), "x": NotATensor()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="weights_only"):
        paper_metrics.load_state_dict_file(tmp_path / "evil.pth")
    torch.save({"input_layer.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "model_ir_se50.pth")
    with pytest.raises(ValueError, match="does not match"):
        paper_metrics.ArcFaceIdentity(tmp_path / "model_ir_se50.pth")


# ---------------------------------------------------------------------------------------------
# claims and the page

def _synthetic_tables(slope, n=40, seed=0):
    """A γ sweep whose content_kept moves by ``slope`` per unit γ, plus the ablation for the FD claims."""
    g = np.random.default_rng(seed)
    plan, pairs, sets, boot = [], [], [], []
    base = g.uniform(0.2, 0.4, n)
    for k, x in enumerate(ev.GAMMAS):
        sid = f"g{k}"
        plan.append({"sweep": "gamma", "x": x, "setting_id": sid})
        pairs.append(pd.DataFrame({"setting_id": sid, "pair": np.arange(n),
                                   "content_kept": base + slope * x + g.normal(0, 0.01, n),
                                   "style_taken": np.full(n, 0.9), "gram_style": np.full(n, 1.0)}))
    for name, fd in (("replace", 30.0), ("normalised slerp", 10.0)):
        plan.append({"sweep": "ablation", "x": name, "setting_id": name})
        sets.append({"setting_id": name, "metric": "frechet_classifier", "value": fd, "ci_low": fd - 1,
                     "ci_high": fd + 1, "n": n, "n_ref": 100})
        boot += [{"setting_id": name, "metric": "frechet_classifier", "b": b, "value": fd + 0.1 * (b % 5)}
                 for b in range(50)]
    return {"plan": pd.DataFrame(plan), "pairs": pd.concat(pairs, ignore_index=True), "sets": pd.DataFrame(sets),
            "sets_boot": pd.DataFrame(boot)}


def test_claim_verdicts_follow_the_numbers():
    up = ev.assess_claims(_synthetic_tables(+0.5), n_boot=200).set_index("claim")
    down = ev.assess_claims(_synthetic_tables(-0.5), n_boot=200).set_index("claim")
    flat = ev.assess_claims(_synthetic_tables(0.0, seed=3), n_boot=200).set_index("claim")
    assert up.loc["gamma-content", "verdict"] == "holds" and up.loc["content-injected", "verdict"] == "holds"
    assert down.loc["gamma-content", "verdict"] == "does not hold"
    assert down.loc["content-injected", "verdict"] == "does not hold"
    assert flat.loc["gamma-content", "verdict"] == "inconclusive"       # no trend: the interval straddles 0
    assert up.loc["style-kept", "verdict"] == "holds"                    # 0.9 > 0.5 everywhere
    assert up.loc["nslerp-vs-replace", "verdict"] == "holds"            # FD 30 vs 10
    assert up.loc["t_edit-content", "verdict"] == "not measured"        # no t_edit sweep in these tables
    means = _synthetic_tables(+0.5)["pairs"].groupby("setting_id").content_kept.mean()
    assert f"{means['g3']:.3g}" in up.loc["content-injected", "measured"]  # text carries the measured numbers


def test_export_and_page_rebuild_from_tables_alone(tiny_run, tmp_path):
    d = ev.export(tiny_run, tmp_path / "results")
    md = ev.build_page(d, tmp_path / "results.md", n_boot=100)
    text = md.read_text()
    assert "claim by claim" in text and "## Cost" in text
    for c in ev.CLAIMS:
        assert c.paper in text
    assert (d / "sweep_gamma.png").is_file() and (d / "claims.csv").is_file()
    claims = pd.read_csv(d / "claims.csv")
    assert set(claims.verdict) <= {"holds", "does not hold", "inconclusive", "not measured"}
    # the page is a function of the tables: rebuilding gives the same text
    assert ev.build_page(d, tmp_path / "again.md", n_boot=100, figures=False).read_text() == text
    run = dict(zip(pd.read_csv(d / "run.csv").key, pd.read_csv(d / "run.csv").value))
    assert json.loads(run["paper_metrics_used"]) == []
