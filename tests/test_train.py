"""Training code (a handful of steps on a few renders) and the shipped default model."""
import json

import pytest
import torch

import diffstyle_lab as dl
from diffstyle_lab.train import TrainConfig, train


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
    from diffstyle_lab.train import build_unet
    with pytest.raises(ValueError, match="layout='h2' is unknown"):
        build_unet("h2")


# Measured on the shipped model (scripts/evaluate_default_model.py): see data/models/faces32/README.md.
PSNR_FLOOR_DB = 25.0


@pytest.mark.slow
def test_shipped_model_reconstructs_held_out_faces():
    from diffstyle_lab import avatars, factors, metrics
    m = dl.load_default_model()
    x = factors.to_tensor(avatars.make_faces(8, seed=31337)[0])
    inv = dl.ddim_invert(m, x, steps=50, progress=False)
    rec = dl.generate(m, inv.x_T, steps=50, progress=False)
    p = metrics.psnr(rec, x)
    assert p.mean() > PSNR_FLOOR_DB, f"mean PSNR {p.mean():.1f} dB"


def test_fine_tune_with_min_snr_and_snapshots_from_the_cli(tmp_path):
    import torch
    from diffstyle_lab.cli import main
    from diffstyle_lab.models import load_model
    from diffstyle_lab.train import loss_weights
    base = tmp_path / "base"
    train(TrainConfig(out=str(base), steps=2, batch_size=4, n_train=8, checkpoint_every=2, progress=False, warmup=1))
    out = tmp_path / "ft"
    assert main(["train", "--out", str(out), "--steps", "2", "--batch-size", "4", "--n-train", "8",
                 "--init", str(base / "model"), "--loss", "min_snr5", "--snapshot-every", "1",
                 "--checkpoint-every", "2", "--quiet"]) == 0
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["step_000001", "step_000002"]
    assert load_model(out / "model").sample_size == 32
    snr = torch.tensor([0.01, 5.0, 50.0])
    assert torch.allclose(loss_weights("min_snr5", snr), torch.tensor([1.0, 1.0, 0.1]))
    assert torch.equal(loss_weights("eps", snr), torch.ones(3))
    with pytest.raises(ValueError, match="loss="):
        loss_weights("l1", snr)
