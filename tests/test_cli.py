"""The command line's parameters have one source of truth: ``InjectionConfig`` (issue 13 §2)."""

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from diffstyle_lab import InjectionConfig, cli


def parse(*argv):
    return cli.build_parser().parse_args(["inject", "--content", "c", "--style", "s", "--out", "o", *argv])


def test_every_plain_field_is_an_option_described_by_the_docstring():
    p = cli.build_parser()
    inject = next(a for a in p._subparsers._group_actions[0].choices.values() if a.prog.endswith("inject"))
    opts = {o: a for a in inject._actions for o in a.option_strings}
    docs = cli.config_field_docs()
    for f in dataclasses.fields(InjectionConfig):
        if f.name == "mask":
            assert "--mask" in opts                       # a file on the command line
            continue
        opt = "--" + f.name.replace("_", "-")
        assert opt in opts, opt
        assert opts[opt].dest == f.name
        assert f.name in docs, f"InjectionConfig's docstring does not describe {f.name}"
        assert docs[f.name].split()[0] in opts[opt].help
        assert f"default: {f.default}" in opts[opt].help


def test_a_new_field_appears_without_touching_the_cli(monkeypatch):
    @dataclasses.dataclass
    class Extended(InjectionConfig):
        """Parameters.

        gamma:     γ.
        new_knob:  a knob added later, spanning
                   two lines.
        """
        new_knob: int = 3
        fancy: bool = False

    monkeypatch.setattr("diffstyle_lab.sampling.InjectionConfig", Extended)
    a = cli.build_parser().parse_args(["inject", "--content", "c", "--style", "s", "--out", "o", "--new-knob", "7",
                                       "--fancy"])
    assert cli.injection_overrides(a) == {"new_knob": 7, "fancy": True}
    assert cli.config_field_docs(Extended)["new_knob"] == "a knob added later, spanning two lines"


def test_unset_options_are_absent_so_the_model_defaults_apply():
    assert cli.injection_overrides(parse()) == {}
    a = parse("--gamma", "0.5", "--t-edit", "500", "--calibrate", "--method", "lerp")
    assert cli.injection_overrides(a) == {"gamma": 0.5, "t_edit": 500, "calibrate": True, "method": "lerp"}
    assert cli.injection_overrides(parse("--no-calibrate")) == {"calibrate": False}
    with pytest.raises(SystemExit):
        parse("--method", "average")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from diffstyle_lab.models import tiny_unet
    from diffstyle_lab.faces.architecture import export
    root = tmp_path_factory.mktemp("cli")
    export(tiny_unet(seed=0), root / "model")
    (root / "model" / "diffstyle_lab.json").write_text(json.dumps({"injection_defaults": {"t_edit": 300,
                                                                                          "t_boost": 100}}))
    rng = np.random.RandomState(0)
    for d in ("content", "style"):
        (root / d).mkdir()
        Image.fromarray((rng.rand(16, 16, 3) * 255).astype(np.uint8)).save(root / d / f"{d[0]}0.png")
    return root


def run(ws, out, *extra):     # one torch thread: tests/conftest.py
    return cli.main(["inject", "--content", str(ws / "content"), "--style", str(ws / "style"), "--model",
                     str(ws / "model"), "--cache", "off", "--device", "cpu", "--quiet", "--steps", "3",
                     "--inversion-steps", "3", "--out", str(out), *extra])


def test_the_model_defaults_apply_unless_overridden_and_resume_checks_to_dict(ws, tmp_path, capsys):
    from diffstyle_lab import load_model
    out = tmp_path / "out"
    assert run(ws, out) == 0
    params = json.loads((out / "manifest.json").read_text())["params"]
    cfg = cli.make_config(load_model(ws / "model"), {"inversion_steps": 3, "steps": 3})
    assert (cfg.t_edit, cfg.t_boost) == (300, 100)                       # the folder's diffstyle_lab.json
    assert params["injection"] == cfg.to_dict()                          # the resume key is cfg.to_dict()
    assert run(ws, tmp_path / "o2", "--t-edit", "500") == 0
    assert json.loads((tmp_path / "o2" / "manifest.json").read_text())["params"]["injection"]["t_edit"] == 500
    # any field of the config, not only a hand-written list, guards the folder
    capsys.readouterr()
    assert run(ws, out, "--eta-boost", "0.5") == 2
    assert "differs in: eta_boost" in capsys.readouterr().err


def test_demo_calls_the_function_inject_calls(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cli, "inject_files", lambda *a, **k: calls.append((a, k)) or {})
    assert cli.main(["demo", "--out", str(tmp_path / "d"), "--device", "cpu", "--quiet"]) == 0
    (content, style, out), kw = calls[0]
    assert str(content).endswith("samples/content") and str(style).endswith("samples/style")
    assert out == str(tmp_path / "d") and kw["device"] == "cpu" and not kw.get("overrides")   # the model's defaults
    assert cli.main(["inject", "--content", "c", "--style", "s", "--out", "o", "--gamma", "0.4"]) == 0
    assert calls[1][1]["overrides"] == {"gamma": 0.4}


# ---------------------------------------------------------------------------------------------
# grid.png (issue 27 §3): readable at a glance

def test_grid_upscales_small_images_and_labels_rows_and_columns():
    import torch
    from diffstyle_lab.images import GRID_MIN_CELL, grid
    x = torch.linspace(-1, 1, 6 * 3 * 32 * 32).reshape(6, 3, 32, 32)
    plain = grid(x, nrow=3)
    assert plain.size == (3 * 33 + 1, 2 * 33 + 1)                       # scale 1: as before
    big = grid(x, nrow=3, scale=None)
    k = GRID_MIN_CELL // 32
    assert big.size == (plain.width * k, plain.height * k)
    a, b = np.asarray(plain), np.asarray(big)
    assert np.array_equal(b[::k, ::k], a)                                # nearest neighbour: the same pixels
    assert np.array_equal(b[1:k, 1:k], np.broadcast_to(a[0, 0], (k - 1, k - 1, 3)))
    assert grid(torch.zeros(1, 3, 256, 256), nrow=1, scale=None).size == (258, 258)   # large images: not scaled
    labelled = grid(x, nrow=3, scale=None, row_labels=["r0", "r1"], col_labels=["a.png", "b.png", "c" * 80 + ".png"])
    assert labelled.width > big.width and labelled.height > big.height
    la = np.asarray(labelled)
    top = la.shape[0] - big.height
    left = la.shape[1] - big.width
    assert np.array_equal(la[top:, left:], b)                            # the images untouched, labels outside
    assert (la[:top] < 128).any() and (la[top:, :left] < 128).any()      # dark text above and on the left
    with pytest.raises(ValueError, match="scale"):
        grid(x, nrow=3, scale=0)


def test_inject_grid_png_is_upscaled_and_labelled(tmp_path):
    import torch
    from conftest import cli_workspace
    from diffstyle_lab.images import GRID_MIN_CELL
    ws = cli_workspace(tmp_path / "ws", (16, 16, 3))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli.main(["inject", "--content", str(ws / "content"), "--style", str(ws / "style"), "--model",
                         str(ws / "model"), "--steps", "3", "--inversion-steps", "3", "--cache", "off", "--device",
                         "cpu", "--quiet", "--t-boost", "0", "--out", str(tmp_path / "out")]) == 0
    finally:
        torch.set_num_threads(n)
    with Image.open(tmp_path / "out" / "grid.png") as g:
        k = GRID_MIN_CELL // 16
        assert g.width > 3 * 17 * k and g.height > 3 * 17 * k             # 3×3 cells of ≥ 128 px, plus labels
        a = np.asarray(g.convert("RGB"))
    # the first result cell (row c0, column s0) is one pair's image, upscaled: every k×k block constant
    top, left = a.shape[0] - (3 * 17 + 1) * k, a.shape[1] - (3 * 17 + 1) * k
    cell = a[top + (17 + 1) * k: top + (17 + 1) * k + 16 * k, left + (17 + 1) * k: left + (17 + 1) * k + 16 * k]
    assert np.array_equal(cell, np.repeat(np.repeat(cell[::k, ::k], k, 0), k, 1))
    with Image.open(tmp_path / "out" / "c0_png__s0_png.png") as one:
        assert np.array_equal(cell[::k, ::k], np.asarray(one.convert("RGB")))
