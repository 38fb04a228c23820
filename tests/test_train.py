"""Training code (a handful of steps on a few renders) and the shipped default model."""
import json

import pytest
import torch

import diffstyle_lab as dl
from training.train import TrainConfig, train


def test_training_runs_resumes_and_is_deterministic(tmp_path):
    cfg = dict(steps=4, batch_size=4, n_train=8, layout="h4", checkpoint_every=2, progress=False, warmup=2)
    a = train(TrainConfig(out=str(tmp_path / "a"), **cfg))
    b = train(TrainConfig(out=str(tmp_path / "b"), **{**cfg, "steps": 2}))     # stop half-way…
    b = train(TrainConfig(out=str(tmp_path / "b"), **cfg))                    # …and resume
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(va, vb, msg=k)
    rows = (tmp_path / "b" / "loss.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    m = dl.load_model(tmp_path / "a" / "model")          # the export is a strict diffusers folder
    assert m.sample_size == 32
    state = json.loads((tmp_path / "a" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 4


def test_unknown_layout():
    from diffstyle_lab.faces.architecture import build_unet
    with pytest.raises(ValueError, match="layout='h2' is unknown"):
        build_unet("h2")


# Measured on the shipped model (training/evaluate_default_model.py): see diffstyle_lab/data/models/faces32/README.md.
PSNR_FLOOR_DB = 25.0


@pytest.mark.slow
def test_shipped_model_reconstructs_held_out_faces():
    from diffstyle_lab.faces import avatars
    from diffstyle_lab.faces import factors
    from diffstyle_lab.evaluate import metrics
    m = dl.load_default_model()
    x = factors.to_tensor(avatars.make_faces(8, seed=31337)[0])
    inv = dl.ddim_invert(m, x, steps=50, progress=False)
    rec = dl.generate(m, inv.x_T, steps=50, progress=False)
    p = metrics.psnr(rec, x)
    assert p.mean() > PSNR_FLOOR_DB, f"mean PSNR {p.mean():.1f} dB"


def test_fine_tune_with_min_snr_and_snapshots_from_the_cli(tmp_path):
    import torch
    from training.train import main
    from diffstyle_lab.models import load_model
    from training.train import loss_weights
    base = tmp_path / "base"
    train(TrainConfig(out=str(base), steps=2, batch_size=4, n_train=8, checkpoint_every=2, progress=False, warmup=1))
    out = tmp_path / "ft"
    assert main(["--out", str(out), "--steps", "2", "--batch-size", "4", "--n-train", "8",
                 "--init", str(base / "model"), "--loss", "min_snr5", "--snapshot-every", "1",
                 "--checkpoint-every", "2", "--skip-drop", "0.5", "--skip-drop-levels", "3", "--quiet"]) == 0
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["step_000001", "step_000002"]
    assert load_model(out / "model").sample_size == 32
    snr = torch.tensor([0.01, 5.0, 50.0])
    assert torch.allclose(loss_weights("min_snr5", snr), torch.tensor([1.0, 1.0, 0.1]))
    assert torch.equal(loss_weights("eps", snr), torch.ones(3))
    with pytest.raises(ValueError, match="loss="):
        loss_weights("l1", snr)


def test_skip_dropout_zeroes_exactly_the_coarse_skips_of_the_dropped_samples():
    from training.train import SkipDropout, build_unet
    torch.manual_seed(0)
    unet = build_unet("h4").double().eval()
    x, t = torch.randn(3, 3, 32, 32, dtype=torch.float64), torch.tensor([500, 500, 500])
    seen = []
    with torch.no_grad():
        ref = unet(x, t).sample
        drop = SkipDropout(unet, levels=3)                  # its hook runs before the probe's
        probe = unet.up_blocks[2].register_forward_pre_hook(lambda m, a: seen.append([r.clone() for r in a[1]]))
        unet(x, t)                                          # mask None: nothing dropped
        drop.mask = torch.tensor([1.0, 0.0, 1.0])
        out = unet(x, t).sample
        drop.remove()
        probe.remove()
        after = unet(x, t).sample
    # the kept samples see their skips unchanged, the dropped one sees zeros at the 16×16 level
    torch.testing.assert_close(seen[1][0][[0, 2]], seen[0][0][[0, 2]], rtol=0, atol=0)
    assert all(float(r[1].abs().max()) == 0.0 for r in seen[1]) and float(seen[0][0][1].abs().max()) > 0
    assert float((out[1] - ref[1]).abs().max()) > 1e-3          # dropping changes the dropped sample's output
    torch.testing.assert_close(out[[0, 2]], ref[[0, 2]], rtol=0, atol=1e-12)   # … and only its output
    torch.testing.assert_close(after, ref, rtol=0, atol=0)      # removed: the plain U-Net again
    with pytest.raises(ValueError, match="skip_drop"):
        train(TrainConfig(out="/nonexistent/never", skip_drop=1.5))


def test_skip_dropout_mean_mode_keeps_each_channels_spatial_mean():
    from training.train import SkipDropout, build_unet
    torch.manual_seed(0)
    unet = build_unet("h4").double().eval()
    x, t = torch.randn(2, 3, 32, 32, dtype=torch.float64), torch.tensor([400, 400])
    seen = []
    with torch.no_grad():
        drop = SkipDropout(unet, levels=1, mode="mean")
        probe = unet.up_blocks[0].register_forward_pre_hook(lambda m, a: seen.append([r.clone() for r in a[1]]))
        unet(x, t)
        drop.mask = torch.tensor([0.0, 1.0])
        unet(x, t)
        drop.remove()
        probe.remove()
    for before, after in zip(seen[0], seen[1]):
        want = before[0].mean((1, 2), keepdim=True).expand_as(before[0])
        torch.testing.assert_close(after[0], want, rtol=0, atol=1e-12)      # dropped: only the means remain
        torch.testing.assert_close(after[1], before[1], rtol=0, atol=0)      # kept: untouched
    with pytest.raises(ValueError, match="skip_drop_mode"):
        SkipDropout(unet, levels=1, mode="noise")


def test_bad_skip_dropout_options_write_nothing(tmp_path):
    for bad in (dict(skip_drop=1.5), dict(skip_drop=0.5, skip_drop_levels=9), dict(skip_drop_mode="noise")):
        with pytest.raises(ValueError, match="skip_drop"):
            train(TrainConfig(out=str(tmp_path / "run"), steps=1, batch_size=2, n_train=4, progress=False, **bad))
        assert not (tmp_path / "run").exists(), bad


def _swapped_forward_checked(hu, unet, swap, x, t, idx, twins, eps, a, chosen, plain):
    """The forward after ``swap.prepare``: the chosen samples' h is their twin's (same t and noise), the skips are
    the sample's own (equal to replacing h by hand), the other samples are untouched. Returns the output."""
    with hu.record("h") as rec:
        out = unet(x, t).sample
    swap.remove()
    twin_h = hu.down_mid(a.sqrt() * twins[idx] + (1 - a).sqrt() * eps, t)[0]
    with hu.hooks(h=lambda h: torch.where(chosen.view(-1, 1, 1, 1), twin_h, h)):
        want = unet(x, t).sample
    torch.testing.assert_close(rec["h"][chosen], twin_h[chosen], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[~chosen], plain[~chosen], rtol=1e-12, atol=1e-12)
    return out


def test_colour_swap_gives_the_chosen_samples_their_twins_h_and_leaves_the_others_alone():
    from diffstyle_lab.hooks import HookedUNet
    from training.train import ColourSwap, build_unet
    torch.manual_seed(0)
    unet = build_unet("h4").double().eval()
    x, twins = torch.randn(4, 3, 32, 32, dtype=torch.float64), torch.randn(6, 3, 32, 32, dtype=torch.float64)
    idx, t = torch.tensor([5, 0, 2, 3]), torch.tensor([900, 500, 100, 700])
    eps, a = torch.randn_like(x), torch.rand(4, 1, 1, 1, dtype=torch.float64) * 0.9 + 0.05
    chosen = torch.tensor([True, False, True, False])
    hu = HookedUNet(unet)
    with torch.no_grad():
        plain = unet(x, t).sample
        swap = ColourSwap(unet, twins)
        swap.prepare(idx, t, eps, a, chosen)
        out = _swapped_forward_checked(hu, unet, swap, x, t, idx, twins, eps, a, chosen, plain)
    assert (out[chosen] - plain[chosen]).abs().max() > 1e-6
    assert not unet.mid_block._forward_hooks                                # removed


def test_colour_swap_must_be_a_probability(tmp_path):
    with pytest.raises(ValueError, match="colour_swap=1.5"):
        train(TrainConfig(out=str(tmp_path / "x"), colour_swap=1.5))
    assert not (tmp_path / "x").exists()


def test_colour_swap_on_dropped_swaps_exactly_the_samples_whose_skips_are_dropped(tmp_path):
    """colour_swap_on="dropped": the swap coin is drawn only for samples whose coarse skips are dropped
    (t ≥ skip_drop_tmin and the drop coin), so with colour_swap 1 the two sets are the same."""
    from training.train import Trainer, draw_batch
    data = torch.rand(8, 3, 32, 32) * 2 - 1
    seen = []
    for on, p_swap in (("dropped", 1.0), ("dropped", 0.5), ("any", 1.0)):
        cfg = TrainConfig(out=str(tmp_path / on), batch_size=16, skip_drop=0.6, skip_drop_levels=3,
                          skip_drop_mode="mean", colour_swap=p_swap, colour_swap_on=on, progress=False)
        tr = Trainer(cfg, data, data.flip(1))
        prepare = tr.swap.prepare
        tr.swap.prepare = lambda idx, t, eps, a, chosen, **kw: (seen.append(chosen.clone()),
                                                                prepare(idx, t, eps, a, chosen, **kw))
        b = draw_batch(0, 0, len(data), 16, data.shape[1:], True, True)
        b.t[:3] = 50                                     # below skip_drop_tmin: skips kept
        tr.step(0, b)
        tr.close()
        dropped = ~tr.drop.mask.bool()
        if on == "dropped" and p_swap == 1.0:
            assert torch.equal(seen[-1], dropped) and 0 < int(dropped.sum()) < 16
        elif on == "dropped":
            assert not (seen[-1] & ~dropped).any() and int(seen[-1].sum()) < int(dropped.sum())
        else:
            assert seen[-1].all()                         # "any": every sample, dropped or not
    with pytest.raises(ValueError, match="colour_swap_on"):
        train(TrainConfig(out=str(tmp_path / "bad"), colour_swap=0.5, colour_swap_on="sometimes"))
    with pytest.raises(ValueError, match="needs skip_drop"):
        train(TrainConfig(out=str(tmp_path / "bad"), colour_swap=0.5, colour_swap_on="dropped"))
    assert not (tmp_path / "bad").exists()


def test_trainer_step_is_the_same_in_lock_step_and_alone(tmp_path):
    """Two Trainers fed the same draw_batch give the weights train() gives for the same config (the
    GPU script's lock-step loop is train()'s step, not a copy of it); the schedule decays to lr/10."""
    import torch
    from training.train import Trainer, draw_batch, _training_data
    cfg = TrainConfig(out=str(tmp_path / "a"), steps=3, batch_size=4, n_train=8, checkpoint_every=3, progress=False,
                      warmup=1, schedule="cosine", skip_drop=0.5, skip_drop_levels=2)
    alone = train(cfg)
    data = _training_data(cfg)
    trs = []
    for _ in range(2):
        torch.manual_seed(cfg.seed)             # as train() does before building its model
        trs.append(Trainer(cfg, data))
    for step in range(cfg.steps):
        b = draw_batch(step, cfg.seed, len(data), cfg.batch_size, data.shape[1:], True, False)
        for tr in trs:
            tr.step(step, b)
    for tr in trs:
        for x, y in zip(alone.state_dict().values(), tr.ema.state_dict().values()):
            assert torch.equal(x, y)
    assert trs[0].lr(0) == cfg.lr and abs(trs[0].lr(cfg.steps) - cfg.lr / 10) < 1e-12


def test_content_swap_gives_the_chosen_samples_the_twins_h_and_target_and_leaves_the_others_alone():
    """The content swap: exactly the chosen samples get their content twin's h (same t and noise) on their own
    skips, and the ε target that makes the twin the predicted x_0; every other sample is untouched."""
    from diffstyle_lab.hooks import HookedUNet
    from training.train import ContentSwap, build_unet
    from diffstyle_lab.maths import pred_x0
    torch.manual_seed(0)
    unet = build_unet("h4").double().eval()
    x0, twins = torch.randn(4, 3, 32, 32, dtype=torch.float64), torch.randn(6, 3, 32, 32, dtype=torch.float64)
    idx, t = torch.tensor([5, 0, 2, 3]), torch.tensor([900, 500, 300, 700])
    eps, a = torch.randn_like(x0), torch.rand(4, 1, 1, 1, dtype=torch.float64) * 0.9 + 0.05
    x = a.sqrt() * x0 + (1 - a).sqrt() * eps
    chosen = torch.tensor([False, True, True, False])
    hu = HookedUNet(unet)
    with torch.no_grad():
        plain = unet(x, t).sample
        swap = ContentSwap(unet, twins)
        swap.prepare(idx, t, eps, a, chosen)
        target = swap.target(x, idx, a, eps, chosen)
        out = _swapped_forward_checked(hu, unet, swap, x, t, idx, twins, eps, a, chosen, plain)
    torch.testing.assert_close(target[~chosen], eps[~chosen], rtol=0, atol=0)
    a_ = a.flatten()
    for i in torch.nonzero(chosen).flatten().tolist():         # the target's x_0 is the twin, not the sample
        torch.testing.assert_close(pred_x0(x[i], target[i], float(a_[i])), twins[idx[i]], rtol=1e-10, atol=1e-10)
    assert not unet.mid_block._forward_hooks


def test_both_swaps_in_one_step_each_sample_gets_its_own_twins_h(tmp_path):
    """Colour and content swap armed in one step: disjoint samples, each gets the h of its own twin (one hook
    does not consume the other's h during the other's down pass), the rest keep their own h."""
    from training.train import Trainer, draw_batch
    from diffstyle_lab.hooks import HookedUNet
    torch.manual_seed(0)
    data = torch.rand(8, 3, 32, 32, dtype=torch.float64) * 2 - 1
    colour_twins, content_twins = data.flip(1), data.flip(3)
    cfg = TrainConfig(out=str(tmp_path / "r"), batch_size=16, colour_swap=0.4, content_swap=0.3,
                      content_swap_tmin=200, progress=False)
    tr = Trainer(cfg, data, colour_twins, content_twins=content_twins)
    tr.model.double(), tr.ema.double()
    tr.acp = tr.acp.double()
    b = draw_batch(0, 0, len(data), 16, data.shape[1:], False, True, content=True)
    b.eps = b.eps.double()
    b.t[:2] = 100                                          # below content_swap_tmin: never content-swapped
    b.u_content[:2] = 0.0
    hu = HookedUNet(tr.model)
    a = tr.acp[b.t].view(-1, 1, 1, 1)
    with torch.no_grad():
        own = hu.down_mid(a.sqrt() * data[b.idx] + (1 - a).sqrt() * b.eps, b.t)[0]
        col = hu.down_mid(a.sqrt() * colour_twins[b.idx] + (1 - a).sqrt() * b.eps, b.t)[0]
        con = hu.down_mid(a.sqrt() * content_twins[b.idx] + (1 - a).sqrt() * b.eps, b.t)[0]
    seen = {}
    orig = tr.model.mid_block.forward
    rec = tr.model.mid_block.register_forward_hook(lambda m, args, o: seen.__setitem__("h", o.detach().clone()))
    tr.model.mid_block._forward_hooks.move_to_end(rec.id)   # runs after the swaps' hooks
    tr.step(0, b)
    rec.remove()
    tr.close()
    assert tr.model.mid_block.forward == orig
    content = (b.u_content < 0.3) & (b.t >= 200)
    colour = (b.u_swap < 0.4) & ~content
    assert content.any() and colour.any() and (~content & ~colour).any() and not content[:2].any()
    # the step's forward saw the weights before the update: compare each group against the pre-step h
    torch.testing.assert_close(seen["h"][content], con[content], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(seen["h"][colour], col[colour], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(seen["h"][~content & ~colour], own[~content & ~colour], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("bad, match", [
    (dict(content_swap=1.5), "content_swap=1.5"), (dict(content_swap=-0.1), "content_swap=-0.1"),
    (dict(content_swap=0.3, content_swap_tmin=600, content_swap_tmax=500), "content_swap_tmin=600"),
    (dict(content_swap=0.3, content_swap_tmax=1000), "content_swap_tmax=1000"),
    (dict(content_swap=0.3, content_swap_same_pose=2.0), "content_swap_same_pose=2.0"),
    (dict(content_swap=0.6, colour_swap=0.6), "colour_swap \\+ content_swap"),
])
def test_bad_content_swap_options_write_nothing(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        train(TrainConfig(out=str(tmp_path / "run"), steps=1, batch_size=2, n_train=4, progress=False, **bad))
    assert not (tmp_path / "run").exists()


def test_content_swap_from_the_command_line_trains_and_draws_twins_in_the_same_colours(tmp_path):
    """`python -m training.train --content-swap …` reaches TrainConfig; the content twins keep the colours, change the
    identity, and keep the pose in exactly the asked share."""
    import json
    import numpy as np
    from training.train import main
    from diffstyle_lab.faces import avatars as A
    from training.train import TrainConfig as TC, _content_twins
    out = tmp_path / "run"
    assert main(["--out", str(out), "--steps", "2", "--batch-size", "4", "--n-train", "6", "--quiet",
                 "--checkpoint-every", "2", "--content-swap", "0.5", "--content-swap-tmin", "0",
                 "--content-swap-same-pose", "1"]) == 0
    state = json.loads((out / "checkpoint" / "state.json").read_text())["config"]
    assert state["content_swap"] == 0.5 and state["content_swap_tmin"] == 0 and state["content_swap_same_pose"] == 1
    fs = [A.Factors(**d) for d in json.loads((out / "train_faces_6_0_32_pose.npz.factors.json").read_text())]
    rng = np.random.default_rng([0, 3])
    for f in fs:                      # the twins' factors, drawn as _content_twins draws them
        rng.random()
        o = A.other_identity_same_colours(f, rng)
        assert o.style() == f.style() and o.family == f.family
    tw = _content_twins(TC(out=str(out), n_train=6, content_swap=0.5, content_swap_same_pose=1.0))
    assert tw.shape == (6, 3, 32, 32) and (out / "train_faces_6_0_32_pose_content_twins_1.npz").exists()
