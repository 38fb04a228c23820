"""Extension points end to end: a mixing rule registered here reaches the docstrings, ``--help``, ``--method`` and
Dask worker processes; an ε-provider other than the pixel one goes through ``dl.inject`` and the command line's
provider registry. Each test fails if a second, hand-written list or a pixel-only path comes back."""

import json

import pandas as pd
import pytest
import torch

import diffstyle_lab as dl
from diffstyle_lab import cli, maths, sampling
from diffstyle_lab import evaluate as ev

TIGHT = dict(atol=1e-12, rtol=0)


def _mirror_rule(calls: list) -> maths.MixRule:
    """A rule defined inside a function (so only its pickled code can reach another process), counting calls."""
    def mirror(h, h_content, gamma, region=None):
        calls.append(gamma)
        return h - gamma * h_content
    return maths.MixRule("mirror", mirror, "mir", "mirror", doc="h − γ·h^content, a test rule")


@pytest.fixture
def mirror_rule():
    calls = []
    maths.register_mix_rule(_mirror_rule(calls))
    try:
        yield calls
    finally:
        maths.unregister_mix_rule("mirror")


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--help"])
    assert e.value.code == 0
    return " ".join(capsys.readouterr().out.split())         # argparse wraps lines


# ---------------------------------------------------------------------------------------------
# Mixing rules: one registry

def test_a_registered_rule_is_listed_wherever_the_methods_are(capsys):
    listed = "mirror (h − γ·h^content, a test rule)"
    maths.register_mix_rule(_mirror_rule([]))
    try:
        assert listed in maths.mix_h.__doc__ and listed in dl.InjectionConfig.__doc__
        assert cli.config_field_docs()["method"].endswith(maths.methods_text())
        text = _help(capsys, "inject")
        assert listed in text and "{" + ",".join(maths.mix_methods()) + "}" in text       # help and choices
        for rule in maths.MIX_RULES.values():
            assert f"{rule.name} ({rule.doc})" in maths.mix_h.__doc__
    finally:
        maths.unregister_mix_rule("mirror")
    assert "mirror" not in maths.mix_h.__doc__ and "mirror" not in dl.InjectionConfig.__doc__
    assert "mirror" not in _help(capsys, "inject")
    with pytest.raises(ValueError, match="built in"):
        maths.unregister_mix_rule("slerp")


def test_the_cli_accepts_a_registered_rule_as_method(mirror_rule, tmp_path):
    from conftest import cli_workspace
    ws = cli_workspace(tmp_path / "ws")
    out = tmp_path / "out"
    assert cli.main(["inject", "--content", str(ws / "content"), "--style", str(ws / "style"), "--model",
                     str(ws / "model"), "--cache", "off", "--device", "cpu", "--quiet", "--steps", "3",
                     "--inversion-steps", "3", "--t-edit", "0", "--t-boost", "0", "--gamma", "0.5",
                     "--method", "mirror", "--out", str(out)]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["params"]["injection"]["method"] == "mirror" and len(man["pairs"]) == 4
    assert mirror_rule and set(mirror_rule) == {0.5}                 # the rule made every h̃


def test_a_shipped_rule_installs_where_it_was_never_registered(mirror_rule, monkeypatch):
    payload = maths.mix_rules_payload(["mirror", "slerp"])
    fresh = {k: v for k, v in maths.MIX_RULES.items() if k != "mirror"}    # a process that never saw "mirror"
    monkeypatch.setattr(maths, "MIX_RULES", fresh)
    with pytest.raises(ValueError, match="unknown"):
        maths.mix_h(torch.ones(1, 2), torch.ones(1, 2), 0.5, "mirror")
    slerp_rule = fresh["slerp"]
    maths.install_mix_rules(payload)
    assert fresh["slerp"] is slerp_rule                              # a rule already there is kept
    h, hc = torch.randn(2, 4, 2, 2, dtype=torch.float64), torch.randn(2, 4, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(maths.mix_h(h, hc, 0.5, "mirror"), h - 0.5 * hc, **TIGHT)
    assert "mirror (h − γ·h^content" in maths.mix_h.__doc__
    with pytest.raises(ValueError, match="unknown"):
        maths.mix_rules_payload(["nowhere"])


@pytest.mark.slow
def test_a_rule_registered_here_runs_on_dask_worker_processes(mirror_rule, tmp_path):
    """A LocalCluster of one worker *process*, which never ran this test's registration: the plan's rule travels
    with the work, and the worker's results equal the in-process run's."""
    pytest.importorskip("distributed")
    g = torch.Generator().manual_seed(0)
    pairs = ev.PairSet(torch.rand(3, 3, 16, 16, generator=g) * 2 - 1, torch.rand(3, 3, 16, 16, generator=g) * 2 - 1)
    plan = [ev.PlanEntry("rule", "mirror", ev.Setting(method="mirror", gamma=0.5, t_edit=0, t_boost=0))]
    kw = dict(steps=3, classifier=None, reference=None, baselines={}, n_boot=10, progress=False)
    model = dl.tiny_model().to(dtype=torch.float64)
    here = ev.evaluate(model, plan, pairs, tmp_path / "here", **kw)
    assert mirror_rule                                                # ran in this process
    calls = len(mirror_rule)
    there = ev.evaluate(model, plan, pairs, tmp_path / "dask", scheduler="local", n_workers=1, chunk_size=2, **kw)
    assert len(mirror_rule) == calls                                  # nothing of the sweep ran in this process
    assert there.computed == here.computed
    a, b = (r.tables["pairs"].sort_values("pair").reset_index(drop=True) for r in (here, there))
    assert len(a) == 3 and a.pixel_rmse_style.notna().all()
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-5, atol=1e-6)   # metrics are float32


# ---------------------------------------------------------------------------------------------
# ε-providers: any of them through dl.inject and the command line

class HalfEps(sampling.PixelEps):
    """Another provider over a pixel model: half its ε, so its inversions and results differ from the pixel ones."""

    label = "half "

    def eps(self, x, t, record=False):
        eps, h, g = super().eps(x, t, record)
        return 0.5 * eps, h, g

    def asymmetric(self, x, t, edit):
        eps, eps_tilde, h, h_tilde, g = super().asymmetric(x, t, edit)
        return 0.5 * eps, 0.5 * eps_tilde, h, h_tilde, g


def test_any_eps_provider_goes_through_inject(tmp_path):
    m = dl.tiny_model().to(dtype=torch.float64)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    kw = dict(steps=4, inversion_steps=4, t_edit=0, t_boost=0, gamma=0.6, progress=False)
    cfg = dl.InjectionConfig(**{k: v for k, v in kw.items() if k != "progress"})
    net = HalfEps(m)
    got = dl.inject(net, x, x.flip(0), **kw)
    content, style = (dl.ddim_invert(net, v, 4, progress=False) for v in (x, x.flip(0)))
    want = dl.reverse(net, style.x_T, content, cfg, progress=False)
    torch.testing.assert_close(got.images, want, **TIGHT)
    assert not torch.allclose(got.images, dl.inject(m, x, x.flip(0), **kw).images, atol=1e-3)
    cache = dl.InversionCache(tmp_path / "cache")
    cached = dl.inject(net, x, x.flip(0), cache=cache, **kw)
    torch.testing.assert_close(cached.images, want, **TIGHT)
    assert (cache.hits, cache.misses) == (2, 2)          # the style images are the content images, flipped


def test_a_provider_kind_registered_here_is_a_cli_choice(tmp_path, capsys, monkeypatch):
    from conftest import cli_workspace
    from diffstyle_lab.cache import InversionCache, provider_digest
    made = []

    def load(model, device):
        made.append(HalfEps(dl.load_model(model, device=device)))
        return made[-1]
    monkeypatch.setattr(sampling, "EPS_PROVIDERS", dict(sampling.EPS_PROVIDERS))
    sampling.register_eps_provider(sampling.ProviderKind("half", load, "half the pixel ε, a test provider"))
    text = _help(capsys, "inject")
    assert "half (half the pixel ε, a test provider)" in text and "{pixel,latent,half}" in text
    ws = cli_workspace(tmp_path / "ws")
    argv = ["inject", "--content", str(ws / "content"), "--style", str(ws / "style"), "--model", str(ws / "model"),
            "--cache", str(tmp_path / "cache"), "--device", "cpu", "--quiet", "--steps", "3", "--inversion-steps",
            "3", "--t-boost", "0", "--out", str(tmp_path / "out")]
    assert cli.main([*argv, "--provider", "half"]) == 0
    params = json.loads((tmp_path / "out" / "manifest.json").read_text())["params"]
    assert params["provider"] == "half" and params["model"] == provider_digest(made[0])
    # its inversions are in the cache under its own keys, and a pixel run may not resume its folder
    from diffstyle_lab.images import load_image
    x = sampling.provider_input(made[0], load_image(ws / "content" / "c0.png", 16))
    cache = InversionCache(tmp_path / "cache")
    assert cache.path(cache.key(made[0], x[0], 3, "authors", True, batch=8)).is_file()
    assert not cache.path(cache.key(made[0].model, x[0], 3, "authors", True, batch=8)).is_file()
    capsys.readouterr()
    assert cli.main(argv) == 2 and "differs in: model, provider" in capsys.readouterr().err
